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
from devtools.cloud.state import World

Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the control body must be a JSON object")
    return value


def _wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, await _body(request))
        except KeyError as err:
            return JSONResponse({"error": {"code": "NotFound", "message": str(err.args[0])}}, status_code=404)
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": {"code": "BadRequest", "message": str(err)}}, status_code=400)

    return endpoint


def _ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"ok": True, **fields})


def identity_routes(world: World) -> list[BaseRoute]:
    async def reset(request: Request, body: dict[str, Any]) -> Response:
        controls.reset_world(world)
        return _ok()

    async def directory(request: Request, body: dict[str, Any]) -> Response:
        with world.lock:
            tenants = [
                {
                    "tenant_id": t.tenant_id,
                    "domain": t.domain,
                    "display_name": t.display_name,
                    "app_consents": {k: sorted(v) for k, v in t.app_consents.items()},
                    "delegated_consents": {k: sorted(v) for k, v in t.delegated_consents.items()},
                    "users": [
                        {
                            "id": u.id,
                            "user_principal_name": u.user_principal_name,
                            "display_name": u.display_name,
                            "kind": u.kind,
                            "is_admin": u.is_admin,
                        }
                        for u in world.tenant_users(t.tenant_id)
                    ],
                    "groups": [
                        {
                            "id": g.id,
                            "display_name": g.display_name,
                            "mail": g.mail,
                            "members": sorted(world.users[m].user_principal_name for m in g.members),
                        }
                        for g in world.groups.values()
                        if g.tenant_id == t.tenant_id
                    ],
                }
                for t in world.tenants.values()
            ]
            apps = [
                {"client_id": a.client_id, "display_name": a.display_name, "redirect_uris": a.redirect_uris}
                for a in world.apps.values()
            ]
        return JSONResponse({"tenants": tenants, "apps": apps})

    async def auto_sign_in(request: Request, body: dict[str, Any]) -> Response:
        if request.method == "GET":
            return JSONResponse({"auto_sign_in": controls.auto_sign_in_setting(world)})
        if request.method == "DELETE":
            controls.clear_auto_sign_in(world)
        else:
            controls.set_auto_sign_in(
                world, body.get("user"), consent=str(body.get("consent", "accept")), grant_roles=body.get("grant_roles")
            )
        return _ok()

    async def sign_out(request: Request, body: dict[str, Any]) -> Response:
        controls.sign_out_everywhere(world)
        return _ok()

    async def revoke(request: Request, body: dict[str, Any]) -> Response:
        count = controls.revoke_refresh_tokens(
            world, request.path_params["user"], reason=str(body.get("reason", "revoked"))
        )
        return _ok(revoked=count)

    async def revoke_sessions(request: Request, body: dict[str, Any]) -> Response:
        return _ok(revoked=controls.revoke_sign_in_sessions(world, request.path_params["user"]))

    async def admin_consent(request: Request, body: dict[str, Any]) -> Response:
        client_id = str(body.get("client_id") or request.query_params.get("client_id") or controls.SERVICE_CLIENT_ID)
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

    async def user_consent(request: Request, body: dict[str, Any]) -> Response:
        client_id = str(body.get("client_id") or request.query_params.get("client_id") or controls.SERVICE_CLIENT_ID)
        if request.method == "DELETE":
            controls.withdraw_user_consent(world, request.path_params["user"], client_id=client_id)
        else:
            controls.grant_user_consent(world, request.path_params["user"], body.get("scopes"), client_id=client_id)
        return _ok()

    async def lifetime(request: Request, body: dict[str, Any]) -> Response:
        seconds = body.get("seconds")
        controls.set_access_token_lifetime(world, int(seconds) if seconds is not None else None)
        return _ok()

    async def expire(request: Request, body: dict[str, Any]) -> Response:
        count = controls.expire_access_tokens(
            world, tenant=body.get("tenant"), user=body.get("user"), client_id=body.get("client_id")
        )
        return _ok(expired=count)

    async def add_app(request: Request, body: dict[str, Any]) -> Response:
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

    async def remove_tenant(request: Request, body: dict[str, Any]) -> Response:
        controls.delete_tenant(world, request.path_params["tenant"])
        return _ok()

    return [
        Route("/_control/reset", _wrap(reset), methods=["POST"]),
        Route("/_control/directory", _wrap(directory), methods=["GET"]),
        Route("/_control/auto-sign-in", _wrap(auto_sign_in), methods=["GET", "PUT", "DELETE"]),
        Route("/_control/sign-out", _wrap(sign_out), methods=["POST"]),
        Route("/_control/users/{user}/revoke-refresh-tokens", _wrap(revoke), methods=["POST"]),
        Route("/_control/users/{user}/revoke-sign-in-sessions", _wrap(revoke_sessions), methods=["POST"]),
        Route("/_control/users/{user}/consent", _wrap(user_consent), methods=["PUT", "DELETE"]),
        Route("/_control/tenants/{tenant}/admin-consent", _wrap(admin_consent), methods=["PUT", "DELETE"]),
        Route("/_control/tenants/{tenant}", _wrap(remove_tenant), methods=["DELETE"]),
        Route("/_control/access-token-lifetime", _wrap(lifetime), methods=["PUT"]),
        Route("/_control/expire-access-tokens", _wrap(expire), methods=["POST"]),
        Route("/_control/apps", _wrap(add_app), methods=["POST"]),
    ]


def routes(world: World) -> list[BaseRoute]:
    """Every control route: identity's here, plus those the graph package contributes."""
    return [*identity_routes(world), *graph.control_routes(world)]
