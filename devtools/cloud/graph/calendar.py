"""Calendar reads: getSchedule (free/busy), calendarView, calendarView/delta, and the calendar itself.

What getSchedule reveals follows the documented rule: subject, location and isPrivate only for
``normal``/``personal`` events of a user who shares details with the signed-in user (or is that
user). App-only callers have no signed-in user, so they get status, start and end only.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from devtools.cloud.common import GraphError
from devtools.cloud.graph import calendars, delegation, odata, store
from devtools.cloud.graph.events import OUTLOOK_WEB, calendar_id, page
from devtools.cloud.graph.pipeline import GraphContext, graph_route, json_response
from devtools.cloud.graph.serialize import event_json
from devtools.cloud.graph.store import Instance
from devtools.cloud.graph.timezones import format_local, parse_datetime_timezone, parse_query_datetime
from devtools.cloud.state import Event, User, World

MAX_SCHEDULES = 20
MAX_WINDOW = timedelta(days=62)  # "The time period to look up must be less than 62 days."
DEFAULT_INTERVAL = 30
# availabilityView codes (newest text): 0 free or working elsewhere, 1 tentative, 2 busy, 3 out of office.
VIEW_CODE = {"free": 0, "workingElsewhere": 0, "unknown": 0, "tentative": 1, "busy": 2, "oof": 3}
DETAIL_SENSITIVITY = {"normal", "personal"}
DELTA_PAGE = 10


def _invalid(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidParameter", message)


def _schedule_error(address: str, message: str, code: str) -> dict[str, Any]:
    # Observed shape of an unresolvable entry (the documentation only says "indicates the error").
    return {"scheduleId": address, "error": {"message": message, "responseCode": code}}


def availability_view(busy: list[Instance], start: datetime, end: datetime, interval: int) -> str:
    """One digit per interval of ``[start, end)``: the strongest showAs code of what overlaps it.

    Each item marks the slots it overlaps (integer arithmetic over the slot grid), so the cost grows
    with items plus slots rather than their product.
    """
    step = timedelta(minutes=interval)
    slots = math.ceil((end - start) / step)
    view = bytearray(b"0" * slots)
    for inst in busy:
        code = VIEW_CODE.get(inst.event.show_as, 0)
        if code == 0 or inst.end <= start or inst.start >= end or inst.end <= inst.start:
            continue
        digit = ord("0") + code
        first = max(0, (inst.start - start) // step)
        last = min(slots, -((start - inst.end) // step))  # ceil division: the slot holding the item's end
        for index in range(first, last):
            if view[index] < digit:
                view[index] = digit
    return view.decode("ascii")


def schedule_information(
    ctx: GraphContext,
    address: str,
    start: datetime,
    end: datetime,
    interval: int,
    *,
    user: User | None = None,
    events: list[Event] | None = None,
) -> dict[str, Any]:
    """One scheduleInformation; ``user`` and ``events`` may come resolved already (one pass per request)."""
    world = ctx.world
    if user is None:
        user = world.find_user(ctx.caller.tenant_id, address)
    if user is None:
        return _schedule_error(
            address, f"Unable to resolve e-mail address {address} to an Active Directory object.", "5009"
        )
    if user.mailbox_on_premises:
        return _schedule_error(
            address,
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            "MailboxNotEnabledForRESTAPI",
        )
    viewer = ctx.caller.user_id
    with world.lock:
        sees_details = delegation.may_open(world, user, viewer)
        working_hours = user.mailbox_settings.get("workingHours")
    tz = ctx.prefer_tz
    if events is None:
        with world.lock:
            events = [e for e in world.mailbox_events(user.id) if e.calendar_id is None]
    items, view = _rendered(user.id, events, start, end, interval, tz, sees_details)
    result: dict[str, Any] = {"scheduleId": address, "availabilityView": view, "scheduleItems": items}
    if working_hours is not None:
        # As stored: a named zone (Windows or IANA) or a customTimeZone, never converted to Prefer's zone.
        result["workingHours"] = working_hours
    return result


# A person's busy items and availabilityView are a pure function of their calendar's events as they are
# now, the window, the interval, the zone asked for and whether the caller sees details: rendered once
# per such content (a recruiter's panel is asked again and again, five calls of 20 at a time) and
# keyed by every event field the rendering reads, so any change to an event is a new key. The cloud
# serves concurrent requests on one thread: its CPU per request is every other caller's latency.
_RENDERED_MAX = 4096
_rendered_seen: dict[tuple[Any, ...], tuple[list[dict[str, Any]], str]] = {}


def _content(event: Event) -> tuple[Any, ...]:
    """Every field of ``event`` that its busy items and occurrences depend on."""
    return (
        event.id,
        event.start,
        event.end,
        event.show_as,
        event.is_cancelled,
        event.sensitivity,
        event.subject,
        event.location,
        store.pattern_key(event),
        event.original_start_time_zone,
    )


def _rendered(
    mailbox_id: str,
    events: list[Event],
    start: datetime,
    end: datetime,
    interval: int,
    tz: str | None,
    sees_details: bool,
) -> tuple[list[dict[str, Any]], str]:
    """(scheduleItems, availabilityView) of one person's primary-calendar ``events``; the items are shared
    between answers, so callers serialise them and never change them."""
    key = (mailbox_id, start, end, interval, tz, sees_details, tuple(_content(e) for e in events))
    found = _rendered_seen.get(key)
    if found is not None:
        return found
    instances = sorted(
        (inst for event in events for inst in store.expand(event, start, end)),
        key=lambda inst: (inst.start, inst.end, inst.id),
    )
    busy = [inst for inst in instances if not inst.event.is_cancelled]
    items: list[dict[str, Any]] = []
    for inst in busy:
        item: dict[str, Any] = {}
        detailed = sees_details and inst.event.sensitivity in DETAIL_SENSITIVITY
        if detailed:
            item["isPrivate"] = False
        item["status"] = inst.event.show_as
        if detailed:
            item["subject"] = inst.event.subject
            item["location"] = inst.event.location
        item["start"] = format_local(inst.start, tz)
        item["end"] = format_local(inst.end, tz)
        items.append(item)
    found = (items, availability_view(busy, start, end, interval))
    if len(_rendered_seen) >= _RENDERED_MAX:
        _rendered_seen.clear()
    _rendered_seen[key] = found
    return found


async def get_schedule(ctx: GraphContext) -> Response:
    ctx.mailbox(ctx.request.path_params.get("user"), "schedule")
    # Action parameters are matched case-insensitively: the SDKs send "Schedules", "StartTime", ...
    body = {key.lower(): value for key, value in (await ctx.json()).items()}
    schedules = body.get("schedules")
    if not isinstance(schedules, list) or not schedules or not all(isinstance(s, str) for s in schedules):
        raise _invalid("The schedules parameter is required and must list SMTP addresses.")
    if len(schedules) > MAX_SCHEDULES:
        raise _invalid(f"The number of schedules requested exceeds the limit of {MAX_SCHEDULES}.")
    if "starttime" not in body or "endtime" not in body:
        raise _invalid("The startTime and endTime parameters are required.")
    start = parse_datetime_timezone(body["starttime"], field_name="startTime")
    end = parse_datetime_timezone(body["endtime"], field_name="endTime")
    if end <= start:
        raise _invalid("The endTime must be after the startTime.")
    if end - start >= MAX_WINDOW:
        raise _invalid("The time period to look up must be less than 62 days.")
    interval = body.get("availabilityviewinterval", DEFAULT_INTERVAL)
    if interval is None:
        interval = DEFAULT_INTERVAL
    if not isinstance(interval, int) or not 5 <= interval <= 1440:
        raise _invalid("availabilityViewInterval must be between 5 and 1440 minutes.")
    # One pass over the directory for all schedules; each person's events from the store's mailbox index.
    tenant_id = ctx.caller.tenant_id
    wanted = {address.lower() for address in schedules}
    people: dict[str, User] = {}
    events: dict[str, list[Event]] = {}
    with ctx.world.lock:
        for person in ctx.world.users.values():
            if person.tenant_id != tenant_id:
                continue
            for key in (person.id, person.mail.lower(), person.user_principal_name.lower()):
                if key in wanted:
                    people[key] = person
                    # Free/busy reads the primary calendar only.
                    events[person.id] = [e for e in ctx.world.events.of_mailbox(person.id) if e.calendar_id is None]
    values = []
    for address in schedules:
        who = people.get(address.lower())
        mailbox = events.get(who.id) if who is not None else None
        values.append(schedule_information(ctx, address, start, end, interval, user=who, events=mailbox))
    return json_response(
        {
            "@odata.context": odata.context_url(ctx.request, "Collection(microsoft.graph.scheduleInformation)"),
            "value": values,
        }
    )


def _window(ctx: GraphContext) -> tuple[datetime, datetime]:
    params = ctx.request.query_params
    raw_start, raw_end = params.get("startDateTime"), params.get("endDateTime")
    if not raw_start or not raw_end:
        raise _invalid(
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime."
        )
    try:
        start = parse_query_datetime(raw_start)
        end = parse_query_datetime(raw_end)
    except ValueError as err:
        raise _invalid("The startDateTime or endDateTime value is not a valid ISO 8601 date and time.") from err
    assert start is not None and end is not None
    return start, end


def _order(ctx: GraphContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    raw = ctx.request.query_params.get("$orderby")
    if not raw:
        return items
    prop, _, direction = raw.strip().partition(" ")
    getter = odata.property_getter()
    if prop.lower() not in ("start/datetime", "end/datetime", "subject", "createddatetime", "lastmodifieddatetime"):
        raise GraphError(400, "BadRequest", f"The $orderby property '{prop}' is not supported.")
    if prop.lower() in ("start/datetime", "end/datetime"):
        # Order by the instant: every item of one response shares one time zone anyway.
        return sorted(items, key=lambda i: getter(i, prop) or "", reverse=direction.strip().lower() == "desc")
    return sorted(items, key=lambda i: str(getter(i, prop) or ""), reverse=direction.strip().lower() == "desc")


async def calendar_view(ctx: GraphContext) -> Response:
    owner, cid = calendars.resolve(
        ctx, ctx.request.path_params.get("user"), ctx.request.path_params.get("calendar"), "read"
    )
    start, end = _window(ctx)
    items = [
        event_json(ctx.world, inst, base_url=OUTLOOK_WEB, tz_name=ctx.prefer_tz)
        for inst in store.instances(ctx.world, owner.id, start, end, cid)
    ]
    raw_filter = ctx.request.query_params.get("$filter")
    if raw_filter:
        predicate = odata.compile_filter(raw_filter, odata.property_getter())
        items = [i for i in items if predicate(i)]
    items = _order(ctx, items)
    fields = odata.select_fields(ctx.request)
    if fields is not None:
        items = [odata.apply_select(i, fields, keep=("id",)) for i in items]
    body = page(ctx, items, f"users('{owner.id}')/calendarView")
    headers = {}
    max_page = odata.prefer_max_page_size(ctx.request)
    if max_page is not None:
        headers["Preference-Applied"] = f"odata.maxpagesize={max_page}"
    response = json_response(body, headers=headers)
    return response


async def event_instances(ctx: GraphContext) -> Response:
    """``GET /events/{id}/instances``: the occurrences of one series inside a window."""
    owner = ctx.mailbox(ctx.request.path_params.get("user"), "read")
    master = store.find_event(ctx.world, owner.id, ctx.request.path_params["event"]).event
    start, end = _window(ctx)
    items = [
        event_json(ctx.world, inst, base_url=OUTLOOK_WEB, tz_name=ctx.prefer_tz)
        for inst in store.expand(master, start, end)
    ]
    return json_response(page(ctx, items, f"users('{owner.id}')/events('{master.id}')/instances"))


# ---- calendarView/delta -----------------------------------------------------------------------
# The delta query overview: "410 (gone) and a Location header" when the token can no longer be used,
# with the error codes resyncRequired ("The delta token is no longer valid, and the app must reset the
# sync state") and syncStateNotFound ("The sync state generation is not found. The delta token is
# expired and data must be synchronized again"). Which of the two an unknown token draws is not
# documented; this cloud answers syncStateNotFound (no sync state under that token) and an invalidated
# one with the code its control chose.
GONE_MESSAGES = {
    "resyncRequired": "The delta token is no longer valid, and the app must reset the sync state.",
    "syncStateNotFound": "The sync state generation is not found. The delta token is expired and data must be "
    "synchronized again.",
}


def _delta_gone(ctx: GraphContext, code: str, token: dict[str, Any] | None) -> GraphError:
    """410 Gone whose Location restarts the sync: the token's own window when it can be read, else the
    delta resource without a window (the client adds its own)."""
    window = token or {}
    restart = odata.link(
        ctx.request,
        **{
            "$deltatoken": None,
            "$skiptoken": None,
            "startDateTime": window.get("s"),
            "endDateTime": window.get("e"),
        },
    )
    return GraphError(410, code, GONE_MESSAGES[code], headers={"Location": restart})


def _read_token(ctx: GraphContext, raw: str, owner: User) -> dict[str, Any]:
    """A delta or skip token this cloud issued for ``owner`` and still honours; 410 otherwise."""
    try:
        token = odata.decode_token(raw)
        parse_query_datetime(str(token["s"]))
        parse_query_datetime(str(token["e"]))
        int(token["seq"])
    except (GraphError, KeyError, TypeError, ValueError):
        raise _delta_gone(ctx, "syncStateNotFound", None) from None
    if token.get("m") != owner.id:
        # Another mailbox's token: no sync state of this mailbox goes by it.
        raise _delta_gone(ctx, "syncStateNotFound", None)
    generation = list(store.delta_generation(ctx.world, owner.id))
    if token.get("g") != generation:
        raise _delta_gone(ctx, store.delta_gone_code(ctx.world, owner.id, list(token.get("g") or [])), token)
    return token


def _removed(event_id: str) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}


def _delta_items(
    ctx: GraphContext, owner: User, start: datetime, end: datetime, since: int | None
) -> list[dict[str, Any]]:
    world = ctx.world
    tz = ctx.prefer_tz

    def render(inst: Instance) -> dict[str, Any]:
        body = {"@odata.type": "#microsoft.graph.event"}
        body.update(event_json(world, inst, base_url=OUTLOOK_WEB, tz_name=tz))
        return body

    if since is None:
        return [render(inst) for inst in store.instances(world, owner.id, start, end)]
    state = store.graph_state(world)
    with world.lock:
        changed: dict[str, str] = {}
        earlier: dict[str, list[Event]] = {}
        for change in state.changes:
            if change.seq > since and change.mailbox_id == owner.id:
                # The first change since the token tells whether the client can have seen the item.
                changed.setdefault(change.event_id, change.change_type)
                if change.before is not None:
                    earlier.setdefault(change.event_id, []).append(change.before)
        current = {eid: world.events.get(eid) for eid in changed}
        tombstones = {eid: state.tombstones.get(eid) for eid in changed}
    items: list[dict[str, Any]] = []
    for event_id, kind in changed.items():
        event = current[event_id]
        if event is not None and event.mailbox_id == owner.id:
            found = list(store.expand(event, start, end))
            items.extend(render(inst) for inst in found)
            # Items the client may hold that this view no longer has: occurrences of the series as it
            # was before its times or pattern changed, and a single event moved out of the window.
            now = {inst.id for inst in found}
            gone: list[str] = []
            for old in earlier.get(event_id, []):
                gone += [i.id for i in store.expand(old, start, end) if i.id not in now and i.id not in gone]
            if event.recurrence is None and not found and kind != "created" and event_id not in gone:
                gone.append(event_id)
            items.extend(_removed(i) for i in gone)
            continue
        if kind == "created":
            continue  # created and deleted since the last round: the client never saw it
        tomb = tombstones[event_id]
        if tomb is not None and tomb.recurrence is not None:
            items.extend(_removed(inst.id) for inst in store.expand(tomb, start, end))
        items.append(_removed(event_id))
    return items


async def calendar_view_delta(ctx: GraphContext) -> Response:
    """``GET /users/{id}/calendarView/delta`` (or ``/me``): app tokens need Calendars.Read or
    Calendars.ReadWrite (application); delegated ones the same for their own mailbox, the .Shared
    permission and a share for another's."""
    owner = ctx.mailbox(ctx.request.path_params.get("user"), "read")
    params = ctx.request.query_params
    world = ctx.world
    generation = list(store.delta_generation(world, owner.id))
    state = store.graph_state(world)
    skiptoken, deltatoken = params.get("$skiptoken"), params.get("$deltatoken")
    if skiptoken or deltatoken:
        token = _read_token(ctx, skiptoken or deltatoken or "", owner)
        start = parse_query_datetime(token["s"])
        end = parse_query_datetime(token["e"])
        assert start is not None and end is not None
        if skiptoken:
            since, round_seq, offset = token.get("since"), int(token["seq"]), int(token.get("off", 0))
        else:
            with world.lock:
                since, round_seq, offset = int(token["seq"]), state.seq, 0
    else:
        start, end = _window(ctx)
        if end <= start:
            raise _invalid("The endDateTime must be after the startDateTime.")
        with world.lock:
            since, round_seq, offset = None, state.seq, 0
    items = _delta_items(ctx, owner, start, end, since)
    requested = odata.prefer_max_page_size(ctx.request)
    size = requested or DELTA_PAGE
    common = {"m": owner.id, "s": start.isoformat(), "e": end.isoformat(), "g": generation}
    body: dict[str, Any] = {"@odata.context": odata.context_url(ctx.request, "Collection(event)")}
    base = {"startDateTime": None, "endDateTime": None, "$skiptoken": None, "$deltatoken": None}
    if offset + size < len(items):
        next_token = odata.encode_token({**common, "since": since, "seq": round_seq, "off": offset + size})
        body["@odata.nextLink"] = odata.link(ctx.request, **{**base, "$skiptoken": next_token})
    else:
        next_token = odata.encode_token({**common, "seq": round_seq})
        body["@odata.deltaLink"] = odata.link(ctx.request, **{**base, "$deltatoken": next_token})
    body["value"] = items[offset : offset + size]
    headers = {"Preference-Applied": f"odata.maxpagesize={requested}"} if requested is not None else None
    return json_response(body, headers=headers)


async def get_calendar(ctx: GraphContext) -> Response:
    owner = ctx.mailbox(ctx.request.path_params.get("user"), "read")
    return json_response(
        {
            "@odata.context": odata.context_url(ctx.request, f"users('{owner.id}')/calendars/$entity"),
            **_calendar_json(owner),
        }
    )


async def list_calendars(ctx: GraphContext) -> Response:
    owner = ctx.mailbox(ctx.request.path_params.get("user"), "read")
    return json_response(
        {
            "@odata.context": odata.context_url(ctx.request, f"users('{owner.id}')/calendars"),
            "value": [_calendar_json(owner), *calendars.other_calendars(ctx, owner, own_list=True)],
        }
    )


def _calendar_json(owner: User) -> dict[str, Any]:
    return {
        "id": calendar_id(owner),
        "name": "Calendar",
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": True,
        "changeKey": "",
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": False,
        "owner": {"name": owner.display_name, "address": owner.mail},
    }


def routes(world: World) -> list[BaseRoute]:
    result: list[BaseRoute] = []
    for base in ("/me", "/users/{user}"):
        result += [
            graph_route(world, base + "/calendar/getSchedule", get_schedule, ["POST"]),
            graph_route(world, base + "/calendarView/delta", calendar_view_delta, ["GET"]),
            graph_route(world, base + "/calendarView", calendar_view, ["GET"]),
            graph_route(world, base + "/calendar/calendarView", calendar_view, ["GET"]),
            graph_route(world, base + "/calendars/{calendar}/calendarView", calendar_view, ["GET"]),
            graph_route(world, base + "/events/{event}/instances", event_instances, ["GET"]),
            graph_route(world, base + "/calendar", get_calendar, ["GET"]),
            graph_route(world, base + "/calendars", list_calendars, ["GET"]),
        ]
    return result
