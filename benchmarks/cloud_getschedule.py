"""The local cloud's getSchedule: its own CPU per request, and whether concurrent requests overlap.

1. CPU: median ``time.thread_time`` of one ``POST /v1.0/me/calendar/getSchedule`` of 20 schedules
   over 14 days (about 16 items each), served in process by the cloud's ASGI app (routing,
   authentication, handler, JSON). Target: under 5 ms.
2. Overlap: against a running cloud (HTTPS on loopback, in a process of its own so that the client's
   CPU is not counted as the cloud's) with 100 ms added to every Graph request, the wall time of 4
   concurrent getSchedule calls (4 x 20 people, all against the caller's mailbox) divided by one
   alone. Target: close to 1.0.
3. The unit other benchmarks count in, "one Graph round trip": one such getSchedule measured alone with
   the same added latency (``devtools.cloud.graph.load.measure_round_trip``).

    .venv/bin/python benchmarks/cloud_getschedule.py [--runs 30] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.cloud import tokens  # noqa: E402
from devtools.cloud.app import build_app  # noqa: E402
from devtools.cloud.graph.load import get_schedule_body, measure_round_trip, seed_schedule_load  # noqa: E402
from devtools.cloud.graph.testing import SERVICE_CLIENT_ID  # noqa: E402
from devtools.cloud.seed import load_world  # noqa: E402
from devtools.cloud.server import settle_heap, start_cloud  # noqa: E402
from devtools.cloud.state import World  # noqa: E402

CPU_TARGET_MS = 5.0
RATIO_TARGET = 1.1
CALLER = "megan.bowen@contoso.example"


def _world() -> tuple[World, list[str], datetime]:
    world = load_world()
    monday = datetime(2030, 3, 4, tzinfo=UTC)
    people = seed_schedule_load(world, "contoso.example", count=80, monday=monday.date())
    return world, people, monday


def _token(world: World) -> str:
    """A delegated token of the caller (minted after the cloud knows its own address, if it runs)."""
    caller = world.find_user(world.tenant_by_id_or_domain("contoso.example").tenant_id, CALLER)  # type: ignore[union-attr]
    assert caller is not None
    token = tokens.issue_access_token(
        world, tenant_id=caller.tenant_id, client_id=SERVICE_CLIENT_ID, user_id=caller.id, scopes={"Calendars.Read"}
    )
    return token


async def _call_in_process(app: Any, body: bytes, token: str) -> tuple[int, bytes]:
    status = 0
    chunks: list[bytes] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/v1.0/me/calendar/getSchedule",
        "raw_path": b"/v1.0/me/calendar/getSchedule",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"graph.local"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("graph.local", 443),
    }
    await app(scope, receive, send)
    return status, b"".join(chunks)


def cpu_per_request(runs: int) -> tuple[float, int]:
    world, people, monday = _world()
    token = _token(world)
    app = build_app(world)
    body = json.dumps(get_schedule_body(people[:20], monday)).encode()

    async def run() -> tuple[list[float], int]:
        samples: list[float] = []
        size = 0
        for index in range(runs + 3):
            began = time.thread_time()
            status, payload = await _call_in_process(app, body, token)
            spent = time.thread_time() - began
            if status != 200:
                raise RuntimeError(f"getSchedule answered {status}: {payload[:300]!r}")
            size = len(payload)
            if index >= 3:  # the first calls warm caches
                samples.append(spent)
        return samples, size

    samples, size = asyncio.run(run())
    return statistics.median(samples) * 1000, size


def _serve(conn: Connection) -> None:
    """Child process: run the seeded cloud until told to stop (so its CPU is not the client's)."""
    world, people, monday = _world()
    cloud = start_cloud(world=world)
    settle_heap()
    try:
        conn.send((cloud.base_url, str(cloud.ca_bundle), _token(world), people, monday))
        conn.recv()
    finally:
        cloud.stop()


def overlap(latency: float, runs: int) -> tuple[float, float, float]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        base_url, verify, token, people, monday = parent.recv()
        unit = measure_round_trip(base_url, token, latency, schedules=people[:20], start=monday, verify=verify)
        bodies = [get_schedule_body(people[i * 20 : (i + 1) * 20], monday) for i in range(4)]
        headers = {"Authorization": f"Bearer {token}"}

        async def waves() -> list[float]:
            samples: list[float] = []
            limits = httpx.Limits(max_connections=8)
            async with httpx.AsyncClient(
                base_url=f"{base_url}/v1.0", verify=verify, limits=limits, timeout=30
            ) as client:
                await asyncio.gather(
                    *(client.post("/me/calendar/getSchedule", json=b, headers=headers) for b in bodies)
                )
                for _ in range(runs):
                    began = time.perf_counter()
                    answers = await asyncio.gather(
                        *(client.post("/me/calendar/getSchedule", json=b, headers=headers) for b in bodies)
                    )
                    samples.append(time.perf_counter() - began)
                    if any(a.status_code != 200 for a in answers):
                        raise RuntimeError(f"statuses {[a.status_code for a in answers]}")
            return samples

        four = statistics.median(asyncio.run(waves()))
        return unit, four, four / unit
    finally:
        parent.send("stop")
        server.join(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()

    cpu_ms, size = cpu_per_request(args.runs)
    print(
        f"getSchedule CPU, 20 schedules x 14 days: median {cpu_ms:.2f} ms (target < {CPU_TARGET_MS} ms; {size} bytes)"
    )
    unit, four, ratio = overlap(args.latency, max(5, args.runs // 3))
    ms = args.latency * 1000
    print(f"one Graph round trip (one getSchedule alone, {ms:.0f} ms added): median {unit * 1000:.1f} ms")
    print(f"4 concurrent getSchedule, {ms:.0f} ms added: median {four * 1000:.1f} ms")
    print(f"ratio 4 concurrent / one alone: {ratio:.2f} (target close to 1.0, at most {RATIO_TARGET})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
