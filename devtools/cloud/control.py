"""``/_control/...``: the identity controls of ``controls.py`` over HTTP (JSON in, JSON out).

The graph and subscription parts of the cloud add their own controls under ``/_control/graph/...``
and friends; ``routes`` gathers them so one mount serves all. Errors: 400 bad input, 404 unknown name.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from devtools.cloud import controls, graph
from devtools.cloud.state import Tenant, User, World

# A control handler: the world, the request and its JSON body (empty when none was sent).
Handler = Callable[[World, Request, dict[str, Any]], Awaitable[Response]]
RouteTable = list[tuple[str, Handler, list[str]]]


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the control body must be a JSON object")
    return value


def _wrap(world: World, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(world, request, await _body(request))
        except KeyError as err:
            return JSONResponse({"error": {"code": "NotFound", "message": str(err.args[0])}}, status_code=404)
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": {"code": "BadRequest", "message": str(err)}}, status_code=400)

    return endpoint


def _ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"ok": True, **fields})


# ---- the world and its directory ------------------------------------------------------------------
async def _reset(world: World, request: Request, body: dict[str, Any]) -> Response:
    controls.reset_world(world)
    return _ok()


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "user_principal_name": user.user_principal_name,
        "display_name": user.display_name,
        "kind": user.kind,
        "is_admin": user.is_admin,
    }


def _tenant_json(world: World, tenant: Tenant) -> dict[str, Any]:
    """A tenant with its consents, users and groups (called under the world's lock)."""
    return {
        "tenant_id": tenant.tenant_id,
        "domain": tenant.domain,
        "display_name": tenant.display_name,
        "app_consents": {k: sorted(v) for k, v in tenant.app_consents.items()},
        "delegated_consents": {k: sorted(v) for k, v in tenant.delegated_consents.items()},
        "users": [_user_json(u) for u in world.tenant_users(tenant.tenant_id)],
        "groups": [
            {
                "id": g.id,
                "display_name": g.display_name,
                "mail": g.mail,
                "members": sorted(world.users[m].user_principal_name for m in g.members),
            }
            for g in world.groups.values()
            if g.tenant_id == tenant.tenant_id
        ],
    }


async def _directory(world: World, request: Request, body: dict[str, Any]) -> Response:
    with world.lock:
        tenants = [_tenant_json(world, t) for t in world.tenants.values()]
        apps = [
            {"client_id": a.client_id, "display_name": a.display_name, "redirect_uris": a.redirect_uris}
            for a in world.apps.values()
        ]
    return JSONResponse({"tenants": tenants, "apps": apps})


async def _remove_tenant(world: World, request: Request, body: dict[str, Any]) -> Response:
    controls.delete_tenant(world, request.path_params["tenant"])
    return _ok()


async def _add_app(world: World, request: Request, body: dict[str, Any]) -> Response:
    if not body.get("display_name"):
        raise ValueError("display_name is required")
    options: dict[str, Any] = {
        k: body[k]
        for k in ("client_id", "secret", "redirect_uris", "required_roles", "delegated_scopes")
        if body.get(k) is not None
    }
    created = controls.add_app_registration(world, display_name=str(body["display_name"]), **options)
    return JSONResponse(
        {
            "client_id": created.app.client_id,
            "secret": created.secret,
            "display_name": created.app.display_name,
            "redirect_uris": created.app.redirect_uris,
            "required_roles": created.app.required_roles,
            "delegated_scopes": created.app.delegated_scopes,
        },
        status_code=201,
    )


DIRECTORY_ROUTES: RouteTable = [
    ("/_control/reset", _reset, ["POST"]),
    ("/_control/directory", _directory, ["GET"]),
    ("/_control/tenants/{tenant}", _remove_tenant, ["DELETE"]),
    ("/_control/apps", _add_app, ["POST"]),
]


# ---- sign-in and sessions ---------------------------------------------------------------------------
async def _auto_sign_in(world: World, request: Request, body: dict[str, Any]) -> Response:
    if request.method == "GET":
        return JSONResponse({"auto_sign_in": controls.auto_sign_in_setting(world)})
    if request.method == "DELETE":
        controls.clear_auto_sign_in(world)
    else:
        controls.set_auto_sign_in(
            world, body.get("user"), consent=str(body.get("consent", "accept")), grant_roles=body.get("grant_roles")
        )
    return _ok()


async def _sign_out(world: World, request: Request, body: dict[str, Any]) -> Response:
    controls.sign_out_everywhere(world)
    return _ok()


async def _revoke_sessions(world: World, request: Request, body: dict[str, Any]) -> Response:
    return _ok(revoked=controls.revoke_sign_in_sessions(world, request.path_params["user"]))


SIGN_IN_ROUTES: RouteTable = [
    ("/_control/auto-sign-in", _auto_sign_in, ["GET", "PUT", "DELETE"]),
    ("/_control/sign-out", _sign_out, ["POST"]),
    ("/_control/users/{user}/revoke-sign-in-sessions", _revoke_sessions, ["POST"]),
]


# ---- consent ----------------------------------------------------------------------------------------
def _client_id(request: Request, body: dict[str, Any]) -> str:
    return str(body.get("client_id") or request.query_params.get("client_id") or controls.SERVICE_CLIENT_ID)


async def _admin_consent(world: World, request: Request, body: dict[str, Any]) -> Response:
    client_id = _client_id(request, body)
    if request.method == "DELETE":
        controls.withdraw_admin_consent(world, request.path_params["tenant"], client_id=client_id)
    else:
        controls.grant_admin_consent(
            world,
            request.path_params["tenant"],
            client_id=client_id,
            roles=body.get("roles"),
            delegated=body.get("delegated"),
        )
    return _ok()


async def _user_consent(world: World, request: Request, body: dict[str, Any]) -> Response:
    client_id = _client_id(request, body)
    if request.method == "DELETE":
        controls.withdraw_user_consent(world, request.path_params["user"], client_id=client_id)
    else:
        controls.grant_user_consent(world, request.path_params["user"], body.get("scopes"), client_id=client_id)
    return _ok()


CONSENT_ROUTES: RouteTable = [
    ("/_control/users/{user}/consent", _user_consent, ["PUT", "DELETE"]),
    ("/_control/tenants/{tenant}/admin-consent", _admin_consent, ["PUT", "DELETE"]),
]


# ---- tokens -----------------------------------------------------------------------------------------
async def _revoke(world: World, request: Request, body: dict[str, Any]) -> Response:
    count = controls.revoke_refresh_tokens(
        world, request.path_params["user"], reason=str(body.get("reason", "revoked"))
    )
    return _ok(revoked=count)


async def _lifetime(world: World, request: Request, body: dict[str, Any]) -> Response:
    seconds = body.get("seconds")
    controls.set_access_token_lifetime(world, int(seconds) if seconds is not None else None)
    return _ok()


async def _expire(world: World, request: Request, body: dict[str, Any]) -> Response:
    count = controls.expire_access_tokens(
        world, tenant=body.get("tenant"), user=body.get("user"), client_id=body.get("client_id")
    )
    return _ok(expired=count)


TOKEN_ROUTES: RouteTable = [
    ("/_control/users/{user}/revoke-refresh-tokens", _revoke, ["POST"]),
    ("/_control/access-token-lifetime", _lifetime, ["PUT"]),
    ("/_control/expire-access-tokens", _expire, ["POST"]),
]


def identity_routes(world: World) -> list[BaseRoute]:
    """The identity controls, one table per topic."""
    tables = (DIRECTORY_ROUTES, SIGN_IN_ROUTES, CONSENT_ROUTES, TOKEN_ROUTES)
    return [Route(path, _wrap(world, handler), methods=methods) for table in tables for path, handler, methods in table]


def routes(world: World) -> list[BaseRoute]:
    """Every control route: identity's here, plus those the graph package contributes."""
    return [*identity_routes(world), *graph.control_routes(world)]
