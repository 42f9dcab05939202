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

Where: ``values`` (the inputs and the answer), ``grid`` (bitsets, the start grid, working intervals),
``engine`` (the cell masks of one window, combined for a panel), ``explanations`` (reasons,
suggestions and the summary sentence); :func:`find_slots` here puts them together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared.scheduling.slots.engine import Engine
from shared.scheduling.slots.explanations import explain
from shared.scheduling.slots.grid import aware, first_bits
from shared.scheduling.slots.values import (
    NO_LOAD,
    SUGGESTION_ORDER,
    Explanation,
    InterviewCounts,
    Load,
    Panel,
    Person,
    Pool,
    Reason,
    ReasonKind,
    Slot,
    SlotRules,
    SlotSearch,
    Suggestion,
    SuggestionKind,
)

__all__ = [
    "NO_LOAD",
    "SUGGESTION_ORDER",
    "Explanation",
    "InterviewCounts",
    "Load",
    "Panel",
    "Person",
    "Pool",
    "Reason",
    "ReasonKind",
    "Slot",
    "SlotRules",
    "SlotSearch",
    "Suggestion",
    "SuggestionKind",
    "find_slots",
]


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
    later = final & ~((1 << engine.first_after(aware(after, "after").timestamp())) - 1) if after else final
    page = first_bits(later, limit)
    slots = engine.listed(panel, rules.duration, page, masks)
    return SlotSearch(slots, None, total=final.bit_count(), more=later != page)
