"""Directory reads: ``/me``, ``/users/{id | userPrincipalName}``, ``/users`` and ``mailboxSettings``.

A caller only ever sees users of its own tenant. Shared mailboxes are users too (with their
account disabled, as Exchange creates them).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from devtools.cloud.graph import odata
from devtools.cloud.graph.pipeline import GraphContext, graph_route, json_response
from devtools.cloud.state import User, World

DEFAULT_PAGE = 100
MAX_PAGE = 999
# The properties Graph returns for a user when no $select is given (v1.0 default set).
DEFAULT_USER_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)


def user_json(user: User) -> dict[str, Any]:
    """Every property this cloud knows about a user; the default set unless $select asks for more."""
    return {
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": user.given_name or None,
        "jobTitle": user.job_title,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": user.surname or None,
        "userPrincipalName": user.user_principal_name,
        "id": user.id,
        "accountEnabled": user.kind != "sharedMailbox",
        "userType": "Member",
        "mailNickname": user.mail.split("@")[0],
        "usageLocation": "US",
    }


def _shape(user: User, fields: list[str] | None) -> dict[str, Any]:
    body = user_json(user)
    if fields is None:
        return {k: body[k] for k in DEFAULT_USER_PROPERTIES}
    return odata.apply_select(body, fields)


def _select_suffix(fields: list[str] | None) -> str:
    return f"({','.join(fields)})" if fields else ""


async def get_me(ctx: GraphContext) -> Response:
    return _one_user(ctx, None)


async def get_user(ctx: GraphContext) -> Response:
    return _one_user(ctx, ctx.request.path_params["user"])


def _one_user(ctx: GraphContext, key: str | None) -> Response:
    user = ctx.directory_user(key)
    fields = odata.select_fields(ctx.request)
    body = {"@odata.context": odata.context_url(ctx.request, f"users{_select_suffix(fields)}/$entity")}
    body.update(_shape(user, fields))
    return json_response(body)


async def list_users(ctx: GraphContext) -> Response:
    ctx.require_directory_list()
    request = ctx.request
    fields = odata.select_fields(request)
    users = sorted(ctx.world.tenant_users(ctx.caller.tenant_id), key=lambda u: (u.display_name.lower(), u.id))
    raw_filter = request.query_params.get("$filter")
    if raw_filter:
        predicate = odata.compile_filter(raw_filter, odata.property_getter())
        users = [u for u in users if predicate(user_json(u))]
    page_size = odata.top(request, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    skip = 0
    token = request.query_params.get("$skiptoken")
    if token:
        skip = int(odata.decode_token(token).get("skip", 0))
    page = users[skip : skip + page_size]
    body: dict[str, Any] = {
        "@odata.context": odata.context_url(request, f"users{_select_suffix(fields)}"),
    }
    if skip + page_size < len(users):
        body["@odata.nextLink"] = odata.link(request, **{"$skiptoken": odata.encode_token({"skip": skip + page_size})})
    body["value"] = [_shape(u, fields) for u in page]
    return json_response(body)


async def get_mailbox_settings(ctx: GraphContext) -> Response:
    key = ctx.request.path_params.get("user")
    # Delegated reads of someone else's settings are refused inside ctx.mailbox: sharing a calendar
    # does not share mailbox settings.
    user = ctx.mailbox(key, "settings")
    fields = odata.select_fields(ctx.request)
    settings = dict(user.mailbox_settings)
    who = f"users('{user.user_principal_name}')" if key else f"users('{user.id}')"
    body: dict[str, Any] = {"@odata.context": odata.context_url(ctx.request, f"{who}/mailboxSettings")}
    if fields:
        body["@odata.context"] = odata.context_url(ctx.request, f"{who}/mailboxSettings({','.join(fields)})")
        body.update(odata.apply_select(settings, fields))
    else:
        body.update(settings)
    return json_response(body)


def routes(world: World) -> list[BaseRoute]:
    return [
        graph_route(world, "/me", get_me, ["GET"]),
        graph_route(world, "/me/mailboxSettings", get_mailbox_settings, ["GET"]),
        graph_route(world, "/users", list_users, ["GET"]),
        graph_route(world, "/users/{user}", get_user, ["GET"]),
        graph_route(world, "/users/{user}/mailboxSettings", get_mailbox_settings, ["GET"]),
    ]
