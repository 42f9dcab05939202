"""Availability requests: the JSON contract parsed into typed, validated values.

Every refusal is an ``InvalidRequest`` naming the offending field (``field``) in words a
recruiter can act on; nothing here touches storage or Graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from shared.fields import bad_field, boolean, email_address, integer, minutes, moment, optional_integer, whole_number
from shared.text import has_forbidden_characters
from shared.timezones import UnknownTimeZone, resolve_time_zone

MAX_PEOPLE = 200
# The times a calendar holds. Microsoft's Graph docs state no range for an event's dateTime; Exchange keeps
# times as Windows FILETIMEs (from 1601) and Outlook uses 4501-01-01 as its "no date" value. Refusing
# anything outside [1601, 4501) here also keeps every later step (time zones, padding, grids) far from
# the year-9999 edge where Python's datetime overflows.
MAX_WINDOW_MONTHS = 6
MAX_DURATION = timedelta(hours=8)
MAX_SESSIONS = 8
MAX_RESULTS = 50
# Slots per answer: each lists up to 200 people, so a whole 6-month grid (tens of thousands of
# slots) is paged instead; the next page continues after the last slot's start.
DEFAULT_SLOTS = 100
MAX_SLOTS = 1000
INTERVALS = range(5, 241)


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


def _emails(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise bad_field(field, f"`{field}` must be a list of email addresses.")
    if len(value) > MAX_PEOPLE:
        raise bad_field(field, f"`{field}` names more than {MAX_PEOPLE} people.")
    return [email_address(item, f"{field}[{i}]") for i, item in enumerate(value)]


def parse_time_zone(body: Mapping[str, Any], field: str = "time_zone") -> tuple[tzinfo, str]:
    name = body.get(field, "UTC")
    if name is None:
        name = "UTC"
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise bad_field(field, f"`{field}` must be an IANA or Windows time zone name, like America/New_York.")
    try:
        return resolve_time_zone(name), name
    except UnknownTimeZone:
        raise bad_field(
            field, f"`{field}` {name!r} is not a time zone this service knows (IANA or Windows name)."
        ) from None


def _panel(body: Mapping[str, Any], prefix: str = "") -> PanelSpec:
    required: list[str] = []
    optional: list[str] = []
    raw_people = body.get("interviewers", [])
    if raw_people is None:
        raw_people = []
    if not isinstance(raw_people, list):
        raise bad_field(f"{prefix}interviewers", f"`{prefix}interviewers` must be a list.")
    if len(raw_people) > MAX_PEOPLE:
        raise bad_field(f"{prefix}interviewers", f"`{prefix}interviewers` names more than {MAX_PEOPLE} people.")
    for i, item in enumerate(raw_people):
        field = f"{prefix}interviewers[{i}]"
        if isinstance(item, str):
            email, is_required = email_address(item, field), True
        elif isinstance(item, dict):
            email = email_address(item.get("email"), f"{field}.email")
            is_required = boolean(item, "required", True, field=f"{field}.required")
        else:
            raise bad_field(field, f"`{field}` must be an object with `email` and `required`.")
        (required if is_required else optional).append(email)
    pools: list[PoolSpec] = []
    raw_pools = body.get("pools", [])
    if raw_pools is None:
        raw_pools = []
    if not isinstance(raw_pools, list) or len(raw_pools) > MAX_PEOPLE:
        raise bad_field(f"{prefix}pools", f"`{prefix}pools` must be a list of pools.")
    for i, item in enumerate(raw_pools):
        field = f"{prefix}pools[{i}]"
        if not isinstance(item, dict):
            raise bad_field(field, f"`{field}` must be an object with `name`, `members` and `need`.")
        name = item.get("name", f"pool {i + 1}")
        if not isinstance(name, str) or not 1 <= len(name) <= 100 or has_forbidden_characters(name):
            raise bad_field(
                f"{field}.name", f"`{field}.name` must be a name of 1 to 100 characters without control characters."
            )
        members = list(dict.fromkeys(_emails(item.get("members"), f"{field}.members")))
        if not members:
            raise bad_field(f"{field}.members", f"`{field}.members` must name at least one person.")
        need = integer(item, "need", 1, low=1, high=MAX_PEOPLE)
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
    if "start" not in body:
        raise bad_field("start", "`start` is required.")
    if "end" not in body:
        raise bad_field("end", "`end` is required.")
    start, end = moment(body["start"], "start"), moment(body["end"], "end")
    if end <= start:
        raise bad_field("end", "`end` must be after `start`.")
    if end > _add_months(start, MAX_WINDOW_MONTHS):
        raise bad_field("end", f"The window from `start` to `end` may span at most {MAX_WINDOW_MONTHS} months.")
    zone, zone_name = parse_time_zone(body)
    interval = integer(body, "interval_minutes", 15, low=INTERVALS.start, high=INTERVALS.stop - 1)
    return SlotOptions(
        start=start,
        end=end,
        time_zone=zone,
        time_zone_name=zone_name,
        interval=timedelta(minutes=interval),
        buffer_before=minutes(body, "buffer_before_minutes", 0, low=0, high=240),
        buffer_after=minutes(body, "buffer_after_minutes", 0, low=0, high=240),
        minimum_notice=minutes(body, "minimum_notice_minutes", 0, low=0, high=60 * 24 * 90),
        tentative_is_busy=boolean(body, "tentative_is_busy", True),
        working_hours=boolean(body, "working_hours", True),
        max_per_day=optional_integer(body, "max_per_day", low=1, high=100),
        max_per_week=optional_integer(body, "max_per_week", low=1, high=500),
    )


def _duration(body: Mapping[str, Any], field: str = "duration_minutes") -> timedelta:
    if body.get(field) is None:
        raise bad_field(field, f"`{field}` is required: a whole number of minutes.")
    minutes = whole_number(body[field], field, low=-(10**6), high=10**6)
    if minutes <= 0:
        raise bad_field(field, f"`{field}` must be more than zero.")
    if timedelta(minutes=minutes) > MAX_DURATION:
        raise bad_field(field, f"`{field}` may be at most {int(MAX_DURATION.total_seconds() // 60)} minutes (8 hours).")
    return timedelta(minutes=minutes)


def _check_people(people: tuple[str, ...]) -> None:
    if len(people) > MAX_PEOPLE:
        raise bad_field(
            "interviewers", f"The request names {len(people)} distinct people; at most {MAX_PEOPLE} are allowed."
        )


def parse_availability_request(body: Mapping[str, Any]) -> AvailabilityRequest:
    """Raises InvalidRequest naming the field."""
    panel = _panel(body)
    _check_people(panel.people)
    duration = _duration(body)
    options = _options(body)
    max_slots = integer(body, "max_slots", DEFAULT_SLOTS, low=1, high=MAX_SLOTS)
    after = body.get("after")
    return AvailabilityRequest(
        panel=panel,
        duration=duration,
        options=options,
        max_slots=max_slots,
        after=None if after is None else moment(after, "after"),
    )


def parse_loop_request(body: Mapping[str, Any]) -> LoopRequest:
    """Raises InvalidRequest naming the field."""
    raw_sessions = body.get("sessions")
    if not isinstance(raw_sessions, list) or not raw_sessions:
        raise bad_field("sessions", "`sessions` must be a non-empty list of interview sessions.")
    if len(raw_sessions) > MAX_SESSIONS:
        raise bad_field("sessions", f"A loop may have at most {MAX_SESSIONS} sessions.")
    sessions: list[SessionSpec] = []
    for i, raw in enumerate(raw_sessions):
        if not isinstance(raw, dict):
            raise bad_field(f"sessions[{i}]", f"`sessions[{i}]` must be an object.")
        name = raw.get("name", f"Session {i + 1}")
        if not isinstance(name, str) or not 1 <= len(name) <= 100 or has_forbidden_characters(name):
            raise bad_field(
                f"sessions[{i}].name",
                f"`sessions[{i}].name` must be a name of 1 to 100 characters without control characters.",
            )
        if raw.get("duration_minutes") is None:
            raise bad_field(f"sessions[{i}].duration_minutes", f"`sessions[{i}].duration_minutes` is required.")
        duration = _duration(raw, "duration_minutes")
        sessions.append(SessionSpec(name=name, duration=duration, panel=_panel(raw, prefix=f"sessions[{i}].")))
    options = _options(body)
    windows: list[tuple[datetime, datetime]] = []
    raw_windows = body.get("candidate_windows", [])
    if raw_windows is None:
        raw_windows = []
    if not isinstance(raw_windows, list) or len(raw_windows) > 100:
        raise bad_field("candidate_windows", "`candidate_windows` must be a list of at most 100 {start, end} windows.")
    for i, raw in enumerate(raw_windows):
        if not isinstance(raw, dict):
            raise bad_field(
                f"candidate_windows[{i}]", f"`candidate_windows[{i}]` must be an object with start and end."
            )
        w_start = moment(raw.get("start"), f"candidate_windows[{i}].start")
        w_end = moment(raw.get("end"), f"candidate_windows[{i}].end")
        if w_end <= w_start:
            raise bad_field(f"candidate_windows[{i}].end", f"`candidate_windows[{i}].end` must be after its start.")
        windows.append((w_start, w_end))
    max_results = integer(body, "max_results", 5, low=1, high=MAX_RESULTS)
    request = LoopRequest(
        sessions=tuple(sessions),
        options=options,
        max_gap=minutes(body, "max_gap_minutes", 30, low=0, high=24 * 60),
        same_day=boolean(body, "same_day", True),
        candidate_windows=tuple(windows),
        max_results=max_results,
    )
    _check_people(request.people)
    return request


def _add_months(moment: datetime, months: int) -> datetime:
    """The same wall-clock moment ``months`` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    days_in_month = [
        31,
        29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    return moment.replace(year=year, month=month, day=min(moment.day, days_in_month))
