"""Memory of one availability answer at its worst: the slot engine and the JSON slots it answers.

200 optional interviewers, free all day (no working hours), over 180 days on a 5-minute grid: 51,840
slot starts, each listing all 200 people. Printed: the tracemalloc peak of find_slots plus the JSON
of its slots (as the handler builds it), the body's size, and the slots built. Then the finest grid
the request contract allows (a 1-minute cell: interval 5, duration 31 minutes) over 6 months, and
a panel with no slot whose explanation re-runs the engine over the whole window.

    .venv/bin/python benchmarks/availability_memory.py [--max-slots 100]

On a checkout without pages (``find_slots`` has no ``limit``) every slot is built, as it was.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tracemalloc
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.models import BusyBlock, FreeBusyStatus, Schedule, WorkingHours  # noqa: E402
from shared.scheduling.slots import Panel, Person, SlotRules, find_slots  # noqa: E402

START = datetime(2030, 1, 7, tzinfo=UTC)
PAGES = "limit" in inspect.signature(find_slots).parameters


def people(count: int, days: int) -> dict[str, Person]:
    """A one-hour meeting every third day each, so the calendars are not empty."""
    out = {}
    for i in range(count):
        email = f"person{i:03d}@contoso.example"
        busy = tuple(
            BusyBlock(
                START + timedelta(days=d, hours=i % 24),
                START + timedelta(days=d, hours=i % 24 + 1),
                FreeBusyStatus.BUSY,
            )
            for d in range(i % 3, days, 3)
        )
        out[email] = Person(Schedule(email, busy=busy))
    return out


def measure(days: int, interval: int, duration: int, max_slots: int, *, explain: bool) -> tuple[float, int, int]:
    everyone = people(200, days)
    panel = Panel((), optional=tuple(everyone))
    if explain:  # one more, required, who never works: nothing fits until "book outside working hours"
        never = WorkingHours((), time(9), time(17), UTC, "UTC")
        everyone["never@contoso.example"] = Person(Schedule("never@contoso.example", working_hours=never))
        panel = Panel(("never@contoso.example",), optional=panel.optional)
    rules = SlotRules(
        duration=timedelta(minutes=duration),
        interval=timedelta(minutes=interval),
        time_zone=UTC,
        working_hours=explain,
    )
    end = START + timedelta(days=days)
    page: dict[str, Any] = {"limit": max_slots} if PAGES else {}
    tracemalloc.start()
    search = find_slots(panel, everyone, START, end, rules, **page)
    body = json.dumps(
        {
            "slots": [
                {"start": s.start.isoformat(), "end": s.end.isoformat(), "interviewers": list(s.interviewers)}
                for s in search.slots
            ]
        }
    ).encode()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, len(body), len(search.slots)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-slots", type=int, default=100)
    args = parser.parse_args()
    print(f"pages: {'yes, max_slots ' + str(args.max_slots) if PAGES else 'no (every slot is built)'}")
    for label, days, interval, duration, explain in (
        ("200 people x 180 days, 5-minute grid", 180, 5, 30, False),
        ("200 people x 184 days, 1-minute cells", 184, 5, 31, False),
        ("no slot, explanation over 180 days (5-minute grid)", 180, 5, 30, True),
    ):
        peak, size, slots = measure(days, interval, duration, args.max_slots, explain=explain)
        print(f"{label}: peak {peak:.1f} MiB, body {size / 2**20:.2f} MiB, {slots} slots built")


if __name__ == "__main__":
    main()
