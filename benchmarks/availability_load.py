"""Availability under concurrent load: K queries of 100 interviewers at once, in Graph round trips.

Every getSchedule counts against the caller's own mailbox, and Outlook allows four concurrent requests
per app and mailbox. One query of 100 people is 5 getSchedule calls, so the physical bound for one
recruiter is 4 calls per round trip: 0.8 answers per round trip, twice that for two recruiters. The
worker's one limiter per mailbox keeps every query inside that window, so throughput should stay at
the bound as load grows and Graph should answer no 429.

Targets (one worker): for one recruiter at K = 8, at least 80% of the bound in answers per second and
every answer within ceil(5K/4) + 1 round trips; for two recruiters, twice the answers per second (each
answer within ceil(5(K/2)/4) + 1); no answer with anyone unreadable; no 429 from Graph.
``--workers 2`` runs a second local host in a process of its own over the same cloud: two limiters
that cannot see each other, so 429 + Retry-After is the backstop there; it must still leave nobody
unreadable, every answer within the availability deadline.

The stack is ``benchmarks/stack_support.py`` (200 load users, 100 ms added to every Graph request).
The app runs in this process and the scheduling app's client in a process of its own: ``CPU/answer`` is
the app's CPU time per answer (this process), so a machine too busy to give it that much CPU shows up as a
shortfall against the bound, not as 429s.
``slots busy`` is how much of the recruiters' mailbox slots (4 each) Graph held over the row, as the
cloud counts it: the share of the bound the limiter could use; the rest went to time outside Graph.

``--rows two:8 --rounds 30`` runs one row many times over and prints the distribution of a round's slowest
answer (its median and 90th percentile): the ``slowest`` column is the worst of ``--rounds`` rounds.

    .venv/bin/python benchmarks/availability_load.py [--rounds 3] [--workers 1|2] [--rows one:8,two:8]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack_support import BenchmarkStack, benchmark_stack, second_host  # noqa: E402

PEOPLE = 100
PER_REQUEST = 20
IN_FLIGHT = 4  # Outlook: four concurrent requests per app and mailbox
CALLS = math.ceil(PEOPLE / PER_REQUEST)  # getSchedule calls per query
LATENCY = 0.1
SHARE = 0.8  # of the bound, in answers per second
LOADS = (1, 2, 4, 8)


@dataclass
class Row:
    who: str
    k: int
    median_rt: float
    slowest_rt: float
    per_second: float
    bound_per_second: float
    slowest_allowed_rt: int
    throttled: int
    unreadable: int
    slowest_seconds: float
    cpu_per_answer: float  # this process's CPU (the app and the client) per answer, in seconds
    occupancy: float  # of the recruiters' mailbox slots (4 each), the share Graph held busy
    round_slowest_rt: list[float]  # each round's slowest answer


def _body(stack: BenchmarkStack, index: int) -> dict[str, Any]:
    # Each query its own 100 of the 200 load people (load people cycle through four zones: the two
    # required interviewers share one).
    offset = (index * PER_REQUEST) % len(stack.people)
    people = (stack.people[offset:] + stack.people[:offset])[:PEOPLE]
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


class LoadClient:
    """The scheduling app: a process of its own that sends each round's queries at once and times them, so
    that the worker process (this one, which runs the local host) spends its CPU on serving only, as a
    Functions worker does. ``urls`` are the hosts' base URLs; a query goes to ``urls[i % len(urls)]``."""

    def __init__(self, urls: list[str]) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve_load, args=(child, urls), daemon=True
        )
        self._process.start()

    def round(self, jobs: list[tuple[int, dict[str, str], dict[str, Any]]]) -> tuple[list[float], float, int]:
        """Each query's time, the round's wall time, and how many people came back unreadable."""
        self._conn.send(jobs)
        answer = self._conn.recv()
        if isinstance(answer, str):
            raise RuntimeError(answer)
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=15)


def _serve_load(conn: Any, urls: list[str]) -> None:
    import httpx

    clients = [httpx.Client(base_url=url, timeout=120) for url in urls]

    def one(host: int, headers: dict[str, str], body: dict[str, Any]) -> tuple[float, int]:
        began = time.perf_counter()
        response = clients[host].post("/api/availability", json=body, headers=headers)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"availability answered {response.status_code}: {response.text[:300]}")
        unreadable = sum(1 for p in orjson.loads(response.content)["interviewers"] if p["status"] != "ok")
        return elapsed, unreadable

    while (jobs := conn.recv()) is not None:
        try:
            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                results = list(pool.map(lambda job: one(*job), jobs))
            wall = time.perf_counter() - began
            conn.send(([r[0] for r in results], wall, sum(r[1] for r in results)))
        except Exception as err:  # noqa: BLE001 (handed to the parent, which raises it)
            conn.send(f"{type(err).__name__}: {err}")


def _round(
    stack: BenchmarkStack, client: LoadClient, hosts: int, recruiters: list[dict[str, str]], k: int
) -> tuple[list[float], float, int]:
    """K queries at once, spread over the recruiters and the hosts; each query's time, the round's wall time."""
    return client.round([(i % hosts, recruiters[i % len(recruiters)], _body(stack, i)) for i in range(k)])


def _measure(
    stack: BenchmarkStack,
    client: LoadClient,
    hosts: int,
    recruiters: list[dict[str, str]],
    k: int,
    rounds: int,
    unit: float,
) -> Row:
    _round(stack, client, hosts, recruiters, k)  # warm: connections, the workers' caches
    before = stack.graph_counts()
    cpu_before = time.process_time()
    times: list[float] = []
    round_slowest: list[float] = []
    walls = 0.0
    unreadable = 0
    for _ in range(rounds):
        elapsed, wall, missing = _round(stack, client, hosts, recruiters, k)
        times += elapsed
        round_slowest.append(max(elapsed) / unit)
        walls += wall
        unreadable += missing
    cpu = time.process_time() - cpu_before
    after = stack.graph_counts()
    per_recruiter = math.ceil(k / len(recruiters))
    return Row(
        who="one recruiter" if len(recruiters) == 1 else "two recruiters",
        k=k,
        median_rt=statistics.median(times) / unit,
        slowest_rt=max(times) / unit,
        per_second=k * rounds / walls,
        bound_per_second=len(recruiters) * IN_FLIGHT / CALLS / unit,
        slowest_allowed_rt=math.ceil(CALLS * per_recruiter / IN_FLIGHT) + 1,
        throttled=int(after["throttled"] - before["throttled"]),
        unreadable=unreadable,
        slowest_seconds=max(times),
        cpu_per_answer=cpu / (k * rounds),
        occupancy=(after["slot_seconds"] - before["slot_seconds"]) / walls / (IN_FLIGHT * len(recruiters)),
        round_slowest_rt=round_slowest,
    )


def _rows(text: str) -> list[tuple[int, int]]:
    """``one:1,two:8`` -> [(1, 1), (2, 8)]: (recruiters, K)."""
    rows = []
    for item in text.split(","):
        who, _, k = item.strip().partition(":")
        if who not in {"one", "two"} or not k.isdigit() or int(k) not in LOADS or (who == "two" and int(k) < 2):
            raise argparse.ArgumentTypeError(f"{item!r}: expected one:K or two:K with K in {LOADS} (two: K >= 2)")
        rows.append((1 if who == "one" else 2, int(k)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of K concurrent queries per row")
    parser.add_argument("--workers", type=int, default=1, choices=(1, 2), help="local hosts (worker processes)")
    parser.add_argument(
        "--rows",
        type=_rows,
        default=[(n, k) for n in (1, 2) for k in LOADS if k >= n],
        help="which rows, as one:K or two:K separated by commas (default: every row)",
    )
    parser.add_argument(
        "--first-reads",
        action="store_true",
        help="parse every getSchedule answer anew, as the first read of every calendar would be (by default "
        "an answer the worker has read before gives the schedule it parsed then: the rounds repeat panels)",
    )
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be 1..100")
    if args.first_reads:
        from shared.adapters.graph_schedules import ScheduleReader, parse_schedule

        ScheduleReader.read_answer = ScheduleReader.parse_answer  # type: ignore[method-assign]
        ScheduleReader.read = lambda self, email, raw: parse_schedule(email, raw)  # type: ignore[method-assign]
    failed = False
    with benchmark_stack(people=200) as stack, contextlib.ExitStack() as hosts:
        urls = [stack.base_url]
        if args.workers == 2:
            urls.append(hosts.enter_context(second_host(stack)))
        client = LoadClient(urls)
        hosts.callback(client.close)
        unit = stack.round_trip(LATENCY)
        deadline = float(stack.settings.get("AVAILABILITY_DEADLINE_SECONDS", "20"))
        stack.set_latency(LATENCY)
        print(
            f"one Graph round trip (getSchedule of 20 x 14 days alone, {LATENCY * 1000:.0f} ms added): "
            f"{unit * 1000:.1f} ms; {args.workers} worker process(es); {args.rounds} round(s) per row; "
            f"{PEOPLE} interviewers x 14 days per query; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores; "
            + ("every answer parsed anew" if args.first_reads else "answers read before reused")
        )
        print(
            f"{'who':<15} {'K':>2} {'median':>8} {'slowest':>8} {'allowed':>8} {'answers/s':>9} "
            f"{'bound/s':>8} {'of bound':>8} {'429s':>5} {'unreadable':>10} {'CPU/answer':>10} {'slots busy':>10}"
        )
        for count, k in args.rows:
            recruiters = [stack.headers, stack.admin_headers][:count]
            row = _measure(stack, client, len(urls), recruiters, k, args.rounds, unit)
            share = row.per_second / row.bound_per_second
            print(
                f"{row.who:<15} {row.k:>2} {row.median_rt:>5.1f} RT {row.slowest_rt:>5.1f} RT "
                f"{row.slowest_allowed_rt:>5d} RT {row.per_second:>9.2f} {row.bound_per_second:>8.2f} "
                f"{share:>7.0%} {row.throttled:>5d} {row.unreadable:>10d} "
                f"{row.cpu_per_answer * 1000:>7.0f} ms {row.occupancy:>10.0%}"
            )
            if args.rounds >= 10:
                ordered = sorted(row.round_slowest_rt)
                print(
                    f"{'':<15} {'':>2} each round's slowest: median {statistics.median(ordered):.2f} RT, "
                    f"90th percentile {ordered[math.ceil(0.9 * len(ordered)) - 1]:.2f} RT over {len(ordered)} rounds"
                )
            failed |= row.unreadable > 0
            if args.workers == 1:
                failed |= row.throttled > 0
                if row.k == 8:
                    failed |= share < SHARE or row.slowest_rt > row.slowest_allowed_rt
            else:
                failed |= row.slowest_seconds > deadline
    verdict = "MISSED" if failed else "ok"
    if args.workers == 1:
        print(
            f"targets at K = 8: at least {SHARE:.0%} of the bound, every answer within the allowed round trips; "
            f"0 unreadable; 0 429s: {verdict}"
        )
    else:
        print(f"targets with two workers: 0 unreadable, every answer within the {deadline:.0f} s deadline: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
