"""Build a ``World`` from the fixture files: ``directory.json`` here, ``calendars.json`` via the graph package.

The directory (tenants, users, groups, mailbox settings, sharing, Full Access mailbox permissions,
app registrations) is parsed here; events
are parsed by ``devtools.cloud.graph.fixtures.load_calendars`` because the graph package owns the
event model's JSON mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@dataclass
class _Links:
    """Names in the file that point at other directory objects, resolved once every object exists."""

    sharing: list[tuple[User, list[str]]] = field(default_factory=list)
    full_access: list[tuple[User, list[str]]] = field(default_factory=list)
    memberships: list[tuple[Group, list[str]]] = field(default_factory=list)


def _group(tenant: Tenant, raw: dict[str, Any]) -> Group:
    return Group(
        tenant_id=tenant.tenant_id,
        id=str(raw["id"]).lower(),
        display_name=str(raw["display_name"]),
        mail=raw.get("mail"),
        description=raw.get("description"),
        mail_enabled=bool(raw.get("mail_enabled", True)),
        security_enabled=bool(raw.get("security_enabled", True)),
    )


def _app(raw: dict[str, Any]) -> AppRegistration:
    return AppRegistration(
        client_id=str(raw["client_id"]).lower(),
        display_name=str(raw["display_name"]),
        secrets=[str(s) for s in raw["secrets"]],
        redirect_uris=[str(u) for u in raw["redirect_uris"]],
        required_roles=[str(r) for r in raw.get("required_roles", [])],
        delegated_scopes=[str(s) for s in raw.get("delegated_scopes", [])],
    )


def _add_tenant(world: World, raw_tenant: dict[str, Any], links: _Links) -> None:
    """A tenant with its users and groups; the names they point at go to ``links``."""
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
        links.sharing.append((user, [str(s) for s in raw_user.get("shares_details_with", [])]))
        links.full_access.append((user, [str(s) for s in raw_user.get("full_access", [])]))
    for raw_group in raw_tenant.get("groups", []):
        group = _group(tenant, raw_group)
        if group.id in world.groups or group.id in world.users:
            raise ValueError(f"duplicate directory object id {group.id}")
        world.groups[group.id] = group
        links.memberships.append((group, [str(m) for m in raw_group.get("members", [])]))


def _user_ids(world: World, tenant_id: str, names: list[str], unknown: str) -> Iterator[str]:
    """The ids of users named by UPN or id; ``unknown`` (and the name) is the error for one that is not there."""
    for name in names:
        found = world.find_user(tenant_id, name)
        if found is None:
            raise ValueError(f"{unknown} {name}")
        yield found.id


def _resolve_links(world: World, links: _Links) -> None:
    # Sharing names other users by UPN or id; resolve once every user of the tenant exists.
    for user, targets in links.sharing:
        unknown = f"{user.user_principal_name} shares with unknown user"
        for other_id in _user_ids(world, user.tenant_id, targets, unknown):
            user.shares_details_with.add(other_id)
    for group, members in links.memberships:
        for member_id in _user_ids(world, group.tenant_id, members, f"group {group.display_name} lists unknown user"):
            group.members.add(member_id)
    for user, holders in links.full_access:
        for holder in holders:
            user.full_access.add(_holder_id(world, user.tenant_id, holder))


def load_directory(world: World, path: Path | str = DIRECTORY_PATH) -> None:
    """Add the tenants, users and app registrations of a directory file to ``world``."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    links = _Links()
    with world.lock:
        for raw_tenant in doc.get("tenants", []):
            _add_tenant(world, raw_tenant, links)
        _resolve_links(world, links)
        for raw_app in doc.get("apps", []):
            app = _app(raw_app)
            world.apps[app.client_id] = app


def load_world(directory_path: Path | str | None = None, calendars_path: Path | str | None = None) -> World:
    """A fresh world seeded from the directory fixture and the calendars fixture."""
    world = World()
    load_directory(world, directory_path or DIRECTORY_PATH)
    load_calendars(world, calendars_path or CALENDARS_PATH)
    return world
