"""Groups, minimally: ``/groups`` (with ``$filter`` and ``$select``), ``/groups/{id}``, ``/groups/{id}/members``,
``/me/memberOf`` and ``/users/{id}/memberOf``.

Only mail-enabled security groups with direct user members are modelled (the recruiting team that holds
Full Access on the shared mailboxes). Permissions follow the reference pages (group-list.md,
group-list-members.md, user-list-memberof.md): GroupMember.Read.All is the least privileged, then
Group.Read.All, their ReadWrite forms and Directory.Read.All / Directory.ReadWrite.All, delegated or
application. The "limited information" answer for member types a caller may not read is not modelled:
every member here is a user.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from devtools.cloud.graph import delegation, odata
from devtools.cloud.graph.directory import DEFAULT_USER_PROPERTIES, user_json
from devtools.cloud.graph.pipeline import (
    GraphContext,
    directory_denied,
    directory_not_found,
    graph_route,
    json_response,
)
from devtools.cloud.state import Group, World

GROUP_READ = frozenset(
    {
        "groupmember.read.all",
        "group.read.all",
        "groupmember.readwrite.all",
        "group.readwrite.all",
        "directory.read.all",
        "directory.readwrite.all",
    }
)
GROUP_READ_DELEGATED = GROUP_READ | {"directory.accessasuser.all"}


def group_json(group: Group) -> dict[str, Any]:
    """The group resource's default properties, for a mail-enabled security group."""
    return {
        "id": group.id,
        "deletedDateTime": None,
        "classification": None,
        "description": group.description,
        "displayName": group.display_name,
        "groupTypes": [],
        "mail": group.mail,
        "mailEnabled": group.mail_enabled,
        "mailNickname": (group.mail or group.display_name).split("@")[0].replace(" ", ""),
        "securityEnabled": group.security_enabled,
        "visibility": None,
    }


def _require(ctx: GraphContext) -> None:
    granted = ctx.roles & GROUP_READ if ctx.caller.app_only else ctx.scopes & GROUP_READ_DELEGATED
    if not granted:
        raise directory_denied()


def _group(ctx: GraphContext) -> Group:
    key = ctx.request.path_params["group"].lower()
    with ctx.world.lock:
        group = ctx.world.groups.get(key)
    if group is None or group.tenant_id != ctx.caller.tenant_id:
        raise directory_not_found(key)
    return group


def _shaped(ctx: GraphContext, item: dict[str, Any]) -> dict[str, Any]:
    fields = odata.select_fields(ctx.request)
    return item if fields is None else odata.apply_select(item, fields, keep=("@odata.type",))


async def list_groups(ctx: GraphContext) -> Response:
    _require(ctx)
    with ctx.world.lock:
        groups = [g for g in ctx.world.groups.values() if g.tenant_id == ctx.caller.tenant_id]
    items = [group_json(g) for g in sorted(groups, key=lambda g: (g.display_name.lower(), g.id))]
    raw_filter = ctx.request.query_params.get("$filter")
    if raw_filter:
        predicate = odata.compile_filter(raw_filter, odata.property_getter())
        items = [i for i in items if predicate(i)]
    return json_response(
        {
            "@odata.context": odata.context_url(ctx.request, "groups"),
            "value": [_shaped(ctx, i) for i in items],
        }
    )


async def get_group(ctx: GraphContext) -> Response:
    _require(ctx)
    body = {"@odata.context": odata.context_url(ctx.request, "groups/$entity")}
    body.update(_shaped(ctx, group_json(_group(ctx))))
    return json_response(body)


async def list_members(ctx: GraphContext) -> Response:
    _require(ctx)
    group = _group(ctx)
    with ctx.world.lock:
        members = [ctx.world.users[m] for m in group.members if m in ctx.world.users]
    items = []
    for user in sorted(members, key=lambda u: (u.display_name.lower(), u.id)):
        full = user_json(user)
        items.append({"@odata.type": "#microsoft.graph.user", **{k: full[k] for k in DEFAULT_USER_PROPERTIES}})
    return json_response(
        {
            "@odata.context": odata.context_url(ctx.request, "directoryObjects"),
            "value": [_shaped(ctx, i) for i in items],
        }
    )


async def member_of(ctx: GraphContext) -> Response:
    user = ctx.user_or_me(ctx.request.path_params.get("user"), directory_not_found)
    _require(ctx)
    items = [
        {"@odata.type": "#microsoft.graph.group", **group_json(g)} for g in delegation.groups_of(ctx.world, user.id)
    ]
    return json_response(
        {
            "@odata.context": odata.context_url(ctx.request, "directoryObjects"),
            "value": [_shaped(ctx, i) for i in items],
        }
    )


def routes(world: World) -> list[BaseRoute]:
    return [
        graph_route(world, "/groups", list_groups, ["GET"]),
        graph_route(world, "/groups/{group}", get_group, ["GET"]),
        graph_route(world, "/groups/{group}/members", list_members, ["GET"]),
        graph_route(world, "/me/memberOf", member_of, ["GET"]),
        graph_route(world, "/users/{user}/memberOf", member_of, ["GET"]),
    ]
