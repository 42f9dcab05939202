"""Load on the calendar guard: 2,000 calendar requests at 50 concurrent, on loopback only.

Starts Azurite, the local Microsoft cloud (access tokens living ``--token-lifetime`` seconds, 4 by default,
so that the recruiter's delegated token and the tenant's app-only token run out several times while the
load runs) and the app on the local host, in this process and on free loopback ports; an admin consents
and a recruiter signs in through the browser legs; then ``GET /api/me`` and a directory lookup (both behind
the two-token rule) alternate. Prints the count of non-2xx answers (target 0), requests per second,
p50/p99 latency, the storage round trips per warm calendar request (every Table Storage call is counted),
and the tokens the identity platform issued during the load: refresh-token redemptions (the user's) and
client-credentials grants (the app's), next to how often a token ran out meanwhile.
Bounded: it sends at most ``--requests`` requests and stops sending after ``--max-seconds``,
then stops everything it started.

    .venv/bin/python benchmarks/calendar_load.py [--requests 2000] [--concurrency 50]

``--app-root DIR`` loads the app (``function_app``, ``shared``, ``devtools``) from another checkout
of the project, to measure an earlier version with the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

TABLE_CALLS = (
    "get_entity",
    "create_entity",
    "update_entity",
    "upsert_entity",
    "delete_entity",
    "query_entities",
    "list_entities",
    "submit_transaction",
)
DIRECTORY_LOOKUP = "/api/directory/users/alex.wilber@contoso.example"


class StorageCounter:
    """Counts every call the app makes to Table Storage, by wrapping the SDK's table client."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        from azure.data.tables import TableClient

        for name in TABLE_CALLS:
            original = getattr(TableClient, name)

            def counted(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
                with self._lock:
                    self.calls += 1
                return __original(*args, **kwargs)

            setattr(TableClient, name, counted)


class GrantCounter:
    """Counts the tokens the local cloud issues, by grant type (its token endpoint, wrapped)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        from devtools.cloud.identity import Identity

        original = Identity._token
        counter = self

        def counted(identity: Any, request: Any, segment: str, form: dict[str, str]) -> Any:
            response = original(identity, request, segment, form)
            if response.status_code == 200:
                with counter._lock:
                    grant = form.get("grant_type", "")
                    counter.counts[grant] = counter.counts.get(grant, 0) + 1
            return response

        Identity._token = counted  # type: ignore[method-assign]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--token-lifetime", type=int, default=4, help="access token lifetime in seconds")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    parser.add_argument("--warm-sample", type=int, default=50, help="sequential warm requests to count storage calls")
    parser.add_argument("--app-root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    if not 0 < args.requests <= 20_000 or not 0 < args.concurrency <= 200:
        parser.error("--requests must be 1..20000 and --concurrency 1..200")

    root = args.app_root.resolve()
    sys.path.insert(0, str(root))
    here = Path(__file__).resolve().parents[1]
    if str(here) not in sys.path:
        sys.path.append(str(here))  # the test browser, when measuring another checkout

    import httpx

    from devtools.azurite import free_port, start_azurite
    from devtools.cloud import controls
    from devtools.cloud.server import start_cloud
    from devtools.stack import service_settings
    from tests.e2e.browser import Browser

    grants = GrantCounter()
    grants.install()
    work = Path(tempfile.mkdtemp(prefix="calendar-load-"))
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
            function_key="load-" + os.urandom(8).hex(),
            key_file=str(key_file),
        )
        os.environ.update(settings)
        os.environ["TABLE_PREFIX"] = "load" + os.urandom(4).hex()
        logging_quiet()

        import function_app
        from devtools.host.config import HostOptions
        from devtools.host.runner import start_host

        counter = StorageCounter()
        counter.install()
        # host.json's options, as the run command and `func start` read them (the queues' polling interval).
        host = start_host(function_app.app, settings=settings, port=port, options=HostOptions.load(root))
        controls.set_access_token_lifetime(cloud.world, args.token_lifetime)

        def browser() -> Browser:
            return Browser(base_url, ca_bundle=str(cloud.ca_bundle))

        controls.set_auto_sign_in(cloud.world, "adele.vance@contoso.example")
        consent_page = browser().navigate("/api/consent/start?tenant=contoso.example")
        assert consent_page.status_code == 200, consent_page.text[:300]
        controls.set_auto_sign_in(cloud.world, "megan.bowen@contoso.example")
        recruiter = browser()
        recruiter.navigate("/api/auth/login")
        credential = recruiter.service_cookie("ics_session")
        assert credential, "the recruiter did not get a session"
        headers = {"x-functions-key": settings["FUNCTION_KEY"], "authorization": f"Bearer {credential}"}
        paths = ["/api/me", DIRECTORY_LOOKUP]

        # Storage round trips of a warm calendar request: one of each, then a sequential sample.
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for path in paths:
                client.get(path, headers=headers).raise_for_status()
            before = counter.calls
            for i in range(args.warm_sample):
                client.get(paths[i % 2], headers=headers).raise_for_status()
            warm_trips = (counter.calls - before) / args.warm_sample

        latencies: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        deadline = time.monotonic() + args.max_seconds
        local = threading.local()

        def one(index: int) -> None:
            if time.monotonic() > deadline:
                return
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=base_url, timeout=60)
            started = time.perf_counter()
            try:
                status = client.get(paths[index % 2], headers=headers).status_code
            except httpx.HTTPError:
                status = 0  # a dropped connection counts as a failure
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

        granted = grants.snapshot()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - started
        issued = {k: v - granted.get(k, 0) for k, v in grants.snapshot().items()}
        sent = len(latencies)
        failures = sum(n for status, n in statuses.items() if not 200 <= status < 300)
        print(f"app                      : {root}")
        print(f"requests                 : {sent} at {args.concurrency} concurrent (GET /api/me, {DIRECTORY_LOOKUP})")
        print(f"access token lifetime    : {args.token_lifetime} s")
        print(f"non-2xx                  : {failures} (target 0) {dict(sorted(statuses.items()))}")
        print(f"requests per second      : {sent / wall:.1f}")
        print(
            f"latency p50 / p99        : {_percentile(latencies, 0.5) * 1000:.0f} ms / "
            f"{_percentile(latencies, 0.99) * 1000:.0f} ms (median {statistics.median(latencies) * 1000:.0f} ms)"
        )
        print(f"storage round trips/warm : {warm_trips:.2f} per calendar request (target at most 1)")
        from shared.adapters.identity import fresh_for

        handed = fresh_for(args.token_lifetime)
        print(
            f"token refreshes          : {issued.get('refresh_token', 0)} refresh-token redemptions (the recruiter's), "
            f"{issued.get('client_credentials', 0)} client-credentials grants (the app's) in {wall:.1f} s; "
            f"a token is handed out for {handed:.0f} s of its {args.token_lifetime} s, "
            f"so each kind ran out about {wall / handed:.0f} times"
        )
        return 0 if failures == 0 else 1
    finally:
        if host is not None:
            host.stop()
        cloud.stop()
        azurite.stop()


def logging_quiet() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    for name in ("azure", "httpx", "msal", "devtools", "shared", "functions", "uvicorn"):
        logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    raise SystemExit(main())
