"""A mailbox's calendars: the primary one, secondary calendars (``POST /calendars``), and, in a delegated
user's own list, the calendars of the shared mailboxes they hold Full Access on.

Calendar ids resolve through :func:`resolve`, which every ``/calendars/{id}/...`` route uses:

- the primary calendar's id (stable per mailbox);
- a secondary calendar's id (``POST /me/calendars`` or ``/users/{id}/calendars``);
- in ``/me/calendars/{id}``: the id of a shared mailbox's calendar as it appears in the caller's list.
  Requests through it act on the shared mailbox, with the same checks as ``/users/{shared}/...``, so a
  user who left the group that grants access gets 403 ``ErrorAccessDenied`` again.

Documented (v1.0 resources/calendar.md): **owner** "For a calendar that the user created or added, the
owner property is set to the user. For a calendar shared with the user, the owner property is set to the
person who shared that calendar with the user"; **canEdit** "is also true for a user who has been shared
a calendar and granted write access". How a shared mailbox's calendar gets into a member's list is not
documented for Graph: Outlook adds it when the member opens the shared calendar (automapping does not
apply to permissions granted through a group). This cloud lists it from the start, as a member sees it
after adding it.

Not documented either, and modelled from Exchange: free/busy (getSchedule), ``/calendarView``,
``/events`` and change notifications of a mailbox cover its primary calendar; a secondary calendar is
reached through ``/calendars/{id}/...`` only (the integration guide's known limitation: changes there
raise no notification).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from devtools.cloud.common import GraphError
from devtools.cloud.graph import delegation, odata, store
from devtools.cloud.graph.pipeline import GraphContext, graph_route, json_response
from devtools.cloud.state import User, World, new_id

SHARED_PREFIX = "AAMkShared-"


@dataclass
class SecondaryCalendar:
    id: str
    mailbox_id: str
    name: str
    color: str = "auto"
    change_key: str = field(default_factory=new_id)


def primary_calendar_id(user: User) -> str:
    """The primary calendar's id: stable per user."""
    return "AAMkCal-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"calendar:{user.id}"))


def shared_entry_id(viewer_id: str, mailbox: User) -> str:
    """The id under which ``mailbox``'s calendar appears in the viewer's own calendar list."""
    tag = uuid.uuid5(uuid.NAMESPACE_URL, f"shared-calendar:{viewer_id}:{mailbox.id}").hex[:12]
    return f"{SHARED_PREFIX}{mailbox.id}-{tag}"


def secondary_calendars(world: World, mailbox_id: str) -> list[SecondaryCalendar]:
    state = store.graph_state(world)
    with world.lock:
        return sorted(
            (c for c in state.calendars.values() if c.mailbox_id == mailbox_id), key=lambda c: (c.name.lower(), c.id)
        )


def resolve(ctx: GraphContext, user_key: str | None, calendar_id: str | None, access: str) -> tuple[User, str | None]:
    """The mailbox to enter and the calendar in it (None: the primary) for a request's path."""
    if calendar_id is None:
        return ctx.mailbox(user_key, access), None
    if user_key is None and calendar_id.startswith(SHARED_PREFIX):
        me = ctx.me()
        mailbox_id = calendar_id[len(SHARED_PREFIX) : -13]
        with ctx.world.lock:
            mailbox = ctx.world.users.get(mailbox_id)
        if mailbox is None or shared_entry_id(me.id, mailbox) != calendar_id:
            raise store.not_found()
        return ctx.mailbox(mailbox.id, access), None
    owner = ctx.mailbox(user_key, access)
    if calendar_id == primary_calendar_id(owner):
        return owner, None
    with ctx.world.lock:
        secondary = store.graph_state(ctx.world).calendars.get(calendar_id)
    if secondary is None or secondary.mailbox_id != owner.id:
        raise store.not_found()
    return owner, secondary.id


def _base(owner: User) -> dict[str, Any]:
    return {
        "color": "auto",
        "hexColor": "",
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "owner": {"name": owner.display_name, "address": owner.mail},
    }


def secondary_json(owner: User, calendar: SecondaryCalendar) -> dict[str, Any]:
    base = _base(owner)
    return {
        "id": calendar.id,
        "name": calendar.name,
        "color": calendar.color,
        "hexColor": base["hexColor"],
        "isDefaultCalendar": False,
        "changeKey": calendar.change_key,
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": base["allowedOnlineMeetingProviders"],
        "defaultOnlineMeetingProvider": base["defaultOnlineMeetingProvider"],
        # "Only meeting invites sent from users' primary calendars support tracking of meeting responses."
        "isTallyingResponses": False,
        "isRemovable": True,
        "owner": base["owner"],
    }


def shared_json(viewer_id: str, mailbox: User) -> dict[str, Any]:
    """A shared mailbox's calendar as it appears in a Full Access holder's list."""
    base = _base(mailbox)
    return {
        "id": shared_entry_id(viewer_id, mailbox),
        "name": mailbox.display_name,
        "color": base["color"],
        "hexColor": base["hexColor"],
        "isDefaultCalendar": False,
        "changeKey": "",
        "canShare": False,
        "canViewPrivateItems": True,
        "canEdit": True,  # Full Access: write access
        "allowedOnlineMeetingProviders": base["allowedOnlineMeetingProviders"],
        "defaultOnlineMeetingProvider": base["defaultOnlineMeetingProvider"],
        "isTallyingResponses": True,
        "isRemovable": True,
        "owner": base["owner"],
    }


def other_calendars(ctx: GraphContext, owner: User, *, own_list: bool) -> list[dict[str, Any]]:
    """Every calendar of ``owner``'s list after the primary one: secondary calendars, then (in the signed-in
    user's own list) the shared mailboxes' calendars they hold Full Access on."""
    items = [secondary_json(owner, c) for c in secondary_calendars(ctx.world, owner.id)]
    if own_list and ctx.caller.user_id == owner.id:
        items += [shared_json(owner.id, m) for m in delegation.full_access_mailboxes(ctx.world, owner.id)]
    return items


async def create_calendar(ctx: GraphContext) -> Response:
    """``POST /calendars``: a secondary calendar in the mailbox's default calendar group."""
    owner = ctx.mailbox(ctx.request.path_params.get("user"), "write")
    body = await ctx.json()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GraphError(400, "ErrorInvalidRequest", "The calendar name is required.")
    state = store.graph_state(ctx.world)
    with ctx.world.lock:
        taken = {c.name.lower() for c in state.calendars.values() if c.mailbox_id == owner.id} | {"calendar"}
        if name.strip().lower() in taken:
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        calendar = SecondaryCalendar(id="AAMkCal2-" + new_id(), mailbox_id=owner.id, name=name.strip())
        if isinstance(body.get("color"), str):
            calendar.color = body["color"]
        state.calendars[calendar.id] = calendar
    payload = {"@odata.context": odata.context_url(ctx.request, f"users('{owner.id}')/calendars/$entity")}
    payload.update(secondary_json(owner, calendar))
    return json_response(payload, 201)


async def get_calendar_by_id(ctx: GraphContext) -> Response:
    """``GET /calendars/{id}``: any calendar of the caller's list."""
    key = ctx.request.path_params.get("user")
    cid = ctx.request.path_params["calendar"]
    mailbox, secondary = resolve(ctx, key, cid, "read")
    if cid.startswith(SHARED_PREFIX):
        item = shared_json(ctx.caller.user_id or "", mailbox)
    elif secondary is None:
        from devtools.cloud.graph.calendar import _calendar_json  # the primary calendar's shape lives there

        item = _calendar_json(mailbox)
    else:
        item = secondary_json(mailbox, store.graph_state(ctx.world).calendars[secondary])
    payload = {"@odata.context": odata.context_url(ctx.request, f"users('{mailbox.id}')/calendars/$entity")}
    payload.update(item)
    return json_response(payload)


def routes(world: World) -> list[BaseRoute]:
    result: list[BaseRoute] = []
    for base in ("/me", "/users/{user}"):
        result.append(graph_route(world, base + "/calendars", create_calendar, ["POST"]))
        result.append(graph_route(world, base + "/calendars/{calendar}", get_calendar_by_id, ["GET"]))
    return result
