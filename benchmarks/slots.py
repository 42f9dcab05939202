"""The slot engine alone: medians next to their targets.

1. find_slots for 100 interviewers (3 required, pools of 49 needing 2 and 48 needing 1) over 14 days
   on a 5-minute grid, about 25 busy blocks per person per week: target median <= 5 ms.
2. find_loops for 4 sessions with pools of 8 over 5 days: target median <= 50 ms.
Also printed without a target: a panel with no slot, explanation and suggestions included.

    .venv/bin/python benchmarks/slots.py [--runs 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time as clock
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.models import BusyBlock, FreeBusyStatus, Schedule, WorkingHours  # noqa: E402
from shared.scheduling.loops import LoopRules, LoopSession, find_loops  # noqa: E402
from shared.scheduling.slots import Panel, Person, Pool, SlotRules, find_slots  # noqa: E402

NEW_YORK = ZoneInfo("America/New_York")
ZONES = ("America/New_York", "America/Chicago", "Europe/London", "America/Los_Angeles")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


def person(rng: random.Random, email: str, start: datetime, days: int) -> Person:
    """About 25 blocks per working week, inside 09:00-17:00 of the person's own zone."""
    zone_name = rng.choice(ZONES)
    zone = ZoneInfo(zone_name)
    hours = WorkingHours(WEEKDAYS, time(9), time(17), zone, zone_name)
    busy = []
    for offset in range(days):
        day = (start + timedelta(days=offset)).astimezone(zone).date()
        if day.weekday() >= 5:
            continue
        for _ in range(5):
            at = datetime.combine(day, time(9), zone) + timedelta(minutes=15 * rng.randrange(0, 30))
            length = timedelta(minutes=rng.choice((30, 30, 60, 60, 90)))
            status = rng.choice((FreeBusyStatus.BUSY,) * 6 + (FreeBusyStatus.TENTATIVE, FreeBusyStatus.FREE))
            at = at.astimezone(UTC)  # the Graph adapter hands over UTC instants
            busy.append(BusyBlock(at, at + length, status, "Meeting"))
    booked = tuple((b.start, b.end) for b in busy[:2])
    return Person(Schedule(email, working_hours=hours, busy=tuple(busy)), booked)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        t = clock.perf_counter()
        fn()
        samples.append(clock.perf_counter() - t)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(8)
    start = datetime(2026, 12, 7, tzinfo=NEW_YORK)
    end = start + timedelta(days=14)
    emails = [f"interviewer{i:03}@contoso.example" for i in range(100)]
    people = {e: person(rng, e, start, 14) for e in emails}
    panel = Panel(
        required=tuple(emails[:3]), pools=(Pool("a", tuple(emails[3:52]), 2), Pool("b", tuple(emails[52:]), 1))
    )
    rules = SlotRules(
        duration=timedelta(minutes=60),
        interval=timedelta(minutes=5),
        time_zone=NEW_YORK,
        buffer_before=timedelta(minutes=10),
        buffer_after=timedelta(minutes=5),
        max_per_day=3,
        max_per_week=8,
    )
    found = find_slots(panel, people, start, end, rules)
    slots_ms = median_ms(lambda: find_slots(panel, people, start, end, rules), args.runs)
    label = f"find_slots 100 people x 14 days, 5-min grid ({len(found.slots)} slots)"
    print(f"{label}: median {slots_ms:.2f} ms (target <= 5)")

    blocked = Panel(required=tuple(emails[:12]), pools=(Pool("a", tuple(emails[12:52]), 2), panel.pools[1]))
    empty = find_slots(blocked, people, start, end, rules, horizon_end=end + timedelta(days=14))
    assert not empty.slots and empty.explanation is not None
    explain_ms = median_ms(
        lambda: find_slots(blocked, people, start, end, rules, horizon_end=end + timedelta(days=14)), args.runs
    )
    print(
        f"find_slots with no slot, explanation and {len(empty.explanation.suggestions)} suggestions: "
        f"median {explain_ms:.2f} ms (no target)"
    )

    loop_end = start + timedelta(days=5)
    loop_people = {e: person(rng, e, start, 5) for e in emails[:40]}
    sessions = tuple(
        LoopSession(
            timedelta(minutes=45 if i % 2 else 60),
            Panel(required=(emails[i],), pools=(Pool(f"s{i}", tuple(emails[8 + 8 * i : 16 + 8 * i]), 2),)),
            name=f"session {i + 1}",
        )
        for i in range(4)
    )
    loop_rules = LoopRules(
        interval=timedelta(minutes=15),
        time_zone=NEW_YORK,
        buffer_after=timedelta(minutes=5),
        max_gap=timedelta(minutes=60),
        max_per_day=3,
    )
    loops = find_loops(sessions, loop_people, start, loop_end, loop_rules)
    loop_ms = median_ms(lambda: find_loops(sessions, loop_people, start, loop_end, loop_rules), args.runs)
    print(
        f"find_loops 4 sessions, pools of 8, 5 days ({len(loops.loops)} loops): median {loop_ms:.2f} ms (target <= 50)"
    )
    return 0 if slots_ms <= 5 and loop_ms <= 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
