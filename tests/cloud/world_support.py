"""A small hand-built world for in-process tests that need only a few tenants, users and apps."""

from __future__ import annotations

from collections.abc import Iterable

from devtools.cloud.state import AppRegistration, Tenant, User, World


def small_world(tenants: dict[str, str], users: Iterable[tuple[str, str, str]], apps: Iterable[str]) -> World:
    """A world of ``tenants`` (id -> domain), ``users`` ((tenant id, user id, name), mailbox ``name@domain``)
    and ``apps`` (client ids, each requiring Calendars.ReadWrite)."""
    world = World()
    for tenant_id, domain in tenants.items():
        world.tenants[tenant_id] = Tenant(tenant_id=tenant_id, domain=domain, display_name=domain)
    for tenant_id, user_id, name in users:
        address = f"{name}@{world.tenants[tenant_id].domain}"
        world.users[user_id] = User(
            tenant_id=tenant_id,
            id=user_id,
            user_principal_name=address,
            display_name=name.title(),
            mail=address,
        )
    for client_id in apps:
        world.apps[client_id] = AppRegistration(
            client_id=client_id,
            display_name=client_id,
            secrets=["s"],
            redirect_uris=[],
            required_roles=["Calendars.ReadWrite"],
        )
    return world
