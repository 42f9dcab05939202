"""One booking end to end: its median time and how many Graph requests it makes, next to their targets.

Starts Azurite, the local Microsoft cloud (in a process of its own, ``benchmarks/stack_support.py``) and
the app on loopback (nothing leaves the machine), has the Contoso admin consent and set the Interviews
mailbox and a recruiter sign in, then books ``--runs``
interviews one after another (each a new Idempotency-Key and slot) after one warm-up booking, so the
tokens come from the worker's memory as they do in a warm worker.

1. Graph requests per booking (counted at the service's HTTP client). Target: 2 (one getSchedule, one create).
2. With 100 ms added to every Graph request by the cloud, the median end-to-end time of one booking in
   Graph round trips, one round trip being ``devtools.cloud.graph.load.measure_round_trip`` (one
   getSchedule of 20 schedules over 14 days, alone, with the same latency). Target: at most 2.3.

    .venv/bin/python benchmarks/booking.py [--runs 15] [--latency 0.1] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack_support import benchmark_stack  # noqa: E402

REQUEST_TARGET = 2
ROUND_TRIP_TARGET = 2.3
INTERVIEWS = "interviews@contoso.example"


class GraphCounter:
    """Counts the requests the service's httpx clients send to Graph."""

    def __init__(self, graph_url: str) -> None:
        self.graph_url = graph_url
        self.calls = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        import httpx

        original = httpx.Client.send
        counter = self

        def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if str(request.url).startswith(counter.graph_url) and "/_control" not in str(request.url):
                with counter._lock:
                    counter.calls += 1
            return original(client, request, *args, **kwargs)

        httpx.Client.send = send  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop booking after this long")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 200 or not 0 <= args.latency <= 2:
        parser.error("--runs must be 1..200 and --latency 0..2")

    with benchmark_stack(people=20) as stack:
        counter = GraphCounter(stack.graph_url)
        counter.install()
        settings = stack.client.put(
            "/api/tenants/me/settings", headers=stack.admin_headers, json={"interviews_mailbox": INTERVIEWS}
        )
        settings.raise_for_status()
        day = (stack.monday + timedelta(days=30)).date()
        while day.weekday() != 2:
            day += timedelta(days=1)

        def body(index: int) -> dict[str, Any]:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                days=7 * (index // 8), hours=index % 8
            )
            return {
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=45)).isoformat(),
                "interviewers": ["alex.wilber@contoso.example"],
                "candidate": {"name": "Bench Candidate", "email": f"bench{index}@example.org"},
                "subject": f"Interview {index}",
                "calendar": "interviews",
            }

        deadline = time.monotonic() + args.max_seconds

        def book(index: int) -> tuple[float, int]:
            before = counter.calls
            began = time.perf_counter()
            response = stack.post(
                "/api/bookings", headers_extra={"Idempotency-Key": f"bench-{uuid.uuid4()}"}, json=body(index)
            )
            elapsed = time.perf_counter() - began
            if response.status_code != 201:
                raise SystemExit(f"booking {index} answered {response.status_code}: {response.text[:300]}")
            return elapsed, counter.calls - before

        book(0)  # warm: tokens, tables, connections
        plain = [book(i) for i in range(1, args.runs + 1) if time.monotonic() < deadline]
        stack.set_latency(args.latency)
        slow = [book(i) for i in range(100, 100 + args.runs) if time.monotonic() < deadline]
        unit = stack.round_trip(args.latency)

    requests = statistics.median(n for _, n in plain)
    slow_median = statistics.median(t for t, _ in slow)
    ms = args.latency * 1000
    print(f"bookings measured           : {len(plain)} without latency, {len(slow)} with {ms:.0f} ms")
    print(f"median time per booking     : {statistics.median(t for t, _ in plain) * 1000:.0f} ms (loopback)")
    print(f"Graph requests per booking  : {requests:.0f} (target {REQUEST_TARGET}: one getSchedule, one create)")
    print(f"one Graph round trip        : {unit * 1000:.0f} ms (getSchedule alone, {ms:.0f} ms added)")
    print(
        f"median booking, with latency: {slow_median * 1000:.0f} ms = {slow_median / unit:.2f} round trips "
        f"(target at most {ROUND_TRIP_TARGET})"
    )
    return 0 if requests <= REQUEST_TARGET and slow_median / unit <= ROUND_TRIP_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
