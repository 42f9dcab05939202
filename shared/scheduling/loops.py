"""Interview loops: an ordered list of sessions booked back to back (within a gap) for one candidate.

Pure functions over ``shared.models`` and the slot engine in ``shared.scheduling.slots``; no I/O::

    find_loops(sessions, people, start, end, rules, *, horizon_end=None) -> LoopSearch

Each :class:`LoopSession` has a duration and its own :class:`~shared.scheduling.slots.Panel`. A loop places
every session on the slot grid of ``rules.time_zone`` (see ``shared.scheduling.slots``), in order: session
``i + 1`` starts at or after session ``i`` ends, at most ``rules.max_gap`` later (``None``: no
limit). With ``same_day`` all sessions lie in one local day of ``rules.time_zone``; with
``candidate_windows`` every session lies inside one of the candidate's windows.

Each session is bookable for its people exactly as in ``find_slots``; across the loop, a person who
sits in several sessions must have their buffers free of their other sessions (so consecutive
sessions of one person need a gap of ``max(buffer_before, buffer_after)``) and counts once per
session toward the caps. Pools get exactly ``need`` members, the least loaded first: the fewest
interviews in the session's ISO week, then on its local day (stored ones and their other seats in
this loop, counted as in ``shared.scheduling.slots``; then member order); optional people are listed when
they are free.

Loops are ranked by fewest gaps, then shortest total gap, then the lowest load (the sum, over
every seat, of the interviews its person already has that week: stored ones and their earlier
seats in the loop; the lowest sum is the smallest rise in the sum of squared loads, the fairest
spread), then the same sum per local day, then the earliest start; at most
``max_results`` come back, each with distinct session times. With none, the explanation names the
session that fits nowhere (with the same reasons as ``find_slots``) or says that the sessions do
not chain, with suggestions found by re-running the search on relaxed inputs.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta, tzinfo

from shared.scheduling.slots import Load, Panel, Person, SlotRules
from shared.scheduling.slots.engine import Engine, at_cap
from shared.scheduling.slots.explanations import explain
from shared.scheduling.slots.grid import ONE_DAY, bit_positions
from shared.scheduling.slots.values import SUGGESTION_ORDER, Explanation, Reason, ReasonKind, Suggestion, SuggestionKind
from shared.text import counted

_MAX_SEQUENCES = 20_000  # start sequences looked at; beyond it the search keeps the earliest ones
_MAX_TRIES = 64  # pool combinations tried per sequence before giving it up


@dataclass(frozen=True)
class LoopSession:
    duration: timedelta
    panel: Panel
    name: str = ""


@dataclass(frozen=True)
class LoopRules:
    interval: timedelta
    time_zone: tzinfo
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    not_before: datetime | None = None
    tentative_is_busy: bool = True
    working_hours: bool = True
    max_per_day: int | None = None
    max_per_week: int | None = None
    max_gap: timedelta | None = None  # between one session's end and the next one's start
    same_day: bool = True
    candidate_windows: tuple[tuple[datetime, datetime], ...] = ()
    max_results: int = 5

    def slot_rules(self, duration: timedelta) -> SlotRules:
        return SlotRules(
            duration=duration,
            interval=self.interval,
            time_zone=self.time_zone,
            buffer_before=self.buffer_before,
            buffer_after=self.buffer_after,
            not_before=self.not_before,
            tentative_is_busy=self.tentative_is_busy,
            working_hours=self.working_hours,
            max_per_day=self.max_per_day,
            max_per_week=self.max_per_week,
        )


@dataclass(frozen=True)
class ScheduledSession:
    name: str
    start: datetime
    end: datetime
    interviewers: tuple[str, ...]  # required, then chosen pool members, then free optional people


@dataclass(frozen=True)
class Loop:
    sessions: tuple[ScheduledSession, ...]
    gaps: tuple[timedelta, ...]
    load: int  # per seat, the person's interviews already that week (stored, earlier seats), summed
    day_load: int = 0  # the same per local day: the tie-break between loops of equal load


@dataclass(frozen=True)
class LoopSearch:
    loops: tuple[Loop, ...]
    explanation: Explanation | None


@dataclass
class _Seats:
    """Who sits where in one candidate loop: (start, end) seconds per person."""

    by_person: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def find_loops(
    sessions: Sequence[LoopSession],
    people: Mapping[str, Person],
    start: datetime,
    end: datetime,
    rules: LoopRules,
    *,
    horizon_end: datetime | None = None,
) -> LoopSearch:
    """The best loops for ``sessions`` in ``[start, end]``, or an explanation when none fits.

    Raises ValueError for no sessions, a non-positive ``max_results`` or anything
    :func:`shared.scheduling.slots.find_slots` rejects."""
    search = _Search(sessions, people, start, end, rules)
    loops = search.run()
    if loops:
        return LoopSearch(loops, None)
    return LoopSearch((), search.explain(horizon_end))


class _Search:
    def __init__(
        self,
        sessions: Sequence[LoopSession],
        people: Mapping[str, Person],
        start: datetime,
        end: datetime,
        rules: LoopRules,
    ) -> None:
        if not sessions:
            raise ValueError("a loop needs at least one session")
        if rules.max_results < 1:
            raise ValueError("max_results must be positive")
        self.sessions = tuple(sessions)
        self.people = people
        self.start, self.end, self.rules = start, end, rules
        names: dict[str, None] = {}
        for session in sessions:
            names.update(dict.fromkeys(session.panel.people()))
        durations = tuple(dict.fromkeys(s.duration for s in sessions))
        self.engine = Engine(people, names, start, end, rules.slot_rules(durations[0]), durations)
        self.chains = 0  # start sequences that met the gap, day and window rules

    # -- per session
    def _session_masks(self, session: LoopSession) -> dict[str, int]:
        return {name: self.engine.ok_mask(name, session.duration) for name in session.panel.people()}

    def _window_mask(self, duration: timedelta) -> int:
        if not self.rules.candidate_windows:
            return -1
        engine, seconds = self.engine, duration.total_seconds()
        out = 0
        for a, b in self.rules.candidate_windows:
            out |= engine.starts_in(a.timestamp(), b.timestamp() - seconds + 0.5)
        return out

    # -- the search
    def run(self) -> tuple[Loop, ...]:
        engine = self.engine
        if not engine.n:
            return ()
        self.masks = [self._session_masks(s) for s in self.sessions]
        finals = [
            engine.final(s.panel, s.duration, m) & self._window_mask(s.duration)
            for s, m in zip(self.sessions, self.masks, strict=True)
        ]
        if not all(finals):
            return ()
        positions = [bit_positions(f) for f in finals]
        spans = [engine.durations[s.duration] // engine.g for s in self.sessions]
        max_gap = None if self.rules.max_gap is None else math.floor(self.rules.max_gap.total_seconds() / engine.g)
        sequences: list[tuple[int, ...]] = []
        zone = self.rules.time_zone

        def extend(prefix: list[int], limit: int) -> None:
            i = len(prefix)
            if i == len(self.sessions):
                sequences.append(tuple(prefix))
                return
            after = prefix[-1] + spans[i - 1]
            options = positions[i]
            lo = bisect_left(options, after)
            hi = len(options) if max_gap is None else bisect_right(options, after + max_gap)
            for k in options[lo:hi]:
                if k + spans[i] > limit:
                    break
                if len(sequences) >= _MAX_SEQUENCES:
                    return
                prefix.append(k)
                extend(prefix, limit)
                prefix.pop()

        for k0 in positions[0]:
            limit = engine.n
            if self.rules.same_day:
                day = datetime.fromtimestamp(engine.cell_start(k0), zone).date()
                midnight = datetime.combine(day + ONE_DAY, time(0), zone).timestamp()
                limit = math.floor((midnight - engine.t0) / engine.g)
            if k0 + spans[0] <= limit:
                extend([k0], limit)
            if len(sequences) >= _MAX_SEQUENCES:
                break
        self.chains = len(sequences)

        def gap_key(seq: tuple[int, ...]) -> tuple[int, int]:
            gaps = [seq[i + 1] - seq[i] - spans[i] for i in range(len(seq) - 1)]
            return sum(1 for g in gaps if g), sum(gaps)

        sequences.sort(key=lambda seq: (gap_key(seq), seq[0]))
        out: list[Loop] = []
        for _, group in itertools.groupby(sequences, key=gap_key):
            found = [loop for seq in group if (loop := self._assign(seq, spans)) is not None]
            found.sort(key=lambda loop: (loop.load, loop.day_load, loop.sessions[0].start))
            out.extend(found[: self.rules.max_results - len(out)])
            if len(out) >= self.rules.max_results:
                break
        return tuple(out)

    def _seat_load(self, seats: _Seats, name: str, a: int, *, before: bool = False) -> Load:
        """``name``'s load at ``a``: their stored interviews that week and day, plus their seats in
        this loop in the same week and day (only the seats before ``a`` when ``before``)."""
        stored = self.engine.load(name, a)
        taken = seats.by_person.get(name)
        if not taken:
            return stored
        day = self.engine.local_day(name, a)
        week = day.isocalendar()[:2]
        same_week = same_day = 0
        for s, _ in taken:
            if before and s >= a:
                continue
            other = self.engine.local_day(name, s)
            if other.isocalendar()[:2] == week:
                same_week += 1
                same_day += other == day
        return Load(stored.week + same_week, stored.day + same_day)

    def _fits(self, seats: _Seats, name: str, a: int, b: int) -> bool:
        """Can ``name`` also sit in [a, b) given their other seats in this loop (buffers, caps)?"""
        taken = seats.by_person.get(name, [])
        if not taken:
            return True  # the engine's masks already hold the caps for a first seat
        engine, rules = self.engine, self.rules
        spacing = max(engine.before, engine.after)
        for s, e in taken:
            if not (e + spacing <= a or b + spacing <= s):
                return False
        load = self._seat_load(seats, name, a)
        return not (at_cap(load.day, rules.max_per_day) or at_cap(load.week, rules.max_per_week))

    def _assign(self, seq: tuple[int, ...], spans: Sequence[int]) -> Loop | None:
        engine = self.engine
        seats = _Seats()
        times = [(engine.cell_start(k), engine.cell_start(k + span)) for k, span in zip(seq, spans, strict=True)]
        if not self._seat_required(seats, times):
            return None
        chosen = self._fill_pools(seats, seq, times)
        if chosen is None:
            return None
        scheduled = self._scheduled(seats, seq, times, chosen)
        week, day = self._loop_load(seats, scheduled, times)
        gaps = tuple(scheduled[i + 1].start - scheduled[i].end for i in range(len(scheduled) - 1))
        return Loop(tuple(scheduled), gaps, week, day)

    def _seat_required(self, seats: _Seats, times: Sequence[tuple[int, int]]) -> bool:
        """Seat every session's required people; False when one of them cannot sit in a session."""
        for session, (a, b) in zip(self.sessions, times, strict=True):
            for name in session.panel.required:
                if not self._fits(seats, name, a, b):
                    return False
                seats.by_person.setdefault(name, []).append((a, b))
        return True

    def _fill_pools(
        self, seats: _Seats, seq: tuple[int, ...], times: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, str], tuple[str, ...]] | None:
        """Members for the pools of every session, in order, with a bounded backtracking over member
        choices: (session index, pool name) -> the members chosen; None when no choice fits."""
        tasks = [(i, pool) for i, session in enumerate(self.sessions) for pool in session.panel.pools]
        chosen: dict[tuple[int, str], tuple[str, ...]] = {}
        tries = [0]

        def fill(t: int) -> bool:
            if t == len(tasks):
                return True
            i, pool = tasks[t]
            a, b = times[i]
            k = seq[i]
            free = [m for m in pool.members if self.masks[i][m] >> k & 1 and self._fits(seats, m, a, b)]
            if len(free) < pool.need:
                return False
            free.sort(key=lambda m: self._seat_load(seats, m, a))  # stable: pool order breaks ties
            for combo in itertools.combinations(free, pool.need):
                if tries[0] >= _MAX_TRIES:
                    return False
                tries[0] += 1
                if not self._compatible(seats, combo, a, b):
                    continue
                for m in combo:
                    seats.by_person.setdefault(m, []).append((a, b))
                chosen[(i, pool.name)] = combo
                if fill(t + 1):
                    return True
                for m in combo:
                    seats.by_person[m].pop()
            return False

        return chosen if fill(0) else None

    def _scheduled(
        self,
        seats: _Seats,
        seq: tuple[int, ...],
        times: Sequence[tuple[int, int]],
        chosen: Mapping[tuple[int, str], tuple[str, ...]],
    ) -> list[ScheduledSession]:
        """Each session with its interviewers: the required, the pools' chosen members in pool order, and
        the optional people who are free (seated as they are added)."""
        zone = self.rules.time_zone
        scheduled = []
        for i, (session, (a, b)) in enumerate(zip(self.sessions, times, strict=True)):
            names = [*session.panel.required]
            for pool in session.panel.pools:
                picked = set(chosen[(i, pool.name)])
                names += [m for m in pool.members if m in picked]
            for name in session.panel.optional:
                if self.masks[i][name] >> seq[i] & 1 and self._fits(seats, name, a, b):
                    seats.by_person.setdefault(name, []).append((a, b))
                    names.append(name)
            scheduled.append(
                ScheduledSession(
                    session.name, datetime.fromtimestamp(a, zone), datetime.fromtimestamp(b, zone), tuple(names)
                )
            )
        return scheduled

    def _loop_load(
        self, seats: _Seats, scheduled: Sequence[ScheduledSession], times: Sequence[tuple[int, int]]
    ) -> tuple[int, int]:
        """Each seat costs the interviews its person already has that week (stored, and their earlier
        seats in this loop): the sum is what the loop adds to the sum of squared loads, so the lowest
        sum is the fairest spread. The week's sum and the day's."""
        week = day = 0
        for placed, (a, _) in zip(scheduled, times, strict=True):
            for name in placed.interviewers:
                load = self._seat_load(seats, name, a, before=True)
                week += load.week
                day += load.day
        return week, day

    def _compatible(self, seats: _Seats, combo: Sequence[str], a: int, b: int) -> bool:
        added: list[str] = []
        ok = True
        for m in combo:
            if not self._fits(seats, m, a, b):
                ok = False
                break
            seats.by_person.setdefault(m, []).append((a, b))
            added.append(m)
        for m in added:
            seats.by_person[m].pop()
        return ok

    # -- explanations
    def explain(self, horizon_end: datetime | None) -> Explanation:
        engine, rules = self.engine, self.rules
        for i, session in enumerate(self.sessions):
            slot_rules = rules.slot_rules(session.duration)
            alone = engine.final(session.panel, session.duration) if engine.n else 0
            if not alone:
                found = explain(engine, session.panel, self.people, self.start, self.end, slot_rules, None, session=i)
                reasons = found.reasons
                label = session.name or f"session {i + 1}"
                summary = f"{label} fits nowhere. {found.summary}"
                return Explanation(summary, reasons, (*found.suggestions, *self._suggest(horizon_end)))
            if not alone & self._window_mask(session.duration):
                label = session.name or f"session {i + 1}"
                detail = f"{label} fits nowhere inside the candidate's windows"
                reason = Reason(ReasonKind.OUTSIDE_CANDIDATE_WINDOWS, detail=detail, session=i)
                return Explanation(f"No loop fits: {detail}.", (reason,), self._suggest(horizon_end))
        parts = []
        if rules.max_gap is not None:
            parts.append(f"at most {int(rules.max_gap.total_seconds() // 60)} minutes apart")
        if rules.same_day:
            parts.append("on one day")
        if rules.candidate_windows:
            parts.append("inside the candidate's windows")
        if self.chains:
            detail = (
                f"{counted(self.chains, 'sequence')} of times fit, but no choice of interviewers keeps everybody's "
                "buffers and caps across the sessions"
            )
        else:
            detail = "every session fits somewhere alone, but never in sequence " + ", ".join(parts)
        reason = Reason(ReasonKind.SESSIONS_DO_NOT_CHAIN, detail=detail.strip())
        suggestions = self._suggest(horizon_end)
        summary = f"No loop of {len(self.sessions)} sessions fits: {reason.detail}."
        if suggestions:
            summary += f" Smallest change that gives a loop: {suggestions[0].detail}."
        return Explanation(summary, (reason,), suggestions)

    def _suggest(self, horizon_end: datetime | None) -> tuple[Suggestion, ...]:
        rules = self.rules

        def rerun(changed: LoopRules, until: datetime | None = None) -> tuple[Loop, ...]:
            return _Search(self.sessions, self.people, self.start, until or self.end, changed).run()

        out: list[Suggestion] = []
        if rules.max_gap is not None:
            found = rerun(replace(rules, max_gap=None))
            if found:
                widest = min(max(loop.gaps, default=timedelta(0)) for loop in found)
                minutes = math.ceil(widest.total_seconds() / 60)
                count = len(rerun(replace(rules, max_gap=timedelta(minutes=minutes))))
                detail = f"allow gaps of up to {minutes} minutes"
                out.append(Suggestion(SuggestionKind.RAISE_MAX_GAP, None, minutes, count, detail))
        if rules.same_day:
            found = rerun(replace(rules, same_day=False))
            if found:
                detail = "spread the sessions over several days"
                out.append(Suggestion(SuggestionKind.ALLOW_SEVERAL_DAYS, None, None, len(found), detail))
        if rules.tentative_is_busy:
            found = rerun(replace(rules, tentative_is_busy=False))
            if found:
                detail = "count tentative events as free"
                out.append(Suggestion(SuggestionKind.TENTATIVE_AS_FREE, None, None, len(found), detail))
        if horizon_end is not None and horizon_end > self.end:
            found = rerun(rules, horizon_end)
            if found:
                last_end = min(loop.sessions[-1].end for loop in found)
                days = max(math.ceil((last_end - self.end) / ONE_DAY), 1)
                detail = f"widen the window by {counted(days, 'day')}"
                out.append(Suggestion(SuggestionKind.WIDEN_WINDOW, None, days, len(found), detail))
        order = {kind: i for i, kind in enumerate(SUGGESTION_ORDER)}
        out.sort(key=lambda s: (order[s.kind], s.amount or 0, -s.slots))
        return tuple(out)
