"""End-to-end availability: ``POST /api/availability`` through the local host, in Graph round trips.

1. 80 and 100 interviewers over 14 days with 100 ms added to every Graph request by the local cloud:
   the median end-to-end time in units of one Graph round trip (one getSchedule of 20 people over 14
   days sent alone with the same added latency). The floor is one round trip per wave of 4 concurrent
   getSchedule calls (80 people: 1 wave; 100 people: 2 waves). Target: at most waves + 0.3.
2. Growth: the median end to end for 20, 80 and 200 interviewers with no added latency, and the ratios.

The cloud runs in a process of its own (``benchmarks/stack_support.py``); everything is on loopback
and stops by itself.

    .venv/bin/python benchmarks/availability.py [--runs 9]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack_support import BenchmarkStack, benchmark_stack  # noqa: E402

PER_REQUEST = 20
IN_FLIGHT = 4
MARGIN = 0.3


def _body(stack: BenchmarkStack, count: int) -> dict[str, Any]:
    people = stack.people[:count]
    # Two required interviewers in one zone (load people cycle through four zones) and a pool for the rest.
    required = [people[0], people[4]]
    pool = [p for p in people if p not in required]
    return {
        "interviewers": [{"email": p, "required": True} for p in required],
        "pools": [{"name": "panel", "members": pool, "need": 2}],
        "start": stack.monday.isoformat(),
        "end": (stack.monday + timedelta(days=14)).isoformat(),
        "duration_minutes": 60,
        "interval_minutes": 15,
        "time_zone": "America/New_York",
    }


def _median_seconds(stack: BenchmarkStack, count: int, runs: int) -> tuple[float, int]:
    body = _body(stack, count)
    samples: list[float] = []
    slots = 0
    for index in range(runs + 1):
        began = time.perf_counter()
        response = stack.post("/api/availability", json=body)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"availability answered {response.status_code}: {response.text[:300]}")
        answer = response.json()
        unreadable = [p["email"] for p in answer["interviewers"] if p["status"] != "ok"]
        if unreadable:
            raise RuntimeError(f"{len(unreadable)} people unreadable: {unreadable[:3]}")
        slots = len(answer["slots"])
        if index:  # the first call warms connections and the worker's caches
            samples.append(elapsed)
    return statistics.median(samples), slots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be 1..100")
    failed = False
    with benchmark_stack(people=200) as stack:
        unit = stack.round_trip(0.1)
        print(f"one Graph round trip (getSchedule of 20 x 14 days alone, 100 ms added): median {unit * 1000:.1f} ms")
        for count in (80, 100):
            waves = math.ceil(math.ceil(count / PER_REQUEST) / IN_FLIGHT)
            seconds, slots = _median_seconds(stack, count, args.runs)
            ratio = seconds / unit
            ok = ratio <= waves + MARGIN
            failed |= not ok
            print(
                f"{count:3d} interviewers x 14 days, 100 ms added: median {seconds * 1000:.1f} ms = "
                f"{ratio:.2f} round trips (target at most {waves} wave(s) + {MARGIN} = {waves + MARGIN:.1f}; "
                f"{slots} slots) {'ok' if ok else 'MISSED'}"
            )
        stack.set_latency(0.0)
        medians: dict[int, float] = {}
        for count in (20, 80, 200):
            medians[count], slots = _median_seconds(stack, count, args.runs)
            ms = medians[count] * 1000
            print(f"{count:3d} interviewers x 14 days, no added latency: median {ms:.1f} ms ({slots} slots)")
        growth = [medians[80] / medians[20], medians[200] / medians[20], medians[200] / medians[80]]
        print("growth: 80/20 = {:.2f}, 200/20 = {:.2f}, 200/80 = {:.2f} (people grow 4x, 10x, 2.5x)".format(*growth))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
