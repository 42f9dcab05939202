"""The slot engine: every person's free time as a bitset over one cell grid, combined for a panel."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

from shared.memo import IdentityMemo
from shared.models import FreeBusyStatus, Schedule, ScheduleStatus
from shared.scheduling.slots.grid import (
    ONE_DAY,
    at_least,
    aware,
    bit_positions,
    blocking_statuses,
    grid_starts,
    mask_of,
    regular_day,
    runs,
    whole_seconds,
    working_intervals,
)
from shared.scheduling.slots.values import NO_LOAD, Load, Panel, Person, ReasonKind, Slot, SlotRules


class _Cells(NamedTuple):
    """What one readable person's calendar says, cell by cell (a tuple: one is made per person and query)."""

    free: int  # cells no blocking event overlaps
    work_key: object  # key of the working-cells mask in Engine.work
    allowed: int  # slot-start cells the caps allow
    source: object  # what ``free`` was derived from (the schedule), for remembering what is derived from it
    grid: tuple[object, ...]  # the grid and blocking statuses ``free`` was worked out on


# A schedule's busy cells per grid (its first instant, cell size and length) and set of blocking statuses,
# and the starts its free runs leave for a slot with its buffers: a warm interviewer's schedule is the same
# object from query to query (``shared.memo``).
_busy_cells: IdentityMemo[int] = IdentityMemo(per_object=16)


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
        self.start = aware(start, "start")
        self.end = aware(end, "end")
        if rules.not_before is not None:
            aware(rules.not_before, "not_before")
        if rules.interval <= timedelta(0) or rules.interval % timedelta(minutes=1):
            raise ValueError("interval must be a positive whole number of minutes")
        self.durations = {d: whole_seconds(d, "duration") for d in durations}
        if not self.durations or min(self.durations.values()) <= 0:
            raise ValueError("duration must be positive")
        self.before = whole_seconds(rules.buffer_before, "buffer_before")
        self.after = whole_seconds(rules.buffer_after, "buffer_after")
        if self.before < 0 or self.after < 0:
            raise ValueError("buffers must not be negative")
        interval = whole_seconds(rules.interval, "interval")
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
        self.cand = mask_of((c - self.t0) // g for c in self.candidates) if len(spacing) > 1 else 0
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
        lo, hi = self.t0, self.t0 + self.n * self.g
        grid = (lo, self.g, self.n, blocking)
        busy = _busy_cells.get(schedule, grid, lambda: self._busy_cells(schedule, blocking))
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
        return _Cells(self.full & ~busy, key, self._caps_mask(person), schedule, grid)

    def _busy_cells(self, schedule: Schedule, blocking: frozenset[FreeBusyStatus]) -> int:
        """Mask of the cells that a blocking event of ``schedule`` touches."""
        busy = 0
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
        return busy

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
        shift = self.before // self.g
        free = _busy_cells.get(cells.source, (*cells.grid, around, shift), lambda: runs(cells.free, around) << shift)
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
        if regular_day(day, zone) and regular_day(day + ONE_DAY, zone):
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
    for day, count in counts.days.items():
        if at_cap(count, rules.max_per_day):
            a, b = datetime.combine(day, time(0), zone), datetime.combine(day + ONE_DAY, time(0), zone)
            out.append((ReasonKind.DAY_CAP, a, b))
    for (year, week), count in counts.weeks.items():
        if at_cap(count, rules.max_per_week):
            monday = date.fromisocalendar(year, week, 1)
            a, b = datetime.combine(monday, time(0), zone), datetime.combine(monday + 7 * ONE_DAY, time(0), zone)
            out.append((ReasonKind.WEEK_CAP, a, b))
    return out


def at_cap(count: int, cap: int | None) -> bool:
    """Whether ``count`` interviews (on a local day, or in an ISO week) already reach ``cap`` (None: no cap):
    the one cap test of slots and loops."""
    return cap is not None and count >= cap
