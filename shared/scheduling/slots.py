"""The slot engine: bookable interview slots for a panel of interviewers, and why none fits.

Pure functions over ``shared.models`` values; no I/O. The interface::

    find_slots(panel, people, start, end, rules, *, horizon_end=None, limit=None, after=None) -> SlotSearch

- ``panel``: a :class:`Panel` of ``required`` and ``optional`` addresses and :class:`Pool` s
  (``need`` of ``members``). Nobody may be named twice in one panel.
- ``people``: address -> :class:`Person` (the :class:`~shared.models.Schedule` Graph gave us plus
  the interviews this service booked for that person, which count toward the caps and the load).
  An address of the panel missing from ``people`` is treated as unreadable (reason ``no_schedule``).
- ``start``/``end``: aware datetimes; every slot lies inside ``[start, end]``.
- ``rules``: :class:`SlotRules`.
- ``horizon_end``: how far the caller's data reaches (``>= end``); only used to suggest a wider
  window when nothing fits.
- ``limit``/``after``: one page: the first ``limit`` slots that start after ``after``. Only they are
  built (a slot lists up to 200 people); ``total`` counts the whole window, ``more`` says whether
  slots start after the page's last, whose start is the next page's ``after``: no slot is lost or
  repeated between pages.

It returns :class:`SlotSearch`: the :class:`Slot` s in time order (``start``/``end`` in
``rules.time_zone``; ``interviewers`` = every required person, then each pool's free members, the
least loaded first, then the free optional people; ``load`` = the interviews already booked in the
week of the slot for the required people and the first ``need`` members of each pool), and, when
there is no slot, an
:class:`Explanation` (a summary sentence, structured :class:`Reason` s and :class:`Suggestion` s,
each suggestion found by re-running the engine on the relaxed inputs).

Semantics. A slot ``[s, s + duration)`` is bookable for a person when

- it lies inside their working hours (the union of their daily intervals, in the zone of their
  working hours, on their working days; ``end <= start`` runs past local midnight). Local
  boundaries are turned into instants the standard way (PEP 495 ``fold=0``): a boundary in a
  skipped hour counts with the offset before the change, a repeated one at its first occurrence.
  A person without working hours information has no working-hours constraint, and neither has
  anybody when ``rules.working_hours`` is false;
- nothing of theirs that blocks overlaps ``[s - buffer_before, s + duration + buffer_after)``:
  busy and oof block, tentative blocks when ``rules.tentative_is_busy``; free, workingElsewhere
  and unknown never block (all-day or not). Buffers need only be free, not inside working hours;
- ``s >= rules.not_before``;
- their caps are not reached: fewer than ``max_per_day`` stored bookings start on the local day of
  ``s`` and fewer than ``max_per_week`` in its ISO week, both in the person's zone (the zone of
  their working hours, else UTC);
- and they are readable: an unreadable person is never free.

Load: a person's :class:`Load` at ``s`` is their stored bookings in the ISO week and on the local
day of ``s`` (their zone, as for the caps), counted once in :class:`InterviewCounts`. Inside a slot,
each pool's free members come least loaded first (fewer that week, then fewer that day, then pool
member order), so the first ``need`` of them are the fairest choice; slots themselves stay in time
order, the order pages are cut in.

Slot starts: local wall-clock times ``h:mm`` in ``rules.time_zone`` whose minutes since local
midnight are a multiple of the interval. A local time that does not exist (the skipped hour of a
spring change) is no start; one that happens twice (the repeated hour of an autumn change) gives
both instants, which are distinct slots.

How: every person's free time is a Python ``int`` bitset over a cell grid in UTC whose cell is the
gcd of the interval, duration(s), buffers and the spacing of the candidate starts (so every slot
and buffer edge falls on a cell edge and the answer is exact at any cell size). A cell is "free"
when no blocking event overlaps it and "working" when it lies wholly inside working hours; "the
whole span is free" is a log-step AND of shifted masks; required people combine with AND, and a
pool's "at least ``need`` free" is a bit-sliced counter compared with ``need``.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cached_property

from shared.models import FreeBusyStatus, Schedule, ScheduleStatus, WorkingHours

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ONE_DAY = timedelta(days=1)
_ALWAYS_BLOCKING = frozenset({FreeBusyStatus.BUSY, FreeBusyStatus.OOF})
_MAX_BUSY_PERIODS_IN_SUMMARY = 2


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
        zone = person_zone(self.schedule)
        days: dict[date, int] = {}
        weeks: dict[tuple[int, int], int] = {}
        for booked_start, _ in self.booked:
            day = _aware(booked_start, "booked start").astimezone(zone).date()
            days[day] = days.get(day, 0) + 1
            week = _iso_week(day)
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
        return Load(self.weeks.get(_iso_week(day), 0), self.days.get(day, 0))

    def within(self, start: datetime, end: datetime) -> InterviewCounts:
        """Only the local days and ISO weeks that overlap ``[start, end)`` (each week still counts
        all of its interviews, also those outside the window)."""
        zone = self.time_zone

        def overlaps(first: date, days: int) -> bool:
            return datetime.combine(first, time(0), zone) < end and start < datetime.combine(
                first + days * ONE_DAY, time(0), zone
            )

        days = {d: n for d, n in self.days.items() if overlaps(d, 1)}
        weeks = {w: n for w, n in self.weeks.items() if overlaps(date.fromisocalendar(*w, 1), 7)}
        return replace(self, days=days, weeks=weeks)


def _iso_week(day: date) -> tuple[int, int]:
    year, week, _ = day.isocalendar()
    return year, week


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


# ---- the search -----------------------------------------------------------------------------------
def find_slots(
    panel: Panel,
    people: Mapping[str, Person],
    start: datetime,
    end: datetime,
    rules: SlotRules,
    *,
    horizon_end: datetime | None = None,
    limit: int | None = None,
    after: datetime | None = None,
) -> SlotSearch:
    """The bookable slots for ``panel`` in ``[start, end]`` (the first ``limit`` of those that start
    after ``after``; None: all), or an explanation when the window has none.

    Only the slots of the page are built: the rest of the window is bits of one mask, counted in
    ``total`` and ``more``. Raises ValueError for naive datetimes, a non-positive duration, interval
    or limit, an interval that is not whole minutes, negative buffers, or a malformed panel (see
    :meth:`Panel.people`)."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be positive")
    engine = Engine(people, panel.people(), start, end, rules, (rules.duration,))
    masks = engine.panel_masks(panel, rules.duration)
    final = engine.final(panel, rules.duration, masks)
    if not final:
        return SlotSearch((), explain(engine, panel, people, start, end, rules, horizon_end))
    later = final & ~((1 << engine.first_after(_aware(after, "after").timestamp())) - 1) if after else final
    page = first_bits(later, limit)
    slots = engine.listed(panel, rules.duration, page, masks)
    return SlotSearch(slots, None, total=final.bit_count(), more=later != page)


# ---- bit helpers ----------------------------------------------------------------------------------
def runs(mask: int, length: int) -> int:
    """Bit j is set when bits j .. j+length-1 of ``mask`` are all set (log-step AND of shifts)."""
    result = -1
    offset, cur, step = 0, mask, 1
    while length:
        if length & 1:
            result &= cur >> offset
            offset += step
        length >>= 1
        if length:
            cur &= cur >> step
            step <<= 1
    return result


def at_least(masks: Sequence[int], need: int, full: int) -> int:
    """Bit j is set when at least ``need`` of ``masks`` have bit j set (bit-sliced counting)."""
    if need <= 0:
        return full
    if need > len(masks):
        return 0
    if need == 1:
        out = 0
        for m in masks:
            out |= m
        return out
    if need == len(masks):
        out = full
        for m in masks:
            out &= m
        return out
    planes: list[int] = []  # planes[i]: bit i of each position's count
    for m in masks:
        carry = m
        for i, plane in enumerate(planes):
            planes[i] = plane ^ carry
            carry &= plane
            if not carry:
                break
        if carry:
            planes.append(carry)
    greater, equal = 0, full
    for i in range(max(len(planes), need.bit_length()) - 1, -1, -1):
        plane = planes[i] if i < len(planes) else 0
        if need >> i & 1:
            equal &= plane
        else:
            greater |= equal & plane
            equal &= ~plane
    return greater | equal


def bit_positions(mask: int) -> list[int]:
    """Indexes of the set bits, lowest first."""
    out: list[int] = []
    text = bin(mask)[:1:-1]  # lowest bit first
    i = text.find("1")
    while i >= 0:
        out.append(i)
        i = text.find("1", i + 1)
    return out


def first_bits(mask: int, count: int | None) -> int:
    """``mask`` with only its ``count`` lowest set bits kept (None: all of them)."""
    if count is None or mask.bit_count() <= count:
        return mask
    text = bin(mask)[:1:-1]  # lowest bit first
    i = -1
    for _ in range(count):
        i = text.find("1", i + 1)
    return mask & ((1 << (i + 1)) - 1)


def _mask_of(indexes: Iterable[int]) -> int:
    out = 0
    for i in indexes:
        out |= 1 << i
    return out


def _seconds(delta: timedelta, what: str) -> int:
    if delta % timedelta(seconds=1):
        raise ValueError(f"{what} must be whole seconds")
    return delta // timedelta(seconds=1)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value


def local_instant(day: date, at: time, zone: tzinfo) -> float:
    """The instant of the local wall-clock ``day at`` in ``zone`` (PEP 495 fold=0)."""
    return datetime.combine(day, at, zone).timestamp()


def _regular_day(day: date, zone: tzinfo) -> bool:
    """True when ``zone`` keeps one offset all through the local ``day`` (no change that day)."""
    first = datetime.combine(day, time(0), zone)
    last = datetime.combine(day, time(23, 59, 59), zone)
    offsets = {
        first.utcoffset(),
        first.replace(fold=1).utcoffset(),
        last.utcoffset(),
        last.replace(fold=1).utcoffset(),
    }
    return len(offsets) == 1


def grid_starts(lo: float, hi: float, interval_minutes: int, zone: tzinfo) -> list[int]:
    """Slot starts (UTC seconds) in ``[lo, hi]``: local ``h:mm`` in ``zone`` with minutes since local
    midnight a multiple of ``interval_minutes``; skipped local times left out, repeated ones twice."""
    out: list[int] = []
    day = datetime.fromtimestamp(lo, zone).date() - ONE_DAY
    last = datetime.fromtimestamp(hi, zone).date() + ONE_DAY
    step = interval_minutes * 60
    minutes = range(0, 1440, interval_minutes)
    irregular = False
    while day <= last:
        if _regular_day(day, zone):
            midnight = int(local_instant(day, time(0), zone))
            out.extend(range(midnight, midnight + 86400, step))
        else:
            irregular = True
            for m in minutes:
                wall = datetime.combine(day, time(m // 60, m % 60))
                for fold in (0, 1):
                    instant = int(wall.replace(tzinfo=zone, fold=fold).timestamp())
                    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
                        out.append(instant)
        day += ONE_DAY
    if irregular:
        out = sorted(set(out))
    return out[bisect_left(out, math.ceil(lo)) : bisect_right(out, math.floor(hi))]


def person_zone(schedule: Schedule) -> tzinfo:
    """The zone a person's days and weeks are counted in: their working hours' zone, else UTC."""
    return schedule.working_hours.time_zone if schedule.working_hours else UTC


def person_zone_name(schedule: Schedule) -> str:
    """The name of :func:`person_zone` as the working hours give it (IANA, or a custom zone's)."""
    return schedule.working_hours.time_zone_name if schedule.working_hours else "UTC"


def working_intervals(hours: WorkingHours, lo: float, hi: float) -> list[tuple[float, float]]:
    """The person's working time overlapping ``[lo, hi)`` as merged UTC-second intervals."""
    zone = hours.time_zone
    days = set(hours.days)
    day = datetime.fromtimestamp(lo, zone).date() - ONE_DAY
    last = datetime.fromtimestamp(hi, zone).date() + ONE_DAY
    overnight = hours.end <= hours.start
    spans: list[tuple[float, float]] = []
    while day <= last:
        if DAY_NAMES[day.weekday()] in days:
            a = local_instant(day, hours.start, zone)
            b = local_instant(day + ONE_DAY if overnight else day, hours.end, zone)
            if b > a and b > lo and a < hi:
                if spans and a <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], max(spans[-1][1], b))
                else:
                    spans.append((a, b))
        day += ONE_DAY
    return spans


def blocking_statuses(rules_tentative_is_busy: bool) -> frozenset[FreeBusyStatus]:
    if rules_tentative_is_busy:
        return _ALWAYS_BLOCKING | {FreeBusyStatus.TENTATIVE}
    return _ALWAYS_BLOCKING


@dataclass(frozen=True)
class _Cells:
    """What one readable person's calendar says, cell by cell."""

    free: int  # cells no blocking event overlaps
    work_key: object  # key of the working-cells mask in Engine.work
    allowed: int  # slot-start cells the caps allow


class Engine:
    """One window, one rule set, a fixed set of people: their cell masks, computed once and then
    combined for any panel and any of the given durations. Used by the loop search as well."""

    def __init__(
        self,
        people: Mapping[str, Person],
        names: Iterable[str],
        start: datetime,
        end: datetime,
        rules: SlotRules,
        durations: Sequence[timedelta],
    ) -> None:
        self.rules = rules
        self.people = people
        self.start = _aware(start, "start")
        self.end = _aware(end, "end")
        if rules.not_before is not None:
            _aware(rules.not_before, "not_before")
        if rules.interval <= timedelta(0) or rules.interval % timedelta(minutes=1):
            raise ValueError("interval must be a positive whole number of minutes")
        self.durations = {d: _seconds(d, "duration") for d in durations}
        if not self.durations or min(self.durations.values()) <= 0:
            raise ValueError("duration must be positive")
        self.before = _seconds(rules.buffer_before, "buffer_before")
        self.after = _seconds(rules.buffer_after, "buffer_after")
        if self.before < 0 or self.after < 0:
            raise ValueError("buffers must not be negative")
        interval = _seconds(rules.interval, "interval")
        lo, hi = start.timestamp(), end.timestamp()
        shortest = min(self.durations.values())
        self.hi = hi
        self.candidates = grid_starts(lo, hi - shortest, interval // 60, rules.time_zone) if hi > lo else []
        self.work: dict[object, int] = {}
        self.cells: dict[str, _Cells | None] = {}
        self._run_cache: dict[tuple[object, int], int] = {}
        self._days: dict[tuple[tzinfo, int], date] = {}
        if not self.candidates:
            self.t0, self.g, self.n, self.full, self.cand, self.notice = 0, 1, 0, 0, 0, 0
            return
        c0 = self.candidates[0]
        g = math.gcd(interval, self.before, self.after, *self.durations.values())
        spacing = set(map(operator.sub, self.candidates[1:], self.candidates[:-1]))
        g = math.gcd(g, *spacing)
        self.g = g
        self.t0 = c0 - self.before
        self.n = (self.candidates[-1] + max(self.durations.values()) + self.after - self.t0) // g
        self.full = (1 << self.n) - 1
        self.cand = _mask_of((c - self.t0) // g for c in self.candidates) if len(spacing) > 1 else 0
        if len(spacing) <= 1:  # evenly spaced: one repeated pattern
            every = spacing.pop() // g if spacing else 1
            pattern = "1".rjust(every, "0") * len(self.candidates)
            self.cand = int(pattern, 2) << (self.before // g)
        self.notice = self.full
        if rules.not_before is not None:
            first = self._ceil_cell(rules.not_before.timestamp())
            self.notice = self.full >> first << first if first > 0 else self.full
        blocking = blocking_statuses(rules.tentative_is_busy)
        for name in dict.fromkeys(names):
            self.cells[name] = self._person_cells(people.get(name), blocking)

    # -- cell arithmetic
    def _ceil_cell(self, instant: float) -> int:
        return max(math.ceil((instant - self.t0) / self.g), 0)

    def _floor_cell(self, instant: float) -> int:
        return min(math.floor((instant - self.t0) / self.g), self.n)

    def _range(self, a: float, b: float) -> int:
        """Mask of the cells wholly inside [a, b)."""
        i, j = self._ceil_cell(a), self._floor_cell(b)
        return ((1 << (j - i)) - 1) << i if j > i else 0

    def starts_in(self, a: float, b: float) -> int:
        """Mask of the cells whose start instant lies in [a, b)."""
        i, j = self._ceil_cell(a), min(self._ceil_cell(b), self.n)
        return ((1 << (j - i)) - 1) << i if j > i else 0

    def cell_start(self, index: int) -> int:
        return self.t0 + index * self.g

    # -- per person
    def _person_cells(self, person: Person | None, blocking: frozenset[FreeBusyStatus]) -> _Cells | None:
        if person is None or person.schedule.status is not ScheduleStatus.OK:
            return None
        schedule = person.schedule
        busy = 0
        lo, hi = self.t0, self.t0 + self.n * self.g
        t0, g, n = self.t0, self.g, self.n
        touched = [  # the cells each blocking event touches: the hot loop of the engine, kept inline
            (int((blk.start.timestamp() - t0) // g), -int((t0 - blk.end.timestamp()) // g))
            for blk in schedule.busy
            if blk.status in blocking
        ]
        for i, j in touched:
            if j > 0 and i < n:
                if i < 0:
                    i = 0
                if j > n:
                    j = n
                busy |= ((1 << (j - i)) - 1) << i
        hours = schedule.working_hours if self.rules.working_hours else None
        key: object = None
        if hours is not None:
            key = (hours, id(hours.time_zone))
            if key not in self.work:
                mask = 0
                for a, b in working_intervals(hours, lo, hi):
                    mask |= self._range(a, b)
                self.work[key] = mask
        elif None not in self.work:
            self.work[None] = self.full
        return _Cells(self.full & ~busy, key, self._caps_mask(person))

    # -- load
    def local_day(self, name: str, instant: int) -> date:
        """The local date of ``instant`` (UTC seconds) in ``name``'s zone (see :func:`person_zone`)."""
        person = self.people.get(name)
        return self._zone_day(person.counts.time_zone if person is not None else UTC, instant)

    def _zone_day(self, zone: tzinfo, instant: int) -> date:
        key = (zone, instant)
        found = self._days.get(key)
        if found is None:
            found = self._days[key] = datetime.fromtimestamp(instant, zone).date()
        return found

    def load(self, name: str, instant: int) -> Load:
        """``name``'s stored interviews in the ISO week and on the local day of ``instant``."""
        person = self.people.get(name)
        if person is None or not person.booked:
            return NO_LOAD
        return person.counts.on(self.local_day(name, instant))

    def _caps_mask(self, person: Person) -> int:
        rules = self.rules
        if not person.booked or (rules.max_per_day is None and rules.max_per_week is None):
            return self.full
        allowed = self.full
        for _, a, b in capped_periods(person, rules):
            allowed &= ~self.starts_in(a.timestamp(), b.timestamp())
        return allowed

    def _cached_runs(self, key: object, mask: int, length: int) -> int:
        found = self._run_cache.get((key, length))
        if found is None:
            found = self._run_cache[(key, length)] = runs(mask, length)
        return found

    def candidates_mask(self, duration: timedelta) -> int:
        """Candidate starts whose slot of ``duration`` ends by the window's end."""
        last = math.floor((self.hi - self.durations[duration] - self.t0) / self.g)
        return self.cand & ((1 << (last + 1)) - 1) if last >= 0 else 0

    def ok_mask(self, name: str, duration: timedelta) -> int:
        """Starts (cell indexes) at which a slot of ``duration`` is bookable for ``name``."""
        cells = self.cells.get(name)
        if cells is None:
            return 0
        span = self.durations[duration] // self.g
        around = (self.before + self.after) // self.g + span
        free = runs(cells.free, around) << (self.before // self.g)
        work = self._cached_runs(cells.work_key, self.work[cells.work_key], span)
        return free & work & cells.allowed & self.notice & self.cand

    def final(self, panel: Panel, duration: timedelta, masks: Mapping[str, int] | None = None) -> int:
        """Starts at which the whole panel can meet for ``duration``."""
        if masks is None:
            masks = {name: self.ok_mask(name, duration) for name in (*panel.required, *_members(panel))}
        out = self.candidates_mask(duration)
        for name in panel.required:
            out &= masks[name]
        for pool in panel.pools:
            if not out:
                break
            out &= at_least([masks[m] & out for m in pool.members], pool.need, self.full)
        return out

    def first_after(self, instant: float) -> int:
        """The first cell that starts after ``instant``."""
        return min(max(math.floor((instant - self.t0) / self.g) + 1, 0), self.n)

    def panel_masks(self, panel: Panel, duration: timedelta) -> dict[str, int]:
        return {name: self.ok_mask(name, duration) for name in panel.people()}

    def starts(self, panel: Panel, duration: timedelta) -> list[int]:
        """The start instants (UTC seconds) of every slot, without listing who is free in each."""
        return [self.cell_start(k) for k in bit_positions(self.final(panel, duration))]

    def slots(self, panel: Panel, duration: timedelta) -> tuple[Slot, ...]:
        masks = self.panel_masks(panel, duration)
        return self.listed(panel, duration, self.final(panel, duration, masks), masks)

    def listed(self, panel: Panel, duration: timedelta, final: int, masks: Mapping[str, int]) -> tuple[Slot, ...]:
        """The slots at the starts of ``final`` (a subset of :meth:`final`), with who is free in each:
        each pool's free members least loaded first (stable, so pool order breaks ties)."""
        if not final:
            return ()
        positions = bit_positions(final)
        listed: dict[int, list[str]] = {k: list(panel.required) for k in positions}
        loads = dict.fromkeys(positions, 0)
        ranks = self._ranks(panel, positions)
        if ranks is not None:
            for k in positions:
                loads[k] = sum(ranks[k][name][0] for name in panel.required)
        for pool in panel.pools:
            free: dict[int, list[str]] = {k: [] for k in positions}
            for name in pool.members:
                for k in bit_positions(final & masks[name]):
                    free[k].append(name)
            for k in positions:
                members = free[k]
                if ranks is not None:
                    rank = ranks[k]
                    members.sort(key=rank.__getitem__)  # stable: pool order breaks ties
                    loads[k] += sum(rank[name][0] for name in members[: pool.need])
                listed[k] += members
        for name in panel.optional:
            for k in bit_positions(final & masks[name]):
                listed[k].append(name)
        zone, seconds = self.rules.time_zone, self.durations[duration]
        out = []
        for k in positions:
            s = self.cell_start(k)
            out.append(
                Slot(
                    datetime.fromtimestamp(s, zone),
                    datetime.fromtimestamp(s + seconds, zone),
                    tuple(listed[k]),
                    loads[k],
                )
            )
        return tuple(out)

    def _ranks(self, panel: Panel, positions: Sequence[int]) -> dict[int, dict[str, tuple[int, int]]] | None:
        """Per slot start, each panel member's load as (week, day); None when nobody has any. The
        load changes only at someone's local midnight: one table per distinct set of local days."""
        loaded = [n for n in (*panel.required, *_members(panel)) if (p := self.people.get(n)) and p.booked]
        if not loaded:
            return None
        zones = tuple(dict.fromkeys(self.people[n].counts.time_zone for n in loaded))
        nobody = dict.fromkeys((*panel.required, *_members(panel)), (0, 0))
        out: dict[int, dict[str, tuple[int, int]]] = {}
        table: dict[str, tuple[int, int]] = {}
        key: tuple[date, ...] = ()
        until = -math.inf  # the local days stay the same until then
        for k in positions:
            at = self.cell_start(k)
            if at >= until:
                days = tuple(self._zone_day(zone, at) for zone in zones)
                if days != key:
                    key, table = days, dict(nobody)
                    for name in loaded:
                        load = self.load(name, at)
                        table[name] = (load.week, load.day)
                until = min(self._next_midnight(zone, day, at) for zone, day in zip(zones, days, strict=True))
            out[k] = table
        return out

    @staticmethod
    def _next_midnight(zone: tzinfo, day: date, at: int) -> float:
        """When the local ``day`` ends in ``zone``; around an offset change, the next instant (the
        days are then looked at start by start)."""
        if _regular_day(day, zone) and _regular_day(day + ONE_DAY, zone):
            return datetime.combine(day + ONE_DAY, time(0), zone).timestamp()
        return at + 1


def _members(panel: Panel) -> tuple[str, ...]:
    return tuple(m for pool in panel.pools for m in pool.members)


def capped_periods(person: Person, rules: SlotRules) -> list[tuple[ReasonKind, datetime, datetime]]:
    """The local days and ISO weeks (as aware instants in the person's zone) in which the person's
    stored bookings already reach ``max_per_day`` / ``max_per_week``."""
    counts = person.counts
    zone = counts.time_zone
    out: list[tuple[ReasonKind, datetime, datetime]] = []
    if rules.max_per_day is not None:
        for day, count in counts.days.items():
            if count >= rules.max_per_day:
                a, b = datetime.combine(day, time(0), zone), datetime.combine(day + ONE_DAY, time(0), zone)
                out.append((ReasonKind.DAY_CAP, a, b))
    if rules.max_per_week is not None:
        for (year, week), count in counts.weeks.items():
            if count >= rules.max_per_week:
                monday = date.fromisocalendar(year, week, 1)
                a, b = datetime.combine(monday, time(0), zone), datetime.combine(monday + 7 * ONE_DAY, time(0), zone)
                out.append((ReasonKind.WEEK_CAP, a, b))
    return out


# ---- explanations ---------------------------------------------------------------------------------
def explain(
    engine: Engine,
    panel: Panel,
    people: Mapping[str, Person],
    start: datetime,
    end: datetime,
    rules: SlotRules,
    horizon_end: datetime | None,
    *,
    session: int | None = None,
) -> Explanation:
    """Why ``panel`` has no slot in the window, and which single changes would give one."""
    reasons = _reasons(engine, panel, people, start, end, rules, session)
    suggestions = _suggestions(engine, panel, people, start, end, rules, horizon_end, session)
    return Explanation(
        _summary(rules.duration, start, end, rules.time_zone, reasons, suggestions), reasons, suggestions
    )


def _fmt(value: datetime, zone: tzinfo) -> str:
    return value.astimezone(zone).strftime("%a %Y-%m-%d %H:%M")


def _clip(a: datetime, b: datetime, start: datetime, end: datetime, zone: tzinfo) -> tuple[datetime, datetime] | None:
    lo, hi = max(a, start), min(b, end)
    return (lo.astimezone(zone), hi.astimezone(zone)) if hi > lo else None


def _reasons(
    engine: Engine,
    panel: Panel,
    people: Mapping[str, Person],
    start: datetime,
    end: datetime,
    rules: SlotRules,
    session: int | None,
) -> tuple[Reason, ...]:
    zone = rules.time_zone
    duration = rules.duration
    cand = engine.candidates_mask(duration)
    if not cand:
        minutes = int(duration.total_seconds() // 60)
        detail = f"no {minutes}-minute slot on the grid fits between {_fmt(start, zone)} and {_fmt(end, zone)}"
        return (Reason(ReasonKind.WINDOW_TOO_SHORT, detail=detail, session=session),)
    out: list[Reason] = []
    if rules.not_before is not None and engine.notice & cand != cand:
        period = _clip(start, rules.not_before, start, end, zone)
        detail = f"the minimum notice excludes slots before {_fmt(rules.not_before, zone)}"
        out.append(Reason(ReasonKind.NOTICE, periods=(period,) if period else (), detail=detail, session=session))
    blocking = blocking_statuses(rules.tentative_is_busy)
    alone_ok = True
    for name in panel.required:
        person_reasons = _person_reasons(engine, name, people.get(name), start, end, rules, blocking, cand)
        for reason in person_reasons:
            out.append(replace(reason, session=session))
        if not engine.ok_mask(name, duration) & cand:
            alone_ok = False
    required = cand
    for name in panel.required:
        required &= engine.ok_mask(name, duration)
    for pool in panel.pools:
        for member in pool.members:
            person = people.get(member)
            if person is None or person.schedule.status is not ScheduleStatus.OK:
                out.append(
                    Reason(ReasonKind.UNREADABLE, member, pool.name, detail=_unreadable(person), session=session)
                )
        masks = [engine.ok_mask(m, duration) for m in pool.members]
        if not at_least([m & required for m in masks], pool.need, engine.full):
            best = max((sum(m >> k & 1 for m in masks) for k in bit_positions(required)), default=0)
            where = "while the required interviewers are" if panel.required else "at any time"
            detail = f"at most {best} of {len(pool.members)} members free {where}; {pool.need} needed"
            out.append(Reason(ReasonKind.POOL_SHORT, pool=pool.name, detail=detail, session=session))
    if alone_ok and len(panel.required) > 1 and not required:
        detail = "every required interviewer has free time in the window, but never all at the same time"
        out.append(Reason(ReasonKind.NO_COMMON_TIME, detail=detail, session=session))
    # What decides the answer first (nobody can be read, nobody overlaps), what merely shapes it last.
    return tuple(sorted(out, key=lambda r: _REASON_ORDER.index(r.kind)))


_REASON_ORDER = (
    ReasonKind.WINDOW_TOO_SHORT,
    ReasonKind.UNREADABLE,
    ReasonKind.NO_COMMON_TIME,
    ReasonKind.POOL_SHORT,
    ReasonKind.SESSIONS_DO_NOT_CHAIN,
    ReasonKind.OUTSIDE_CANDIDATE_WINDOWS,
    ReasonKind.DAY_CAP,
    ReasonKind.WEEK_CAP,
    ReasonKind.NOTICE,
    ReasonKind.BUSY,
    ReasonKind.OUTSIDE_WORKING_HOURS,
)


def _unreadable(person: Person | None) -> str:
    if person is None:
        return "no_schedule"
    return person.schedule.reason or "unreadable"


def _person_reasons(
    engine: Engine,
    name: str,
    person: Person | None,
    start: datetime,
    end: datetime,
    rules: SlotRules,
    blocking: frozenset[FreeBusyStatus],
    cand: int,
) -> list[Reason]:
    cells = engine.cells.get(name)
    if person is None or person.schedule.status is not ScheduleStatus.OK or cells is None:
        return [Reason(ReasonKind.UNREADABLE, name, detail=_unreadable(person))]
    zone = rules.time_zone
    out: list[Reason] = []
    span = engine.durations[rules.duration] // engine.g
    around = (engine.before + engine.after) // engine.g + span
    if (runs(cells.free, around) << (engine.before // engine.g)) & cand != cand:
        periods: list[tuple[datetime, datetime]] = []
        for block in sorted(person.schedule.busy, key=lambda b: b.start):
            if block.status in blocking:
                clipped = _clip(block.start, block.end, start, end, zone)
                if clipped and periods and clipped[0] <= periods[-1][1]:
                    periods[-1] = (periods[-1][0], max(periods[-1][1], clipped[1]))
                elif clipped:
                    periods.append(clipped)
        if periods:
            shown = ", ".join(
                f"{_fmt(a, zone)}-{b.strftime('%H:%M')}" for a, b in periods[:_MAX_BUSY_PERIODS_IN_SUMMARY]
            )
            more = f" and {len(periods) - _MAX_BUSY_PERIODS_IN_SUMMARY} more" if len(periods) > 2 else ""
            out.append(Reason(ReasonKind.BUSY, name, periods=tuple(periods), detail=f"busy {shown}{more}"))
        else:  # only the buffers reach an event just outside the window
            out.append(Reason(ReasonKind.BUSY, name, detail="busy right around the window (buffers)"))
    hours = person.schedule.working_hours
    if rules.working_hours and hours is not None and runs(engine.work[cells.work_key], span) & cand != cand:
        periods = []
        for a, b in working_intervals(hours, start.timestamp(), end.timestamp()):
            clipped = _clip(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC), start, end, zone)
            if clipped:
                periods.append(clipped)
        days = ", ".join(d for d in DAY_NAMES if d in hours.days) or "no days"
        detail = f"works {days} {hours.start:%H:%M}-{hours.end:%H:%M} {hours.time_zone_name}"
        if not periods:
            detail += "; none of it inside the window"
        out.append(Reason(ReasonKind.OUTSIDE_WORKING_HOURS, name, periods=tuple(periods), detail=detail))
    if cells.allowed & cand != cand:
        day_periods: list[tuple[datetime, datetime]] = []
        week_periods: list[tuple[datetime, datetime]] = []
        for kind, first, until in capped_periods(person, rules):
            clipped = _clip(first, until, start, end, zone)
            if clipped is not None:
                (day_periods if kind is ReasonKind.DAY_CAP else week_periods).append(clipped)
        if day_periods:
            detail = f"already {rules.max_per_day} interview(s) booked on a day (cap {rules.max_per_day})"
            out.append(Reason(ReasonKind.DAY_CAP, name, periods=tuple(sorted(day_periods)), detail=detail))
        if week_periods:
            detail = f"already {rules.max_per_week} interview(s) booked in a week (cap {rules.max_per_week})"
            out.append(Reason(ReasonKind.WEEK_CAP, name, periods=tuple(sorted(week_periods)), detail=detail))
    return out


def _suggestions(
    engine: Engine,
    panel: Panel,
    people: Mapping[str, Person],
    start: datetime,
    end: datetime,
    rules: SlotRules,
    horizon_end: datetime | None,
    session: int | None,
) -> tuple[Suggestion, ...]:
    out: list[Suggestion] = []
    duration = rules.duration
    # Relaxed panels re-use the masks already computed: the people's calendars do not change.
    for i, pool in enumerate(panel.pools):
        for lower in range(1, pool.need + 1):
            pools = (*panel.pools[:i], replace(pool, need=pool.need - lower), *panel.pools[i + 1 :])
            if not _needs_somebody(replace(panel, pools=pools)):
                break
            found = engine.final(replace(panel, pools=pools), duration).bit_count()
            if found:
                detail = f"lower the need of pool {pool.name} from {pool.need} to {pool.need - lower}"
                out.append(Suggestion(SuggestionKind.LOWER_NEED, pool.name, lower, found, detail, session))
                break
    for name in panel.required:
        relaxed = replace(
            panel, required=tuple(r for r in panel.required if r != name), optional=(*panel.optional, name)
        )
        found = engine.final(relaxed, duration).bit_count() if _needs_somebody(relaxed) else 0
        if found:
            out.append(Suggestion(SuggestionKind.MAKE_OPTIONAL, name, None, found, f"make {name} optional", session))

    def rerun(changed: SlotRules, until: datetime = end) -> list[datetime]:
        # Start instants only: a relaxed rule can open the whole window, and who is free in each
        # slot is not what a suggestion reports.
        found = Engine(people, panel.people(), start, until, changed, (duration,)).starts(panel, duration)
        return [datetime.fromtimestamp(s, UTC) for s in found]

    blocks = [b for n in panel.people() if (p := people.get(n)) for b in p.schedule.busy]
    if rules.tentative_is_busy and any(b.status is FreeBusyStatus.TENTATIVE for b in blocks):
        found = len(rerun(replace(rules, tentative_is_busy=False)))
        if found:
            detail = "count tentative events as free"
            out.append(Suggestion(SuggestionKind.TENTATIVE_AS_FREE, None, None, found, detail, session))
    if rules.not_before is not None and rules.not_before > start:
        earlier = [s for s in rerun(replace(rules, not_before=None)) if s < rules.not_before]
        if earlier:
            minutes = math.ceil((rules.not_before - earlier[-1]).total_seconds() / 60)
            detail = f"ask for {minutes} minutes less notice"
            sooner = rules.not_before - timedelta(minutes=minutes)
            found = sum(1 for s in earlier if s >= sooner)
            out.append(Suggestion(SuggestionKind.SHORTEN_NOTICE, None, minutes, found, detail, session))
    if horizon_end is not None and horizon_end > end:
        later = rerun(rules, horizon_end)
        if later:
            days = max(math.ceil((later[0] + duration - end) / ONE_DAY), 1)
            until = min(end + days * ONE_DAY, horizon_end)
            found = sum(1 for s in later if s + duration <= until)
            detail = f"widen the window by {days} day(s)"
            out.append(Suggestion(SuggestionKind.WIDEN_WINDOW, None, days, found, detail, session))
    for kind, field_name in (
        (SuggestionKind.RAISE_DAY_CAP, "max_per_day"),
        (SuggestionKind.RAISE_WEEK_CAP, "max_per_week"),
    ):
        cap = getattr(rules, field_name)
        if cap is not None and any(people[n].booked for n in panel.people() if n in people):
            found = len(rerun(replace(rules, **{field_name: cap + 1})))
            if found:
                detail = f"raise {field_name.replace('_', ' ')} to {cap + 1}"
                out.append(Suggestion(kind, None, 1, found, detail, session))
    if rules.working_hours and any((p := people.get(n)) and p.schedule.working_hours for n in panel.people()):
        found = len(rerun(replace(rules, working_hours=False)))
        if found:
            detail = "book outside working hours"
            out.append(Suggestion(SuggestionKind.IGNORE_WORKING_HOURS, None, None, found, detail, session))
    order = {kind: i for i, kind in enumerate(SUGGESTION_ORDER)}
    out.sort(key=lambda s: (order[s.kind], s.amount or 0, -s.slots))
    return tuple(out)


def _needs_somebody(panel: Panel) -> bool:
    """A relaxed panel must still need an interviewer: a slot with nobody in it is no answer."""
    return bool(panel.required) or any(pool.need > 0 for pool in panel.pools)


def _summary(
    duration: timedelta,
    start: datetime,
    end: datetime,
    zone: tzinfo,
    reasons: Sequence[Reason],
    suggestions: Sequence[Suggestion],
) -> str:
    minutes = int(duration.total_seconds() // 60)
    text = f"No {minutes}-minute slot fits between {_fmt(start, zone)} and {_fmt(end, zone)}"
    parts = []
    for reason in reasons[:3]:
        who = reason.person or (f"pool {reason.pool}" if reason.pool else "")
        label = reason.kind.value.replace("_", " ")
        parts.append(f"{who}: {label} ({reason.detail})" if who else f"{label} ({reason.detail})")
    if parts:
        text += ": " + "; ".join(parts)
        if len(reasons) > 3:
            text += f"; and {len(reasons) - 3} more reason(s)"
    text += "."
    if suggestions:
        text += f" Smallest change that gives a slot: {suggestions[0].detail}."
    return text
