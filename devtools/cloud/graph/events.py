"""Event endpoints: create, list, get, update, delete, cancel and respond, for /me and /users/{id}.

``transactionId``: the documentation says it exists "to avoid redundant POST operations in case of
client retries" but not what a retry gets back. This cloud answers a POST whose transactionId matches
an event already in that mailbox with ``201 Created`` and the existing event, unchanged, so a client
that retries after a lost response sees the same outcome as the first attempt.

Extended properties sent in the POST are stored but, as documented, not included in the create
response; read them with ``$expand=singleValueExtendedProperties($filter=id eq '...')``, and list the
events that carry one with ``$filter=singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')``
(the documented form, alone; combined with other clauses it is refused as an unsupported query).

What a body's fields accept is in ``event_fields``; the Teams meeting an event carries in ``meetings``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from devtools.cloud.common import GraphError
from devtools.cloud.graph import calendars, odata, store, switches
from devtools.cloud.graph.event_fields import parse_changes
from devtools.cloud.graph.meetings import apply_meeting, new_meeting
from devtools.cloud.graph.pipeline import GraphContext, graph_route, json_response
from devtools.cloud.graph.serialize import event_json, extended_properties_json
from devtools.cloud.graph.store import Instance
from devtools.cloud.graph.timezones import parse_datetime_timezone
from devtools.cloud.state import Event, User, World, new_id

__all__ = [
    "OUTLOOK_WEB",
    "PROPERTY_FILTER",
    "apply_meeting",
    "calendar_id",
    "expand_extended_properties",
    "new_meeting",
    "page",
    "parse_changes",
    "property_filter",
    "routes",
]

OUTLOOK_WEB = "https://outlook.office365.com"
DEFAULT_PAGE = 10
# v1.0 singlevaluelegacyextendedproperty-get.md: "Get resource instances filtered by a single-value extended
# property": $filter=singleValueExtendedProperties/Any(ep: ep/id eq '{id_value}' and ep/value eq '{property_value}').
PROPERTY_FILTER = re.compile(
    r"singleValueExtendedProperties/Any\(\s*(?P<v>[A-Za-z]\w*)\s*:\s*(?P=v)/id\s+eq\s+'(?P<id>(?:[^']|'')*)'"
    r"\s+and\s+(?P=v)/value\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*\)",
    re.IGNORECASE,
)
_EXPAND = re.compile(r"^singleValueExtendedProperties(?:\(\$filter=(?P<filter>.*)\))?$", re.IGNORECASE)


def property_filter(raw_filter: str | None) -> Callable[[dict[str, str]], bool] | None:
    """The documented extended-property ``$filter`` as a test of an item's properties; None for any other filter."""
    match = PROPERTY_FILTER.fullmatch(raw_filter.strip()) if raw_filter else None
    if match is None:
        return None
    prop_id = match.group("id").replace("''", "'").lower()
    value = match.group("value").replace("''", "'")
    return lambda properties: any(k.lower() == prop_id and v == value for k, v in properties.items())


def calendar_id(user: User) -> str:
    """The primary calendar's id: stable per user."""
    return calendars.primary_calendar_id(user)


def _event_body(ctx: GraphContext, owner: User, inst: Instance, *, entity: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if entity:
        body["@odata.context"] = odata.context_url(ctx.request, f"users('{owner.id}')/events/$entity")
    body.update(event_json(ctx.world, inst, base_url=OUTLOOK_WEB, tz_name=ctx.prefer_tz))
    expanded = expand_extended_properties(ctx, inst.event.extended_properties)
    expand = expanded is not None
    if expanded is not None:
        body["singleValueExtendedProperties"] = expanded
    fields = odata.select_fields(ctx.request)
    if fields is not None:
        body = odata.apply_select(body, fields + (["singleValueExtendedProperties"] if expand else []), keep=("id",))
    return body


def expand_extended_properties(ctx: GraphContext, properties: dict[str, str]) -> list[dict[str, str]] | None:
    """``$expand=singleValueExtendedProperties($filter=id eq '...')`` of an item's properties; None when not asked."""
    expand = ctx.request.query_params.get("$expand")
    if not expand:
        return None
    match = _EXPAND.match(expand.strip())
    if match is None:
        raise GraphError(
            400,
            "BadRequest",
            f"Parsing OData Select and Expand failed: Could not find a property named '{expand}'.",
        )
    wanted: set[str] | None = None
    if match.group("filter"):
        props = [{"id": pid} for pid in properties]
        predicate = odata.compile_filter(match.group("filter"), odata.property_getter())
        wanted = {p["id"].lower() for p in props if predicate(p)}
    return extended_properties_json(properties, wanted)


def _target(ctx: GraphContext, access: str) -> tuple[User, str | None]:
    """The mailbox and calendar (None: the primary one) a request's path names; see graph/calendars.py."""
    params = ctx.request.path_params
    return calendars.resolve(ctx, params.get("user"), params.get("calendar"), access)


def _find(ctx: GraphContext, owner: User, calendar: str | None) -> Instance:
    """The path's event in this mailbox; through ``/calendars/{id}/events/{event}`` only in that calendar."""
    inst = store.find_event(ctx.world, owner.id, ctx.request.path_params["event"])
    if "calendar" in ctx.request.path_params and inst.event.calendar_id != calendar:
        raise store.not_found()
    return inst


async def create_event(ctx: GraphContext) -> Response:
    owner, calendar = _target(ctx, "write")
    body = await ctx.json()
    transaction_id = body.get("transactionId")
    if isinstance(transaction_id, str) and transaction_id:
        existing = store.find_by_transaction(ctx.world, owner.id, transaction_id)
        if existing is not None:
            return json_response(_event_body(ctx, owner, Instance(existing, existing.start, existing.end)), 201)
    if "start" not in body or "end" not in body:
        raise GraphError(
            400, "ErrorInvalidRequest", "Your request can't be completed. The start and end of the event are required."
        )
    changes = parse_changes(body, existing=None)
    apply_meeting(None, changes)
    if changes["end"] < changes["start"]:
        raise GraphError(400, "ErrorInvalidRequest", "The end time must be after the start time.")
    event = Event(id=new_id(), mailbox_id=owner.id, subject="", start=changes["start"], end=changes["end"])
    for name, value in changes.items():
        setattr(event, name, value)
    event.calendar_id = calendar
    event.created_by_client_id = ctx.caller.client_id
    store.add_event(ctx.world, event)
    return json_response(_event_body(ctx, owner, Instance(event, event.start, event.end)), 201)


async def list_events(ctx: GraphContext) -> Response:
    """``GET /events``: single instances and series masters (occurrences are a calendarView matter).

    ``/events`` and ``/calendar/events`` list the primary calendar, ``/calendars/{id}/events`` that calendar.
    """
    owner, calendar = _target(ctx, "read")
    with ctx.world.lock:
        events = sorted(
            (e for e in ctx.world.mailbox_events(owner.id) if e.calendar_id == calendar),
            key=lambda e: (e.created, e.id),
        )
    raw_filter = ctx.request.query_params.get("$filter")
    carries = property_filter(raw_filter)
    if carries is not None:
        events = [e for e in events if carries(e.extended_properties)]
        raw_filter = None
    items = [_event_body(ctx, owner, Instance(e, e.start, e.end), entity=False) for e in events]
    if raw_filter:
        predicate = odata.compile_filter(raw_filter, odata.property_getter())
        items = [i for i in items if predicate(i)]
    return json_response(page(ctx, items, f"users('{owner.id}')/events"))


def page(ctx: GraphContext, items: list[dict[str, Any]], context: str) -> dict[str, Any]:
    """One page of a collection: $top / Prefer odata.maxpagesize, with an @odata.nextLink carrying $skiptoken."""
    request = ctx.request
    size = odata.prefer_max_page_size(request) or odata.top(request, default=DEFAULT_PAGE, maximum=1000)
    if "$top" in request.query_params:
        size = odata.top(request, default=DEFAULT_PAGE, maximum=1000)
    skip = 0
    token = request.query_params.get("$skiptoken")
    if token:
        skip = int(odata.decode_token(token).get("skip", 0))
    body: dict[str, Any] = {"@odata.context": odata.context_url(request, context)}
    if skip + size < len(items):
        body["@odata.nextLink"] = odata.link(request, **{"$skiptoken": odata.encode_token({"skip": skip + size})})
    body["value"] = items[skip : skip + size]
    return body


async def get_event(ctx: GraphContext) -> Response:
    owner, calendar = _target(ctx, "read")
    inst = _find(ctx, owner, calendar)
    return json_response(_event_body(ctx, owner, inst))


def _series_item(inst: Instance) -> Event:
    if inst.occurrence_id is not None:
        # Exceptions to a series are not modelled; change the series master instead.
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Changing a single occurrence of a series is not supported here; change the series.",
        )
    return inst.event


async def update_event(ctx: GraphContext) -> Response:
    owner, calendar = _target(ctx, "write")
    event = _series_item(_find(ctx, owner, calendar))
    body = await ctx.json()
    changes = parse_changes(body, existing=event)
    if event.organizer_event_id is not None:
        # An attendee may only change their own view of the meeting.
        changes = {
            k: v
            for k, v in changes.items()
            if k in ("show_as", "categories", "extended_properties", "is_reminder_on", "reminder_minutes_before_start")
        }
    else:
        moved = any(k in changes and changes[k] != getattr(event, k) for k in ("start", "end"))
        drop = switches.take_meeting_drop(ctx.world, owner.id) if moved and event.online_meeting else None
        apply_meeting(event, changes, drop=drop)
    store.update_event(ctx.world, event, changes)
    return json_response(_event_body(ctx, owner, Instance(event, event.start, event.end)))


async def delete_event(ctx: GraphContext) -> Response:
    owner, calendar = _target(ctx, "write")
    event = _series_item(_find(ctx, owner, calendar))
    store.delete_event(ctx.world, event)
    return Response(status_code=204)


async def cancel_event(ctx: GraphContext) -> Response:
    owner, calendar = _target(ctx, "write")
    event = _series_item(_find(ctx, owner, calendar))
    body = {key.lower(): value for key, value in (await ctx.json()).items()}  # action parameters: any case
    store.cancel_event(ctx.world, event, str(body.get("comment") or ""))
    return Response(status_code=202)


def _respond(response: str) -> Any:
    async def handler(ctx: GraphContext) -> Response:
        owner, calendar = _target(ctx, "write")
        event = _series_item(_find(ctx, owner, calendar))
        if event.organizer_event_id is None:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. You can't respond to a meeting you organized.",
            )
        organizer_event = store.organizer_of(ctx.world, event)
        if organizer_event is None:
            raise store.not_found()
        body = {key.lower(): value for key, value in (await ctx.json()).items()}  # action parameters: any case
        proposed = body.get("proposednewtime")
        start = end = None
        if isinstance(proposed, dict) and response in ("declined", "tentativelyAccepted"):
            if not organizer_event.allow_new_time_proposals:
                # "Valid only for events that allow new time proposals" (v1.0 api/event-tentativelyaccept.md,
                # event-decline.md); the error Graph answers otherwise is not documented.
                raise GraphError(
                    400, "ErrorInvalidRequest", "The organizer doesn't allow new time proposals for this meeting."
                )
            start = parse_datetime_timezone(proposed.get("start"), field_name="proposedNewTime.start")
            end = parse_datetime_timezone(proposed.get("end"), field_name="proposedNewTime.end")
        store.respond(ctx.world, organizer_event, owner.mail, response, proposed_start=start, proposed_end=end)
        return Response(status_code=202)

    return handler


def routes(world: World) -> list[BaseRoute]:
    result: list[BaseRoute] = []
    for base in ("/me", "/users/{user}"):
        for coll in ("/events", "/calendar/events", "/calendars/{calendar}/events"):
            result.append(graph_route(world, base + coll, create_event, ["POST"]))
            result.append(graph_route(world, base + coll, list_events, ["GET"]))
        for item in ("/events/{event}", "/calendar/events/{event}", "/calendars/{calendar}/events/{event}"):
            result.append(graph_route(world, base + item, get_event, ["GET"]))
            result.append(graph_route(world, base + item, update_event, ["PATCH"]))
            result.append(graph_route(world, base + item, delete_event, ["DELETE"]))
            result.append(graph_route(world, base + item + "/cancel", cancel_event, ["POST"]))
            result.append(graph_route(world, base + item + "/accept", _respond("accepted"), ["POST"]))
            result.append(graph_route(world, base + item + "/decline", _respond("declined"), ["POST"]))
            result.append(
                graph_route(world, base + item + "/tentativelyAccept", _respond("tentativelyAccepted"), ["POST"])
            )
    return result
