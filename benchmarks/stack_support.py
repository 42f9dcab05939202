"""The local stack for benchmarks: a seeded local cloud in a process of its own, Azurite, and the app.

The cloud runs in a child process so that its CPU is not the app's (the app and the benchmark client
share this process, as a Functions worker would share its machine with nothing else). The child seeds
``people`` load users (about 16 calendar items each over 14 days, ``devtools.cloud.graph.load``) and
hands back its URLs and a delegated token of the recruiter for measuring one Graph round trip.
Everything listens on free loopback ports and stops when the context ends.

    with benchmark_stack(people=200) as stack:
        stack.post("/api/availability", json={...})
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ADMIN = "adele.vance@contoso.example"
RECRUITER = "megan.bowen@contoso.example"
ROUND_TRIP_LATENCY = 0.1


def next_monday() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=7 - today.weekday() + 7)  # the Monday after next: nothing of today's clock


@dataclass
class BenchmarkStack:
    base_url: str
    cloud_url: str
    ca_bundle: str
    graph_token: str  # the recruiter's delegated token, straight from the cloud (for the round-trip unit)
    people: list[str]
    monday: datetime
    headers: dict[str, str]  # the recruiter's: function key and session
    admin_headers: dict[str, str]  # the tenant admin's (Adele): function key and session
    graph_url: str
    client: Any  # httpx.Client on the app
    settings: dict[str, str]  # the app's settings (a second host of the same app uses them too)

    def post(self, path: str, *, headers_extra: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """POST as the recruiter."""
        return self.client.post(path, headers={**self.headers, **(headers_extra or {})}, **kwargs)

    def control(self, path: str, body: dict[str, Any]) -> None:
        import httpx

        httpx.post(f"{self.cloud_url}/_control/{path}", json=body, verify=self.ca_bundle, timeout=30).raise_for_status()

    def graph_counts(self) -> dict[str, float]:
        """Graph requests the cloud answered so far, the 429s among them, and the seconds mailbox
        slots were held."""
        import httpx

        response = httpx.get(f"{self.cloud_url}/_control/graph/counts", verify=self.ca_bundle, timeout=30)
        response.raise_for_status()
        return {key: float(value) for key, value in response.json().items()}

    def set_latency(self, seconds: float) -> None:
        self.control("graph/switches/latency", {"seconds": seconds})

    def round_trip(self, latency: float = ROUND_TRIP_LATENCY) -> float:
        """One Graph round trip: one getSchedule of 20 people over 14 days, alone, ``latency`` added."""
        from devtools.cloud.graph.load import measure_round_trip

        return measure_round_trip(
            self.cloud_url,
            self.graph_token,
            latency,
            schedules=self.people[:20],
            start=self.monday,
            verify=self.ca_bundle,
        )


def _serve_cloud(conn: Connection, count: int, monday: datetime) -> None:
    """Child process: a seeded cloud, until told to stop."""
    from devtools.cloud import tokens
    from devtools.cloud.graph.load import seed_schedule_load
    from devtools.cloud.graph.testing import SERVICE_CLIENT_ID
    from devtools.cloud.seed import load_world
    from devtools.cloud.server import settle_heap, start_cloud

    logging.basicConfig(level=logging.ERROR)
    world = load_world()
    people = seed_schedule_load(world, "contoso.example", count=count, monday=monday.date())
    cloud = start_cloud(world=world)
    settle_heap()  # a process of its own, as the run command's cloud is
    try:
        tenant = world.tenant_by_id_or_domain("contoso.example")
        assert tenant is not None
        caller = world.find_user(tenant.tenant_id, RECRUITER)
        assert caller is not None
        token = tokens.issue_access_token(
            world, tenant_id=caller.tenant_id, client_id=SERVICE_CLIENT_ID, user_id=caller.id, scopes={"Calendars.Read"}
        )
        conn.send((cloud.base_url, cloud.authority_host, cloud.graph_url, str(cloud.ca_bundle), token, people))
        conn.recv()
    finally:
        cloud.stop()


def start_app_host(settings: dict[str, str], port: int) -> Any:
    """The app on the local functions host with host.json's options, as the run command and `func start`
    read them (the queues' polling interval among them)."""
    import function_app
    from devtools.host.config import HostOptions
    from devtools.host.runner import start_host

    return start_host(function_app.app, settings=settings, port=port, options=HostOptions.load(ROOT))


def _serve_host(conn: Connection, settings: dict[str, str], port: int) -> None:
    """Child process: one more worker of the same app (its own memory, its own Graph limiter)."""
    os.environ.update(settings)
    quiet_logging()
    host = start_app_host(settings, port)
    try:
        conn.send(f"http://127.0.0.1:{port}")
        conn.recv()
    finally:
        host.stop()


@contextmanager
def second_host(stack: BenchmarkStack) -> Iterator[str]:
    """Another local host of the app in a process of its own, over the same storage and cloud (as a
    second instance of a Functions app is); yields its base URL. Sessions work on both."""
    from devtools.azurite import free_port

    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_host, args=(child, stack.settings, free_port()), daemon=True
    )
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(timeout=15)


def quiet_logging() -> None:
    logging.basicConfig(level=logging.WARNING)
    for name in ("azure", "httpx", "msal", "devtools", "shared", "functions", "uvicorn"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def benchmark_stack(*, people: int = 200, busy_cache: bool = False) -> Iterator[BenchmarkStack]:
    """Cloud (child process, ``people`` load users), Azurite and the app; an admin consented and the
    recruiter signed in through the browser legs. The warm busy cache is off unless ``busy_cache``: the
    other benchmarks measure the live path to Graph, which a cache warming itself in the same process (a
    subscription and a full sync for everyone asked about) would both bypass and slow down."""
    import httpx

    from devtools.azurite import free_port, start_azurite
    from devtools.stack import service_settings
    from tests.e2e.browser import Browser

    quiet_logging()
    monday = next_monday()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve_cloud, args=(child, people, monday), daemon=True
    )
    server.start()
    work = Path(tempfile.mkdtemp(prefix="benchmark-stack-"))
    azurite = None
    host = None
    try:
        cloud_url, authority_host, graph_url, ca_bundle, token, addresses = parent.recv()
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            os.environ[name] = ca_bundle
        azurite = start_azurite(
            blob_port=free_port(), queue_port=free_port(), table_port=free_port(), data_dir=str(work / "azurite")
        )
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        key_file = work / "keys" / "token-keys.json"
        key_file.parent.mkdir(mode=0o700)
        settings = service_settings(
            authority_host=authority_host,
            graph_url=graph_url,
            ca_bundle=ca_bundle,
            storage=azurite.connection_string,
            public_base_url=base_url,
            function_key="bench-" + os.urandom(8).hex(),
            key_file=str(key_file),
        )
        settings["BUSY_CACHE_ENABLED"] = "true" if busy_cache else "false"
        os.environ.update(settings)
        os.environ["TABLE_PREFIX"] = "bench" + os.urandom(4).hex()

        host = start_app_host(settings, port)

        def control(path: str, body: dict[str, Any]) -> None:
            httpx.put(f"{cloud_url}/_control/{path}", json=body, verify=ca_bundle, timeout=30).raise_for_status()

        control("auto-sign-in", {"user": ADMIN})
        admin = Browser(base_url, ca_bundle=ca_bundle)
        page = admin.navigate("/api/consent/start?tenant=contoso.example")
        if page.status_code != 200:
            raise RuntimeError(f"consent failed: {page.status_code} {page.text[:300]}")

        def session_headers(browser: Browser, who: str) -> dict[str, str]:
            browser.navigate("/api/auth/login")
            credential = browser.service_cookie("ics_session")
            if not credential:
                raise RuntimeError(f"{who} did not get a session")
            return {"x-functions-key": settings["FUNCTION_KEY"], "authorization": f"Bearer {credential}"}

        admin_headers = session_headers(admin, ADMIN)
        control("auto-sign-in", {"user": RECRUITER})
        headers = session_headers(Browser(base_url, ca_bundle=ca_bundle), RECRUITER)
        with httpx.Client(base_url=base_url, timeout=120) as client:
            yield BenchmarkStack(
                base_url=base_url,
                cloud_url=cloud_url,
                ca_bundle=ca_bundle,
                graph_token=token,
                people=addresses,
                monday=monday,
                headers=headers,
                admin_headers=admin_headers,
                graph_url=graph_url,
                client=client,
                settings={**settings, "TABLE_PREFIX": os.environ["TABLE_PREFIX"]},
            )
    finally:
        if host is not None:
            host.stop()
        if azurite is not None:
            azurite.stop()
        parent.send("stop")
        server.join(timeout=15)
