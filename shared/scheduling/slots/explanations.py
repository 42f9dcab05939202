"""Why a panel has no slot: the reasons, the single changes that would give one (each found by
running the engine again on relaxed inputs), and the summary sentence."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from shared.models import FreeBusyStatus, ScheduleStatus, WorkingHours
from shared.scheduling.slots.engine import Engine, capped_periods
from shared.scheduling.slots.grid import ONE_DAY, at_least, bit_positions, blocking_statuses, runs, working_intervals
from shared.scheduling.slots.values import (
    SUGGESTION_ORDER,
    Explanation,
    Panel,
    Person,
    Reason,
    ReasonKind,
    SlotRules,
    Suggestion,
    SuggestionKind,
)
from shared.text import counted, day_ranges

_MAX_BUSY_PERIODS_IN_SUMMARY = 2


# ---- explanations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Asked:
    """One search that found no slot, as its explanation looks at it."""

    engine: Engine
    panel: Panel
    people: Mapping[str, Person]
    start: datetime
    end: datetime
    rules: SlotRules
    session: int | None

    def clip(self, a: datetime, b: datetime) -> tuple[datetime, datetime] | None:
        """``[a, b)`` cut to the window, in the answer's zone; None when nothing of it is inside."""
        lo, hi = max(a, self.start), min(b, self.end)
        zone = self.rules.time_zone
        return (lo.astimezone(zone), hi.astimezone(zone)) if hi > lo else None


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
    asked = _Asked(engine, panel, people, start, end, rules, session)
    reasons = _reasons(asked)
    suggestions = _suggestions(asked, horizon_end)
    return Explanation(
        _summary(rules.duration, start, end, rules.time_zone, reasons, suggestions), reasons, suggestions
    )


def _fmt(value: datetime, zone: tzinfo) -> str:
    return value.astimezone(zone).strftime("%a %Y-%m-%d %H:%M")


def _reasons(asked: _Asked) -> tuple[Reason, ...]:
    engine, panel, rules, session = asked.engine, asked.panel, asked.rules, asked.session
    zone = rules.time_zone
    duration = rules.duration
    cand = engine.candidates_mask(duration)
    if not cand:
        minutes = int(duration.total_seconds() // 60)
        window = f"{_fmt(asked.start, zone)} and {_fmt(asked.end, zone)}"
        detail = f"no {minutes}-minute slot on the grid fits between {window}"
        return (Reason(ReasonKind.WINDOW_TOO_SHORT, detail=detail, session=session),)
    out: list[Reason] = []
    if rules.not_before is not None and engine.notice & cand != cand:
        period = asked.clip(asked.start, rules.not_before)
        detail = f"the minimum notice excludes slots before {_fmt(rules.not_before, zone)}"
        out.append(Reason(ReasonKind.NOTICE, periods=(period,) if period else (), detail=detail, session=session))
    alone_ok = True
    for name in panel.required:
        for reason in _person_reasons(asked, name, cand):
            out.append(replace(reason, session=session))
        if not engine.ok_mask(name, duration) & cand:
            alone_ok = False
    required = cand
    for name in panel.required:
        required &= engine.ok_mask(name, duration)
    for pool in panel.pools:
        for member in pool.members:
            person = asked.people.get(member)
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


def _person_reasons(asked: _Asked, name: str, cand: int) -> list[Reason]:
    """Why ``name`` alone misses some of the window's starts (``cand``): unreadable, busy, outside
    working hours, or at a cap."""
    engine, rules = asked.engine, asked.rules
    person = asked.people.get(name)
    cells = engine.cells.get(name)
    if person is None or person.schedule.status is not ScheduleStatus.OK or cells is None:
        return [Reason(ReasonKind.UNREADABLE, name, detail=_unreadable(person))]
    out: list[Reason] = []
    span = engine.durations[rules.duration] // engine.g
    around = (engine.before + engine.after) // engine.g + span
    if (runs(cells.free, around) << (engine.before // engine.g)) & cand != cand:
        out.append(_busy_reason(asked, name, person))
    hours = person.schedule.working_hours
    if rules.working_hours and hours is not None and runs(engine.work[cells.work_key], span) & cand != cand:
        out.append(_working_hours_reason(asked, name, hours))
    if cells.allowed & cand != cand:
        out.extend(_cap_reasons(asked, name, person))
    return out


def _busy_reason(asked: _Asked, name: str, person: Person) -> Reason:
    """The person's blocking events inside the window, merged where they touch."""
    blocking = blocking_statuses(asked.rules.tentative_is_busy)
    periods: list[tuple[datetime, datetime]] = []
    for block in sorted(person.schedule.busy, key=lambda b: b.start):
        if block.status in blocking:
            clipped = asked.clip(block.start, block.end)
            if clipped and periods and clipped[0] <= periods[-1][1]:
                periods[-1] = (periods[-1][0], max(periods[-1][1], clipped[1]))
            elif clipped:
                periods.append(clipped)
    if not periods:  # only the buffers reach an event just outside the window
        return Reason(ReasonKind.BUSY, name, detail="busy right around the window (buffers)")
    zone = asked.rules.time_zone
    shown = ", ".join(f"{_fmt(a, zone)}-{b.strftime('%H:%M')}" for a, b in periods[:_MAX_BUSY_PERIODS_IN_SUMMARY])
    more = f" and {len(periods) - _MAX_BUSY_PERIODS_IN_SUMMARY} more" if len(periods) > 2 else ""
    return Reason(ReasonKind.BUSY, name, periods=tuple(periods), detail=f"busy {shown}{more}")


def _working_hours_reason(asked: _Asked, name: str, hours: WorkingHours) -> Reason:
    """The person's working time inside the window, and their working hours in words."""
    periods = []
    for a, b in working_intervals(hours, asked.start.timestamp(), asked.end.timestamp()):
        clipped = asked.clip(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC))
        if clipped:
            periods.append(clipped)
    days = day_ranges(hours.days)
    detail = f"works {days} {hours.start:%H:%M}-{hours.end:%H:%M} {hours.time_zone_name}"
    if not periods:
        detail += "; none of it inside the window"
    return Reason(ReasonKind.OUTSIDE_WORKING_HOURS, name, periods=tuple(periods), detail=detail)


def _cap_reasons(asked: _Asked, name: str, person: Person) -> list[Reason]:
    """The local days and ISO weeks inside the window in which the person's caps are reached."""
    rules = asked.rules
    day_periods: list[tuple[datetime, datetime]] = []
    week_periods: list[tuple[datetime, datetime]] = []
    for kind, first, until in capped_periods(person, rules):
        clipped = asked.clip(first, until)
        if clipped is not None:
            (day_periods if kind is ReasonKind.DAY_CAP else week_periods).append(clipped)
    out: list[Reason] = []
    if day_periods:
        detail = f"already {counted(rules.max_per_day or 0, 'interview')} booked on a day (cap {rules.max_per_day})"
        out.append(Reason(ReasonKind.DAY_CAP, name, periods=tuple(sorted(day_periods)), detail=detail))
    if week_periods:
        booked = counted(rules.max_per_week or 0, "interview")
        detail = f"already {booked} booked in a week (cap {rules.max_per_week})"
        out.append(Reason(ReasonKind.WEEK_CAP, name, periods=tuple(sorted(week_periods)), detail=detail))
    return out


def _suggestions(asked: _Asked, horizon_end: datetime | None) -> tuple[Suggestion, ...]:
    panel, people, rules, session = asked.panel, asked.people, asked.rules, asked.session
    start, end, duration = asked.start, asked.end, rules.duration

    def rerun(changed: SlotRules, until: datetime = end) -> list[datetime]:
        # Start instants only: a relaxed rule can open the whole window, and who is free in each
        # slot is not what a suggestion reports.
        found = Engine(people, panel.people(), start, until, changed, (duration,)).starts(panel, duration)
        return [datetime.fromtimestamp(s, UTC) for s in found]

    out = [
        *_panel_suggestions(asked.engine, panel, duration, session),
        *_rule_suggestions(rerun, panel, people, rules, session),
    ]
    if rules.not_before is not None and rules.not_before > start:
        earlier = [s for s in rerun(replace(rules, not_before=None)) if s < rules.not_before]
        if earlier:
            out.append(_shorter_notice(earlier, rules.not_before, session))
    if horizon_end is not None and horizon_end > end:
        later = rerun(rules, horizon_end)
        if later:
            out.append(_wider_window(later, end, horizon_end, duration, session))
    order = {kind: i for i, kind in enumerate(SUGGESTION_ORDER)}
    out.sort(key=lambda s: (order[s.kind], s.amount or 0, -s.slots))
    return tuple(out)


def _panel_suggestions(engine: Engine, panel: Panel, duration: timedelta, session: int | None) -> list[Suggestion]:
    """A pool that needs fewer members, or a required person made optional."""
    out: list[Suggestion] = []
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
    return out


def _rule_suggestions(
    rerun: Callable[[SlotRules], list[datetime]],
    panel: Panel,
    people: Mapping[str, Person],
    rules: SlotRules,
    session: int | None,
) -> list[Suggestion]:
    """Tentative events counted as free, higher caps, or booking outside working hours: each where it
    could matter, found by running the search again with it (``rerun``)."""
    out: list[Suggestion] = []
    blocks = [b for n in panel.people() if (p := people.get(n)) for b in p.schedule.busy]
    if rules.tentative_is_busy and any(b.status is FreeBusyStatus.TENTATIVE for b in blocks):
        found = len(rerun(replace(rules, tentative_is_busy=False)))
        if found:
            detail = "count tentative events as free"
            out.append(Suggestion(SuggestionKind.TENTATIVE_AS_FREE, None, None, found, detail, session))
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
    return out


def _shorter_notice(earlier: list[datetime], not_before: datetime, session: int | None) -> Suggestion:
    """Just enough less notice to reach the latest of the ``earlier`` starts, and how many it opens."""
    minutes = math.ceil((not_before - earlier[-1]).total_seconds() / 60)
    sooner = not_before - timedelta(minutes=minutes)
    found = sum(1 for s in earlier if s >= sooner)
    detail = f"ask for {minutes} minutes less notice"
    return Suggestion(SuggestionKind.SHORTEN_NOTICE, None, minutes, found, detail, session)


def _wider_window(
    later: list[datetime], end: datetime, horizon_end: datetime, duration: timedelta, session: int | None
) -> Suggestion:
    """Just enough whole days to reach the first of the ``later`` starts, and how many they open."""
    days = max(math.ceil((later[0] + duration - end) / ONE_DAY), 1)
    until = min(end + days * ONE_DAY, horizon_end)
    found = sum(1 for s in later if s + duration <= until)
    detail = f"widen the window by {counted(days, 'day')}"
    return Suggestion(SuggestionKind.WIDEN_WINDOW, None, days, found, detail, session)


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
            text += f"; and {counted(len(reasons) - 3, 'more reason')}"
    text += "."
    if suggestions:
        text += f" Smallest change that gives a slot: {suggestions[0].detail}."
    return text
