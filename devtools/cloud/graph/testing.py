"""Helpers for tests of the Graph routes: an in-process app over a seeded world, and bearer tokens.

Tokens are minted by ``devtools.cloud.tokens.issue_access_token`` (the same signer the cloud
verifies), so tests exercise the real authentication path.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette

from devtools.cloud import tokens
from devtools.cloud.graph import control_routes, middleware, routes
from devtools.cloud.graph.controls import resolve_user
from devtools.cloud.state import World

# The app registration of fixtures/directory.json ("Interview Calendar Service").
SERVICE_CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"


def graph_app(world: World) -> Starlette:
    return Starlette(routes=[*routes(world), *control_routes(world)], middleware=middleware())


def delegated(world: World, user: str, scopes: Iterable[str], *, client_id: str = SERVICE_CLIENT_ID) -> dict[str, str]:
    """Authorization header for a delegated token of ``user`` (UPN or id) with ``scopes``."""
    person = resolve_user(world, user)
    token = tokens.issue_access_token(
        world, tenant_id=person.tenant_id, client_id=client_id, user_id=person.id, scopes=set(scopes)
    )
    return {"Authorization": f"Bearer {token}"}


def app_only(world: World, tenant: str, roles: Iterable[str], *, client_id: str = SERVICE_CLIENT_ID) -> dict[str, str]:
    """Authorization header for an app-only token in ``tenant`` (id or domain) with ``roles``."""
    found = world.tenant_by_id_or_domain(tenant)
    if found is None:
        raise KeyError(tenant)
    token = tokens.issue_access_token(world, tenant_id=found.tenant_id, client_id=client_id, roles=set(roles))
    return {"Authorization": f"Bearer {token}"}
