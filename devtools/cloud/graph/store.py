"""Calendar data operations on the World: every create, change and delete of an event goes through here.

Each write bumps the event's changeKey, appends to the change log that ``calendarView/delta`` reads,
and calls ``World.emit_change`` once per affected mailbox event (after the lock is released, so
listeners may take it themselves).

Meetings, simplified from Exchange: an event created in mailbox X with attendees who have mailboxes
in X's tenant also gets a copy in each attendee's calendar, sharing the iCalUId and pointing back to
the organizer's event (``organizer_event_id``). Exchange does this by sending meeting requests that
the attendee's mailbox processes; here it happens at once, with no inbox messages. An unanswered copy
shows as tentative (as Outlook shows unanswered requests), accepted copies take the organizer's
showAs, and a declined copy is removed from the attendee's calendar. Organizer updates, deletes and
cancels propagate to the copies (a moved meeting resets responses); attendee responses are written
back to the organizer's attendee list and to every copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from devtools.cloud.common import GraphError
from devtools.cloud.graph import recurrence
from devtools.cloud.state import Attendee, Event, User, World, new_id, utcnow

_SLOT = "graph"
RESPONSES = {"none", "accepted", "tentativelyAccepted", "declined", "notResponded", "organizer"}


@dataclass
class Change:
    seq: int
    mailbox_id: str
    event_id: str
    change_type: str  # created | updated | deleted
    # For an event whose times or pattern changed: the event as it was, so delta can name the
    # occurrences (or the single item) that no longer exist in a view as removed.
    before: Event | None = None


@dataclass
class GraphState:
    """Graph's own bookkeeping in ``world.extra``: change log, delta generations, in-flight requests."""

    seq: int = 0
    changes: list[Change] = field(default_factory=list)
    # Deleted events by id, kept so delta can name their occurrences as removed.
    tombstones: dict[str, Event] = field(default_factory=dict)
    # Bumped to invalidate every delta token issued for a mailbox ("*" for all mailboxes).
    delta_generation: dict[str, int] = field(default_factory=dict)
    # The error code a token of an older generation answers with (by the same keys).
    delta_gone_code: dict[str, str] = field(default_factory=dict)
    # Graph requests by (method, path, tenant, client, user or "", inside a $batch): see request_log.
    requests: dict[tuple[str, str, str, str, str, bool], int] = field(default_factory=dict)
    # (client_id, mailbox_id) -> requests being served now, for the four-concurrent-requests limit.
    in_flight: dict[tuple[str, str], int] = field(default_factory=dict)
    # Graph requests answered, and how many of them 429 (throttled), for load measurements.
    answered: int = 0
    throttled: int = 0
    # Seconds mailbox slots were held, summed over all requests (occupancy = slot_seconds / elapsed).
    slot_seconds: float = 0.0
    # Secondary calendars by id (graph/calendars.py SecondaryCalendar).
    calendars: dict[str, Any] = field(default_factory=dict)


def graph_state(world: World) -> GraphState:
    return world.module_state(_SLOT, GraphState)


def not_found() -> GraphError:
    # Exchange's answer for an item id it does not hold in this mailbox.
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


class _Pending:
    """Change notifications to emit once the world lock is released."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.items: list[tuple[str, str, str, str]] = []

    def record(self, event: Event, change_type: str, *, before: Event | None = None) -> None:
        if change_type != "deleted":
            event.last_modified = utcnow()
            event.change_key = new_id()
        if event.calendar_id is not None:
            # A secondary calendar is a folder of its own: the mailbox's change log (calendarView/delta of
            # the primary calendar) and its /events subscriptions do not see it (graph/calendars.py).
            return
        state = graph_state(self.world)
        state.seq += 1
        state.changes.append(Change(state.seq, event.mailbox_id, event.id, change_type, before))
        owner = self.world.users.get(event.mailbox_id)
        if owner is not None:
            self.items.append((owner.tenant_id, event.mailbox_id, change_type, event.id))

    def flush(self) -> None:
        for item in self.items:
            self.world.emit_change(*item)
        self.items.clear()


def mailbox_owner(world: World, event: Event) -> User:
    user = world.users.get(event.mailbox_id)
    if user is None:
        raise not_found()
    return user


def is_organizer(world: World, event: Event) -> bool:
    return event.organizer_event_id is None


def copies_of(world: World, organizer_event: Event) -> list[Event]:
    return [e for e in world.events.values() if e.organizer_event_id == organizer_event.id]


def organizer_of(world: World, event: Event) -> Event | None:
    if event.organizer_event_id is None:
        return event
    return world.events.get(event.organizer_event_id)


def own_attendee(world: World, event: Event) -> Attendee | None:
    owner = world.users.get(event.mailbox_id)
    if owner is None:
        return None
    for attendee in event.attendees:
        if attendee.address.lower() in (owner.mail.lower(), owner.user_principal_name.lower()):
            return attendee
    return None


# ---- reads ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instance:
    """One item of a calendar view: a single event, or one occurrence of a series."""

    event: Event
    start: datetime
    end: datetime
    occurrence_id: str | None = None  # set for occurrences

    @property
    def id(self) -> str:
        return self.occurrence_id or self.event.id


def occurrence_id(master_id: str, start: datetime) -> str:
    return f"{master_id}_{start.strftime('%Y%m%dT%H%M%SZ')}"


def expand(event: Event, window_start: datetime, window_end: datetime) -> Iterator[Instance]:
    if event.recurrence is None:
        if event.start < window_end and event.end > window_start:
            yield Instance(event, event.start, event.end)
        return
    duration = event.end - event.start
    for start, end, instance_id in _occurrences(event, duration, window_start, window_end):
        yield Instance(event, start, end, instance_id)


# A series' occurrences in a window are a pure function of the series as it is now and the window:
# getSchedule asks the same windows of the same series over and over (a panel of 100 is five calls), and
# walking a pattern day by day was most of its cost. Keyed by the series' content, so an edit is a new key.
_OCCURRENCES_MAX = 4096
_occurrences_seen: dict[tuple[Any, ...], tuple[tuple[datetime, datetime, str], ...]] = {}


def pattern_key(event: Event) -> bytes | None:
    """The series pattern as one comparable value (None for a single event): what was remembered of the
    series stays valid only while this is unchanged."""
    if event.recurrence is None:
        return None
    return orjson.dumps(event.recurrence, option=orjson.OPT_SORT_KEYS, default=str)


def _occurrences(
    event: Event, duration: timedelta, window_start: datetime, window_end: datetime
) -> tuple[tuple[datetime, datetime, str], ...]:
    """(start, end, occurrence id) of each occurrence of the series in the window."""
    assert event.recurrence is not None
    key = (
        event.id,
        pattern_key(event),
        event.start,
        duration,
        event.original_start_time_zone,
        window_start,
        window_end,
    )
    found = _occurrences_seen.get(key)
    if found is None:
        found = tuple(
            (start, end, occurrence_id(event.id, start))
            for start, end in recurrence.occurrences(
                event.recurrence, event.start, duration, event.original_start_time_zone, window_start, window_end
            )
        )
        if len(_occurrences_seen) >= _OCCURRENCES_MAX:
            _occurrences_seen.clear()
        _occurrences_seen[key] = found
    return found


def instances(
    world: World, mailbox_id: str, window_start: datetime, window_end: datetime, calendar_id: str | None = None
) -> list[Instance]:
    """Single instances and occurrences in one calendar of a mailbox (default: the primary one) overlapping
    the window, ordered by start."""
    with world.lock:
        events = [e for e in world.mailbox_events(mailbox_id) if e.calendar_id == calendar_id]
    found = [inst for event in events for inst in expand(event, window_start, window_end)]
    found.sort(key=lambda inst: (inst.start, inst.end, inst.id))
    return found


def find_event(world: World, mailbox_id: str, event_id: str) -> Instance:
    """An event or occurrence of this mailbox by id; 404 ErrorItemNotFound otherwise."""
    with world.lock:
        event = world.events.get(event_id)
        if event is not None and event.mailbox_id == mailbox_id:
            return Instance(event, event.start, event.end)
        master_id, sep, stamp = event_id.partition("_")
        master = world.events.get(master_id) if sep else None
        if master is None or master.mailbox_id != mailbox_id or master.recurrence is None:
            raise not_found()
        try:
            start = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=master.start.tzinfo)
        except ValueError as err:
            raise not_found() from err
        for inst in expand(master, start, start + timedelta(seconds=1)):
            if inst.start == start:
                return inst
    raise not_found()


def find_by_transaction(world: World, mailbox_id: str, transaction_id: str) -> Event | None:
    with world.lock:
        for event in world.events.values():
            if event.mailbox_id == mailbox_id and event.transaction_id == transaction_id:
                return event
    return None


# ---- writes -----------------------------------------------------------------------------------
def _attendee_mailboxes(world: World, organizer: User, event: Event) -> list[tuple[Attendee, User]]:
    found: list[tuple[Attendee, User]] = []
    for attendee in event.attendees:
        user = world.find_user(organizer.tenant_id, attendee.address)
        if user is not None and user.id != organizer.id and attendee.type != "resource":
            found.append((attendee, user))
    return found


def _copy_for(source: Event, attendee_mailbox: User, attendee: Attendee) -> Event:
    copy = dataclasses.replace(
        source,
        id=new_id(),
        mailbox_id=attendee_mailbox.id,
        attendees=[dataclasses.replace(a) for a in source.attendees],
        extended_properties={},  # extended properties belong to the item they were set on
        transaction_id=None,
        organizer_event_id=source.id,
        calendar_id=None,  # meeting requests land in the attendee's primary calendar
        detached_meeting=None,
        created=utcnow(),
        created_by_client_id=None,
    )
    copy.show_as = _attendee_show_as(source, attendee.response)
    return copy


def _attendee_show_as(organizer_event: Event, response: str) -> str:
    if response == "accepted":
        return organizer_event.show_as
    if organizer_event.show_as == "free":
        return "free"
    return "tentative"


def _sync_copies(world: World, organizer_event: Event, pending: _Pending, *, moved: bool) -> None:
    """Make attendee copies mirror the organizer's event: new attendees get one, removed ones lose theirs."""
    owner = world.users.get(organizer_event.mailbox_id)
    if owner is None:
        return
    wanted = {user.id: (attendee, user) for attendee, user in _attendee_mailboxes(world, owner, organizer_event)}
    for copy in copies_of(world, organizer_event):
        if copy.mailbox_id not in wanted:
            # Removed from the meeting: Exchange sends a cancellation and the copy goes.
            del world.events[copy.id]
            graph_state(world).tombstones[copy.id] = copy
            pending.record(copy, "deleted")
            continue
        attendee, _user = wanted.pop(copy.mailbox_id)
        reshaped = (copy.start, copy.end, copy.recurrence) != (
            organizer_event.start,
            organizer_event.end,
            organizer_event.recurrence,
        )
        before = dataclasses.replace(copy) if reshaped else None
        for name in (
            "subject",
            "start",
            "end",
            "is_all_day",
            "sensitivity",
            "location",
            "body",
            "body_content_type",
            "is_cancelled",
            "is_online_meeting",
            "online_meeting_provider",
            "online_meeting",
            "allow_new_time_proposals",
            "hide_attendees",
            "location_details",
            "recurrence",
            "original_start_time_zone",
            "original_end_time_zone",
            "organizer_address",
            "organizer_name",
            "response_requested",
        ):
            setattr(copy, name, getattr(organizer_event, name))
        copy.attendees = [dataclasses.replace(a) for a in organizer_event.attendees]
        copy.show_as = "free" if organizer_event.is_cancelled else _attendee_show_as(organizer_event, attendee.response)
        pending.record(copy, "updated", before=before)
    if organizer_event.is_cancelled:
        return
    for attendee, user in wanted.values():
        if attendee.response == "declined" and not moved:
            continue  # a declined meeting stays out of the attendee's calendar until it changes
        copy = _copy_for(organizer_event, user, attendee)
        world.events[copy.id] = copy
        pending.record(copy, "created")


def add_event(world: World, event: Event) -> Event:
    """Store a new event (organizer side) and its attendee copies; emit created changes."""
    pending = _Pending(world)
    with world.lock:
        if event.recurrence is not None:
            recurrence.validate(event.recurrence)
        owner = world.users.get(event.mailbox_id)
        if owner is None:
            raise not_found()
        if not event.organizer_address:
            event.organizer_address = owner.mail
            event.organizer_name = owner.display_name
        world.events[event.id] = event
        pending.record(event, "created")
        if event.organizer_event_id is None:
            _sync_copies(world, event, pending, moved=False)
    pending.flush()
    return event


def update_event(world: World, event: Event, changes: dict[str, Any]) -> Event:
    """Apply field changes (names of ``Event`` attributes) as the owner would, and propagate.

    A change of start or end on a meeting resets the attendees' responses, as Outlook asks everyone
    again when a meeting moves.
    """
    pending = _Pending(world)
    with world.lock:
        unknown = set(changes) - {f.name for f in dataclasses.fields(Event)}
        if unknown:
            raise ValueError(f"unknown event fields: {sorted(unknown)}")
        moved = any(k in changes and changes[k] != getattr(event, k) for k in ("start", "end", "recurrence"))
        before = dataclasses.replace(event) if moved else None
        for name, value in changes.items():
            setattr(event, name, value)
        if event.recurrence is not None:
            recurrence.validate(event.recurrence)
        if event.end < event.start:
            raise GraphError(400, "ErrorInvalidRequest", "The end time must be after the start time.")
        if moved and event.organizer_event_id is None:
            for attendee in event.attendees:
                attendee.response = "none"
                attendee.response_time = None
                attendee.proposed_start = attendee.proposed_end = None
        pending.record(event, "updated", before=before)
        if event.organizer_event_id is None:
            _sync_copies(world, event, pending, moved=moved)
    pending.flush()
    return event


def delete_event(world: World, event: Event) -> None:
    """Remove an event. Deleting the organizer's meeting cancels it in attendees' calendars."""
    pending = _Pending(world)
    with world.lock:
        if event.id not in world.events:
            raise not_found()
        del world.events[event.id]
        graph_state(world).tombstones[event.id] = event
        pending.record(event, "deleted")
        if event.organizer_event_id is None:
            for copy in copies_of(world, event):
                copy.is_cancelled = True
                copy.show_as = "free"
                copy.subject = copy.subject if copy.subject.startswith("Canceled: ") else f"Canceled: {copy.subject}"
                pending.record(copy, "updated")
    pending.flush()


def cancel_event(world: World, event: Event, comment: str = "") -> None:
    """The organizer cancels a meeting: attendees' copies are marked cancelled, the organizer's goes."""
    if event.organizer_event_id is not None:
        raise GraphError(
            400,
            "ErrorAccessDenied",
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        )
    delete_event(world, event)


def respond(
    world: World,
    organizer_event: Event,
    attendee_address: str,
    response: str,
    *,
    proposed_start: datetime | None = None,
    proposed_end: datetime | None = None,
) -> Attendee:
    """Record an attendee's answer on the organizer's event and on every copy; adjust the attendee's copy."""
    if response not in ("accepted", "tentativelyAccepted", "declined", "none"):
        raise ValueError(f"not an attendee response: {response}")
    pending = _Pending(world)
    with world.lock:
        target: Attendee | None = None
        for attendee in organizer_event.attendees:
            if attendee.address.lower() == attendee_address.lower():
                target = attendee
        if target is None:
            owner = world.users.get(organizer_event.mailbox_id)
            user = world.find_user(owner.tenant_id, attendee_address) if owner else None
            if user is not None:
                for attendee in organizer_event.attendees:
                    if attendee.address.lower() in (user.mail.lower(), user.user_principal_name.lower()):
                        target = attendee
        if target is None:
            raise GraphError(400, "ErrorInvalidRequest", f"{attendee_address} is not an attendee of this meeting.")
        target.response = response
        target.response_time = utcnow()
        target.proposed_start = proposed_start
        target.proposed_end = proposed_end
        pending.record(organizer_event, "updated")
        owner = world.users.get(organizer_event.mailbox_id)
        attendee_user = world.find_user(owner.tenant_id, target.address) if owner else None
        for copy in copies_of(world, organizer_event):
            copy.attendees = [dataclasses.replace(a) for a in organizer_event.attendees]
            if attendee_user is not None and copy.mailbox_id == attendee_user.id:
                if response == "declined":
                    # Outlook removes a declined meeting from the attendee's calendar.
                    del world.events[copy.id]
                    graph_state(world).tombstones[copy.id] = copy
                    pending.record(copy, "deleted")
                    continue
                copy.show_as = _attendee_show_as(organizer_event, response)
            pending.record(copy, "updated")
    pending.flush()
    return target


DELTA_GONE_CODES = ("resyncRequired", "syncStateNotFound")


def invalidate_delta_tokens(world: World, mailbox_id: str | None = None, code: str = "resyncRequired") -> None:
    """Every delta token issued so far (for one mailbox, or all) now answers 410 Gone with ``code``
    (one of the two codes the delta documentation names)."""
    if code not in DELTA_GONE_CODES:
        raise ValueError(f"code must be one of {list(DELTA_GONE_CODES)}")
    state = graph_state(world)
    with world.lock:
        key = mailbox_id or "*"
        state.delta_generation[key] = state.delta_generation.get(key, 0) + 1
        state.delta_gone_code[key] = code


def delta_gone_code(world: World, mailbox_id: str, token_generation: list[int]) -> str:
    """The code for a token of an older generation: the newer of the two invalidations that outdate it."""
    state = graph_state(world)
    with world.lock:
        if len(token_generation) == 2 and token_generation[1] != state.delta_generation.get(mailbox_id, 0):
            return state.delta_gone_code.get(mailbox_id, "resyncRequired")
        return state.delta_gone_code.get("*", "resyncRequired")


def delta_generation(world: World, mailbox_id: str) -> tuple[int, int]:
    state = graph_state(world)
    with world.lock:
        return state.delta_generation.get("*", 0), state.delta_generation.get(mailbox_id, 0)


def count_request(world: World, method: str, path: str, caller: tuple[str, str, str] | None, batched: bool) -> None:
    """One Graph request answered, by method, path, caller (tenant, client, user or "") and $batch membership."""
    tenant, client, user = caller or ("", "", "")
    key = (method, path, tenant, client, user, batched)
    state = graph_state(world)
    with world.lock:
        state.requests[key] = state.requests.get(key, 0) + 1


def request_log(world: World) -> list[tuple[tuple[str, str, str, str, str, bool], int]]:
    state = graph_state(world)
    with world.lock:
        return sorted(state.requests.items())


def reset_request_log(world: World) -> None:
    state = graph_state(world)
    with world.lock:
        state.requests.clear()
