"""Availability requests: the JSON contract parsed into typed, validated values.

The body's shape (types, required fields, ranges, list sizes) was checked against openapi.yaml by the
handler (``functions/_contract.py``); what is checked here is what a schema cannot say: addresses, times and
time zones that exist, the window, nobody named twice, a pool's need within its size. Every refusal is an
``InvalidRequest`` naming the offending field (``field``) in words a recruiter can act on; nothing here
touches storage or Graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from dateutil.relativedelta import relativedelta

from shared.fields import bad_field, boolean, email_address, integer, minutes, moment, optional_integer
from shared.text import has_forbidden_characters
from shared.timezones import UnknownTimeZone, resolve_time_zone

MAX_PEOPLE = 200  # distinct people per request (each list's own size is checked by the schema)
# The times a calendar holds. Microsoft's Graph docs state no range for an event's dateTime; Exchange keeps
# times as Windows FILETIMEs (from 1601) and Outlook uses 4501-01-01 as its "no date" value. Refusing
# anything outside [1601, 4501) here also keeps every later step (time zones, padding, grids) far from
# the year-9999 edge where Python's datetime overflows.
MAX_WINDOW_MONTHS = 6
# Slots per answer: each lists up to 200 people, so a whole 6-month grid (tens of thousands of
# slots) is paged instead (at most 1000 a page, in openapi.yaml); the next page continues after the last
# slot's start.
DEFAULT_SLOTS = 100


@dataclass(frozen=True)
class PoolSpec:
    name: str
    members: tuple[str, ...]
    need: int


@dataclass(frozen=True)
class PanelSpec:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    pools: tuple[PoolSpec, ...]

    @property
    def people(self) -> tuple[str, ...]:
        """Every distinct address, in the order first named."""
        seen: dict[str, None] = {}
        for email in (*self.required, *self.optional, *(m for p in self.pools for m in p.members)):
            seen.setdefault(email, None)
        return tuple(seen)


@dataclass(frozen=True)
class SlotOptions:
    start: datetime
    end: datetime
    time_zone: tzinfo
    time_zone_name: str
    interval: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    minimum_notice: timedelta
    tentative_is_busy: bool
    working_hours: bool
    max_per_day: int | None
    max_per_week: int | None
    # "live": every interviewer is read from Graph (titles where Outlook shows them); "any" (the default):
    # warm interviewers come from the busy cache, without titles.
    freshness: str = "any"


@dataclass(frozen=True)
class AvailabilityRequest:
    panel: PanelSpec
    duration: timedelta
    options: SlotOptions
    max_slots: int = DEFAULT_SLOTS
    after: datetime | None = None  # only slots that start after it (the previous page's `next`)


@dataclass(frozen=True)
class SessionSpec:
    name: str
    duration: timedelta
    panel: PanelSpec


@dataclass(frozen=True)
class LoopRequest:
    sessions: tuple[SessionSpec, ...]
    options: SlotOptions
    max_gap: timedelta
    same_day: bool
    candidate_windows: tuple[tuple[datetime, datetime], ...]
    max_results: int

    @property
    def people(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for session in self.sessions:
            for email in session.panel.people:
                seen.setdefault(email, None)
        return tuple(seen)


def _emails(value: list[Any], field: str) -> list[str]:
    return [email_address(item, f"{field}[{i}]") for i, item in enumerate(value)]


def parse_time_zone(body: Mapping[str, Any], field: str = "time_zone") -> tuple[tzinfo, str]:
    name: str = body.get(field) or "UTC"
    try:
        return resolve_time_zone(name), name
    except UnknownTimeZone:
        raise bad_field(
            field, f"`{field}` {name!r} is not a time zone this service knows (IANA or Windows name)."
        ) from None


def _panel(body: Mapping[str, Any], prefix: str = "") -> PanelSpec:
    required: list[str] = []
    optional: list[str] = []
    for i, item in enumerate(body.get("interviewers") or []):
        field = f"{prefix}interviewers[{i}]"
        if isinstance(item, str):
            email, is_required = email_address(item, field), True
        else:
            email, is_required = email_address(item["email"], f"{field}.email"), boolean(item, "required", True)
        (required if is_required else optional).append(email)
    pools: list[PoolSpec] = []
    for i, item in enumerate(body.get("pools") or []):
        field = f"{prefix}pools[{i}]"
        name = item.get("name", f"pool {i + 1}")
        _check_name(name, f"{field}.name")
        members = list(dict.fromkeys(_emails(item["members"], f"{field}.members")))
        need = integer(item, "need", 1)
        if need > len(members):
            raise bad_field(
                f"{field}.need", f"`{field}.need` is {need} but the pool has only {len(members)} distinct members."
            )
        pools.append(PoolSpec(name=name, members=tuple(members), need=need))
    _refuse_repeats(prefix, required, optional, pools)
    panel = PanelSpec(required=tuple(required), optional=tuple(optional), pools=tuple(pools))
    if not panel.required and not panel.optional and not panel.pools:
        raise bad_field(f"{prefix}interviewers", "Name at least one interviewer or one pool.")
    return panel


def _check_name(name: str, field: str) -> None:
    # The schema's pattern says it too, but a JSON Schema pattern cannot refuse a trailing line feed.
    if has_forbidden_characters(name):
        raise bad_field(field, f"`{field}` must be a name of 1 to 100 characters without control characters.")


def _refuse_repeats(prefix: str, required: list[str], optional: list[str], pools: list[PoolSpec]) -> None:
    """Each person has one role on a panel: naming someone twice is ambiguous, so it is refused."""
    seen: dict[str, str] = {}
    places = [
        *((f"{prefix}interviewers", e) for e in required),
        *((f"{prefix}interviewers", e) for e in optional),
        *((f"{prefix}pools[{i}].members", e) for i, p in enumerate(pools) for e in p.members),
    ]
    for field, email in places:
        if email in seen:
            raise bad_field(field, f"{email} is named more than once on the panel (in `{seen[email]}` and `{field}`).")
        seen[email] = field


def _options(body: Mapping[str, Any]) -> SlotOptions:
    start, end = moment(body["start"], "start"), moment(body["end"], "end")
    if end <= start:
        raise bad_field("end", "`end` must be after `start`.")
    if end > _add_months(start, MAX_WINDOW_MONTHS):
        raise bad_field("end", f"The window from `start` to `end` may span at most {MAX_WINDOW_MONTHS} months.")
    zone, zone_name = parse_time_zone(body)
    return SlotOptions(
        start=start,
        end=end,
        time_zone=zone,
        time_zone_name=zone_name,
        interval=minutes(body, "interval_minutes", 15),
        buffer_before=minutes(body, "buffer_before_minutes", 0),
        buffer_after=minutes(body, "buffer_after_minutes", 0),
        minimum_notice=minutes(body, "minimum_notice_minutes", 0),
        tentative_is_busy=boolean(body, "tentative_is_busy", True),
        working_hours=boolean(body, "working_hours", True),
        max_per_day=optional_integer(body, "max_per_day"),
        max_per_week=optional_integer(body, "max_per_week"),
        freshness=body.get("freshness") or "any",
    )


def _check_people(people: tuple[str, ...]) -> None:
    if len(people) > MAX_PEOPLE:
        raise bad_field(
            "interviewers", f"The request names {len(people)} distinct people; at most {MAX_PEOPLE} are allowed."
        )


def parse_availability_request(body: Mapping[str, Any]) -> AvailabilityRequest:
    """Raises InvalidRequest naming the field."""
    panel = _panel(body)
    _check_people(panel.people)
    options = _options(body)
    after = body.get("after")
    return AvailabilityRequest(
        panel=panel,
        duration=minutes(body, "duration_minutes", 0),
        options=options,
        max_slots=integer(body, "max_slots", DEFAULT_SLOTS),
        after=None if after is None else moment(after, "after"),
    )


def parse_loop_request(body: Mapping[str, Any]) -> LoopRequest:
    """Raises InvalidRequest naming the field."""
    sessions: list[SessionSpec] = []
    for i, raw in enumerate(body["sessions"]):
        name = raw.get("name", f"Session {i + 1}")
        _check_name(name, f"sessions[{i}].name")
        duration = minutes(raw, "duration_minutes", 0)
        sessions.append(SessionSpec(name=name, duration=duration, panel=_panel(raw, prefix=f"sessions[{i}].")))
    options = _options(body)
    windows: list[tuple[datetime, datetime]] = []
    for i, raw in enumerate(body.get("candidate_windows") or []):
        w_start = moment(raw["start"], f"candidate_windows[{i}].start")
        w_end = moment(raw["end"], f"candidate_windows[{i}].end")
        if w_end <= w_start:
            raise bad_field(f"candidate_windows[{i}].end", f"`candidate_windows[{i}].end` must be after its start.")
        windows.append((w_start, w_end))
    request = LoopRequest(
        sessions=tuple(sessions),
        options=options,
        max_gap=minutes(body, "max_gap_minutes", 30),
        same_day=boolean(body, "same_day", True),
        candidate_windows=tuple(windows),
        max_results=integer(body, "max_results", 5),
    )
    _check_people(request.people)
    return request


def _add_months(moment: datetime, months: int) -> datetime:
    """The same wall-clock moment ``months`` later, clamped to the month's last day (``relativedelta``)."""
    later: datetime = moment + relativedelta(months=months)
    return later
