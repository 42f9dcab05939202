"""The slot search's values: what it is asked (a panel, its people, the rules) and what it answers
(slots, or an explanation made of reasons and suggestions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cached_property

from shared.memo import IdentityMemo
from shared.models import Schedule
from shared.scheduling.slots.grid import ONE_DAY, aware, iso_week, person_zone, person_zone_name


# ---- inputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pool:
    """Any ``need`` of ``members`` must be free; all free members are listed."""

    name: str
    members: tuple[str, ...]
    need: int


@dataclass(frozen=True)
class Panel:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    pools: tuple[Pool, ...] = ()

    def people(self) -> tuple[str, ...]:
        """Everybody on the panel: required, then pool members, then optional. Raises ValueError
        when somebody is named twice or a pool's ``need`` is outside ``0..len(members)``."""
        names = [*self.required, *(m for pool in self.pools for m in pool.members), *self.optional]
        if len(set(names)) != len(names):
            raise ValueError("a person is named more than once in the panel")
        for pool in self.pools:
            if not 0 <= pool.need <= len(pool.members):
                raise ValueError(f"pool {pool.name!r}: need must be between 0 and its size")
        return tuple(names)


@dataclass(frozen=True)
class SlotRules:
    duration: timedelta
    interval: timedelta  # whole minutes; slot starts on multiples of it from LOCAL midnight in time_zone
    time_zone: tzinfo  # the zone of the answer and of the start grid
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    not_before: datetime | None = None  # now + minimum notice
    tentative_is_busy: bool = True
    working_hours: bool = True
    max_per_day: int | None = None
    max_per_week: int | None = None


@dataclass(frozen=True)
class Person:
    schedule: Schedule
    booked: tuple[tuple[datetime, datetime], ...] = ()  # this service's stored bookings: caps and load

    @cached_property
    def counts(self) -> InterviewCounts:
        """The stored bookings per local day and ISO week of the person's zone (computed once)."""
        if not self.booked:
            schedule = self.schedule
            return _no_bookings.get(
                schedule, None, lambda: InterviewCounts(person_zone_name(schedule), person_zone(schedule), {}, {})
            )
        zone = person_zone(self.schedule)
        days: dict[date, int] = {}
        weeks: dict[tuple[int, int], int] = {}
        for booked_start, _ in self.booked:
            day = aware(booked_start, "booked start").astimezone(zone).date()
            days[day] = days.get(day, 0) + 1
            week = iso_week(day)
            weeks[week] = weeks.get(week, 0) + 1
        return InterviewCounts(person_zone_name(self.schedule), zone, days, weeks)


@dataclass(frozen=True, order=True)
class Load:
    """Interviews a person already has in the ISO week and on the local day of an instant (their
    zone). Ordered by the week, then the day: the lower, the fairer a choice."""

    week: int = 0
    day: int = 0


NO_LOAD = Load()


@dataclass(frozen=True)
class InterviewCounts:
    """A person's stored bookings counted per local day and per ISO week, in their zone: the one
    count behind the caps, the order of pool members and the load an answer reports. Days and weeks
    without an interview are left out."""

    time_zone_name: str
    time_zone: tzinfo
    days: Mapping[date, int]
    weeks: Mapping[tuple[int, int], int]  # (ISO year, ISO week)

    def on(self, day: date) -> Load:
        """The load on the local ``day``: its ISO week's interviews and its own."""
        return Load(self.weeks.get(iso_week(day), 0), self.days.get(day, 0))

    def within(self, start: datetime, end: datetime) -> InterviewCounts:
        """Only the local days and ISO weeks that overlap ``[start, end)`` (each week still counts
        all of its interviews, also those outside the window)."""
        if not self.days and not self.weeks:
            return self  # nobody booked: nothing to leave out
        zone = self.time_zone

        def overlaps(first: date, days: int) -> bool:
            return datetime.combine(first, time(0), zone) < end and start < datetime.combine(
                first + days * ONE_DAY, time(0), zone
            )

        days = {d: n for d, n in self.days.items() if overlaps(d, 1)}
        weeks = {w: n for w, n in self.weeks.items() if overlaps(date.fromisocalendar(*w, 1), 7)}
        return replace(self, days=days, weeks=weeks)


# Nobody booked: the same empty counts for a schedule from one query to the next (``shared.memo``).
_no_bookings: IdentityMemo[InterviewCounts] = IdentityMemo(per_object=1)


# ---- outputs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    interviewers: tuple[str, ...]
    load: int = 0  # stored interviews in the slot's week of the required people and each pool's first `need`


class ReasonKind(StrEnum):
    UNREADABLE = "unreadable"  # detail: the reason the schedule could not be read
    BUSY = "busy"  # periods: the person's blocking events (with buffers ignored) inside the window
    OUTSIDE_WORKING_HOURS = "outside_working_hours"  # periods: the person's working time in the window
    DAY_CAP = "day_cap_reached"  # periods: the local days on which the cap is reached
    WEEK_CAP = "week_cap_reached"  # periods: the ISO weeks in which the cap is reached
    NOTICE = "notice"  # periods: the part of the window the minimum notice excludes
    POOL_SHORT = "pool_short"  # pool: never `need` members free while the required people are
    NO_COMMON_TIME = "no_common_time"  # everybody has time alone, never all at once
    WINDOW_TOO_SHORT = "window_too_short"  # no start of the grid fits the window
    SESSIONS_DO_NOT_CHAIN = "sessions_do_not_chain"  # loops: each session fits alone, never in sequence
    OUTSIDE_CANDIDATE_WINDOWS = "outside_candidate_windows"  # loops: a session fits only outside them


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    person: str | None = None
    pool: str | None = None
    periods: tuple[tuple[datetime, datetime], ...] = ()  # in the output zone
    detail: str = ""
    session: int | None = None  # loops: index of the session the reason is about


class SuggestionKind(StrEnum):
    LOWER_NEED = "lower_need"  # subject: pool name; amount: by how many
    MAKE_OPTIONAL = "make_optional"  # subject: the required person
    TENTATIVE_AS_FREE = "tentative_as_free"
    WIDEN_WINDOW = "widen_window"  # amount: days added at the end
    SHORTEN_NOTICE = "shorten_notice"  # amount: minutes less notice
    RAISE_DAY_CAP = "raise_day_cap"  # amount: by how many
    RAISE_WEEK_CAP = "raise_week_cap"  # amount: by how many
    IGNORE_WORKING_HOURS = "ignore_working_hours"
    RAISE_MAX_GAP = "raise_max_gap"  # loops; amount: the new max gap in minutes
    ALLOW_SEVERAL_DAYS = "allow_several_days"  # loops: same_day off


# The order in which suggestions are offered: the smallest change first.
SUGGESTION_ORDER = (
    SuggestionKind.LOWER_NEED,
    SuggestionKind.MAKE_OPTIONAL,
    SuggestionKind.TENTATIVE_AS_FREE,
    SuggestionKind.RAISE_MAX_GAP,
    SuggestionKind.SHORTEN_NOTICE,
    SuggestionKind.WIDEN_WINDOW,
    SuggestionKind.RAISE_DAY_CAP,
    SuggestionKind.RAISE_WEEK_CAP,
    SuggestionKind.ALLOW_SEVERAL_DAYS,
    SuggestionKind.IGNORE_WORKING_HOURS,
)


@dataclass(frozen=True)
class Suggestion:
    """One change that gives at least ``slots`` results, as found by re-running the engine."""

    kind: SuggestionKind
    subject: str | None = None
    amount: int | None = None
    slots: int = 0
    detail: str = ""
    session: int | None = None


@dataclass(frozen=True)
class Explanation:
    summary: str
    reasons: tuple[Reason, ...]
    suggestions: tuple[Suggestion, ...]  # smallest change first (see SUGGESTION_ORDER)


@dataclass(frozen=True)
class SlotSearch:
    slots: tuple[Slot, ...]  # one page: at most ``limit`` slots, those starting after ``after``
    explanation: Explanation | None  # only when the whole window has no slot
    total: int = 0  # slots in the whole window, on every page
    more: bool = False  # slots start after the last one of this page
