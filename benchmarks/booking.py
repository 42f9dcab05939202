"""One booking end to end: its median time and how many Graph requests it makes, next to their targets.

Starts Azurite, the local Microsoft cloud and the app on loopback (nothing leaves the machine), has the
Contoso admin consent and a recruiter sign in and set the Interviews mailbox, then books ``--runs``
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
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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

    import httpx

    from devtools.azurite import free_port, start_azurite
    from devtools.cloud import controls, tokens
    from devtools.cloud.graph import controls as graph_controls
    from devtools.cloud.graph.load import measure_round_trip, seed_schedule_load
    from devtools.cloud.graph.testing import SERVICE_CLIENT_ID
    from devtools.cloud.server import start_cloud
    from devtools.stack import service_settings
    from tests.e2e.browser import Browser

    work = Path(tempfile.mkdtemp(prefix="booking-bench-"))
    azurite = start_azurite(
        blob_port=free_port(), queue_port=free_port(), table_port=free_port(), data_dir=str(work / "azurite")
    )
    cloud = start_cloud(data_dir=work / "cloud")
    host = None
    try:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        key_file = work / "keys" / "token-keys.json"
        key_file.parent.mkdir(mode=0o700)
        settings = service_settings(
            authority_host=cloud.authority_host,
            graph_url=cloud.graph_url,
            ca_bundle=str(cloud.ca_bundle),
            storage=azurite.connection_string,
            public_base_url=base_url,
            function_key="bench-" + os.urandom(8).hex(),
            key_file=str(key_file),
        )
        os.environ.update(settings)
        os.environ["TABLE_PREFIX"] = "bench" + os.urandom(4).hex()
        _quiet()

        import function_app
        from devtools.host.runner import start_host

        counter = GraphCounter(cloud.graph_url)
        counter.install()
        host = start_host(function_app.app, settings=settings, port=port)

        def browser() -> Browser:
            return Browser(base_url, ca_bundle=str(cloud.ca_bundle))

        key = {"x-functions-key": settings["FUNCTION_KEY"]}
        controls.set_auto_sign_in(cloud.world, "adele.vance@contoso.example")
        admin = browser()
        assert admin.navigate("/api/consent/start?tenant=contoso.example").status_code == 200
        admin.navigate("/api/auth/login")
        admin.request("PUT", "/api/tenants/me/settings", headers=key, json={"interviews_mailbox": INTERVIEWS})
        controls.set_auto_sign_in(cloud.world, "megan.bowen@contoso.example")
        recruiter = browser()
        recruiter.navigate("/api/auth/login")
        credential = recruiter.service_cookie("ics_session")
        headers = {**key, "authorization": f"Bearer {credential}"}

        day = datetime.now(UTC).date() + timedelta(days=60)
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
        with httpx.Client(base_url=base_url, timeout=60) as client:

            def book(index: int) -> tuple[float, int]:
                before = counter.calls
                began = time.perf_counter()
                response = client.post(
                    "/api/bookings", headers={**headers, "Idempotency-Key": f"bench-{uuid.uuid4()}"}, json=body(index)
                )
                elapsed = time.perf_counter() - began
                if response.status_code != 201:
                    raise SystemExit(f"booking {index} answered {response.status_code}: {response.text[:300]}")
                return elapsed, counter.calls - before

            book(0)  # warm: tokens, tables, connections
            plain = [book(i) for i in range(1, args.runs + 1) if time.monotonic() < deadline]
            graph_controls.set_latency(cloud.world, args.latency)
            slow = [book(i) for i in range(100, 100 + args.runs) if time.monotonic() < deadline]

        tenant = cloud.world.tenant_by_id_or_domain("contoso.example")
        people = seed_schedule_load(cloud.world, "contoso.example", count=20, monday=day - timedelta(days=2))
        caller = cloud.world.find_user(tenant.tenant_id, "megan.bowen@contoso.example")
        token = tokens.issue_access_token(
            cloud.world,
            tenant_id=tenant.tenant_id,
            client_id=SERVICE_CLIENT_ID,
            user_id=caller.id,
            scopes={"Calendars.Read"},
        )
        unit = measure_round_trip(
            cloud.base_url,
            token,
            args.latency,
            schedules=people,
            start=datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=2),
            verify=str(cloud.ca_bundle),
        )
        requests = statistics.median(n for _, n in plain)
        slow_median = statistics.median(t for t, _ in slow)
        print(
            f"bookings measured          : {len(plain)} without latency, {len(slow)} with {args.latency * 1000:.0f} ms"
        )
        print(f"median time per booking    : {statistics.median(t for t, _ in plain) * 1000:.0f} ms (loopback)")
        print(f"Graph requests per booking : {requests:.0f} (target {REQUEST_TARGET}: one getSchedule, one create)")
        print(
            f"one Graph round trip       : {unit * 1000:.0f} ms (getSchedule alone, {args.latency * 1000:.0f} ms added)"
        )
        print(
            f"median booking, with latency: {slow_median * 1000:.0f} ms = {slow_median / unit:.2f} round trips "
            f"(target at most {ROUND_TRIP_TARGET})"
        )
        return 0 if requests <= REQUEST_TARGET and slow_median / unit <= ROUND_TRIP_TARGET else 1
    finally:
        if host is not None:
            host.stop()
        cloud.stop()
        azurite.stop()


def _quiet() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    for name in ("azure", "httpx", "msal", "devtools", "shared", "functions", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)


if __name__ == "__main__":
    raise SystemExit(main())
