"""Build a ``World`` from the fixture files: ``directory.json`` here, ``calendars.json`` via the graph package.

The directory (tenants, users, groups, mailbox settings, sharing, Full Access mailbox permissions,
app registrations) is parsed here; events
are parsed by ``devtools.cloud.graph.fixtures.load_calendars`` because the graph package owns the
event model's JSON mapping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devtools.cloud.graph.fixtures import load_calendars
from devtools.cloud.state import AppRegistration, Group, Tenant, User, World

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
DIRECTORY_PATH = FIXTURES_DIR / "directory.json"
CALENDARS_PATH = FIXTURES_DIR / "calendars.json"


def _user(tenant: Tenant, raw: dict[str, Any]) -> User:
    upn = str(raw["user_principal_name"])
    if not upn.lower().endswith("@" + tenant.domain.lower()):
        raise ValueError(f"user {upn} is not in the domain of tenant {tenant.display_name}")
    user = User(
        tenant_id=tenant.tenant_id,
        id=str(raw["id"]).lower(),
        user_principal_name=upn,
        display_name=str(raw["display_name"]),
        mail=str(raw.get("mail") or upn),
        given_name=str(raw.get("given_name") or ""),
        surname=str(raw.get("surname") or ""),
        job_title=raw.get("job_title"),
        kind=str(raw.get("kind", "user")),
        mailbox_settings=dict(raw.get("mailbox_settings") or {}),
        mailbox_on_premises=bool(raw.get("mailbox_on_premises", False)),
        is_admin=bool(raw.get("is_admin", False)),
    )
    if "password" in raw:
        user.password = str(raw["password"])
    return user


def _holder_id(world: World, tenant_id: str, name: str) -> str:
    """The id of a Full Access holder named by group display name, or by user UPN or id, in one tenant."""
    for group in world.groups.values():
        if group.tenant_id == tenant_id and name.lower() in (group.display_name.lower(), group.id):
            return group.id
    user = world.find_user(tenant_id, name)
    if user is None:
        raise ValueError(f"full_access names unknown group or user {name}")
    return user.id


def load_directory(world: World, path: Path | str = DIRECTORY_PATH) -> None:
    """Add the tenants, users and app registrations of a directory file to ``world``."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    sharing: list[tuple[User, list[str]]] = []
    full_access: list[tuple[User, list[str]]] = []
    memberships: list[tuple[Group, list[str]]] = []
    with world.lock:
        for raw_tenant in doc.get("tenants", []):
            tenant = Tenant(
                tenant_id=str(raw_tenant["tenant_id"]).lower(),
                domain=str(raw_tenant["domain"]).lower(),
                display_name=str(raw_tenant["display_name"]),
            )
            if tenant.tenant_id in world.tenants:
                raise ValueError(f"duplicate tenant {tenant.tenant_id}")
            world.tenants[tenant.tenant_id] = tenant
            for raw_user in raw_tenant.get("users", []):
                user = _user(tenant, raw_user)
                if user.id in world.users:
                    raise ValueError(f"duplicate user id {user.id}")
                world.users[user.id] = user
                sharing.append((user, [str(s) for s in raw_user.get("shares_details_with", [])]))
                full_access.append((user, [str(s) for s in raw_user.get("full_access", [])]))
            for raw_group in raw_tenant.get("groups", []):
                group = Group(
                    tenant_id=tenant.tenant_id,
                    id=str(raw_group["id"]).lower(),
                    display_name=str(raw_group["display_name"]),
                    mail=raw_group.get("mail"),
                    description=raw_group.get("description"),
                    mail_enabled=bool(raw_group.get("mail_enabled", True)),
                    security_enabled=bool(raw_group.get("security_enabled", True)),
                )
                if group.id in world.groups or group.id in world.users:
                    raise ValueError(f"duplicate directory object id {group.id}")
                world.groups[group.id] = group
                memberships.append((group, [str(m) for m in raw_group.get("members", [])]))
        # Sharing names other users by UPN or id; resolve once every user of the tenant exists.
        for user, targets in sharing:
            for target in targets:
                other = world.find_user(user.tenant_id, target)
                if other is None:
                    raise ValueError(f"{user.user_principal_name} shares with unknown user {target}")
                user.shares_details_with.add(other.id)
        for group, members in memberships:
            for member in members:
                found = world.find_user(group.tenant_id, member)
                if found is None:
                    raise ValueError(f"group {group.display_name} lists unknown user {member}")
                group.members.add(found.id)
        for user, holders in full_access:
            for holder in holders:
                user.full_access.add(_holder_id(world, user.tenant_id, holder))
        for raw_app in doc.get("apps", []):
            app = AppRegistration(
                client_id=str(raw_app["client_id"]).lower(),
                display_name=str(raw_app["display_name"]),
                secrets=[str(s) for s in raw_app["secrets"]],
                redirect_uris=[str(u) for u in raw_app["redirect_uris"]],
                required_roles=[str(r) for r in raw_app.get("required_roles", [])],
                delegated_scopes=[str(s) for s in raw_app.get("delegated_scopes", [])],
            )
            world.apps[app.client_id] = app


def load_world(directory_path: Path | str | None = None, calendars_path: Path | str | None = None) -> World:
    """A fresh world seeded from the directory fixture and the calendars fixture."""
    world = World()
    load_directory(world, directory_path or DIRECTORY_PATH)
    load_calendars(world, calendars_path or CALENDARS_PATH)
    return world
