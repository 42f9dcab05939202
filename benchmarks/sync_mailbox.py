"""What interviewers' own calendar traffic costs the sync: subscriptions held, notifications, Graph reads.

Starts Azurite, the local Microsoft cloud (in a process of its own, ``benchmarks/stack_support.py``, with 20
load users whose calendars hold about 16 meetings each) and the app with its queue worker on loopback
(nothing leaves the machine). The Contoso admin sets the Interviews and Sync mailboxes; a recruiter books 20
interviews: 10 in the Interviews mailbox and 10 organised by five interviewers in their own calendars (two
each), which subscribes those five mailboxes. Once the notifications of the bookings themselves are worked
off, the interviewers edit 100 of their own meetings that are none of our bookings (20 each, a new subject
through the cloud's control, as Outlook would). Printed: the subscriptions the service holds, the change
notifications the webhook received for those edits, the Graph requests the worker made for them, and the
Table Storage calls it made.

The same run is made twice, each in a fresh process and stack:

- ``before``: the worker's ``process_envelope`` (and ``describe``) of commit ``--before-commit`` (the version
  before this benchmark, read with ``git show``) replace the current ones in the running app: every
  notification is read from Graph before the booking is looked up.
- ``after``: the app as it is.

    .venv/bin/python benchmarks/sync_mailbox.py [--edits 100] [--before-commit 096fc2c] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import types
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack_support import ROOT, benchmark_stack  # noqa: E402

INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"
ORGANIZERS = 5
BOOKINGS_EACH = 2
INTERVIEWS_BOOKINGS = 10
TABLE_CALLS = ("get_entity", "upsert_entity", "update_entity", "delete_entity", "query_entities", "submit_transaction")


class Counters:
    """Graph requests (by the app's httpx clients), Table Storage calls, notifications received and worked."""

    def __init__(self, graph_url: str) -> None:
        self.graph_url = graph_url
        self.graph: list[str] = []
        self.tables = 0
        self.received = 0
        self.worked = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        import httpx
        from azure.data.tables import TableClient

        import shared.sync.intake as webhooks
        import shared.sync.worker as worker

        counters = self
        send = httpx.Client.send

        def counted_send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            url = str(request.url)
            response = send(client, request, *args, **kwargs)
            if url.startswith(counters.graph_url) and "/_control" not in url:
                path = url[len(counters.graph_url) :].split("?")[0]
                with counters._lock:
                    counters.graph.append(f"{request.method} {path} {response.status_code}")
            return response

        httpx.Client.send = counted_send  # type: ignore[method-assign]
        for name in TABLE_CALLS:
            original = getattr(TableClient, name)

            def counted(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
                with counters._lock:
                    counters.tables += 1
                return __original(*args, **kwargs)

            setattr(TableClient, name, counted)

        accept = webhooks.accept_notifications

        def counted_accept(deps: Any, body: dict[str, Any], *, lifecycle: bool) -> Any:
            result = accept(deps, body, lifecycle=lifecycle)
            if not lifecycle and isinstance(body.get("value"), list):
                with counters._lock:
                    counters.received += len(body["value"])
            return result

        webhooks.accept_notifications = counted_accept  # type: ignore[assignment]
        run = worker.run_message

        def counted_run(deps: Any, text: str, **kwargs: Any) -> Any:
            report = run(deps, text, **kwargs)
            items = len(webhooks.decode_message(text).items)
            with counters._lock:
                counters.worked += items
            return report

        worker.run_message = counted_run  # type: ignore[assignment]

    def snapshot(self) -> tuple[int, int, int, int]:
        with self._lock:
            return len(self.graph), self.tables, self.received, self.worked


def restore_old_worker(commit: str) -> None:
    """The worker's core as it was at ``commit``: its ``process_envelope`` (and ``describe``, for its report)
    replace the current ones."""
    import shared.sync.worker as worker

    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:shared/sync/worker.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    old = types.ModuleType("shared._notifications_before")
    sys.modules[old.__name__] = old  # dataclasses look their module up
    exec(compile(source, f"{commit}:shared/sync/worker.py", "exec"), old.__dict__)  # noqa: S102
    worker.process_envelope = old.process_envelope  # type: ignore[assignment]
    worker.describe = old.describe  # type: ignore[assignment]  # its report, as the worker logs it


def wait_quiet(counters: Counters, deadline: float, *, settle: float = 3.0) -> None:
    """Until every notification received was worked off and nothing moved for ``settle`` seconds."""
    last, since = counters.snapshot(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = counters.snapshot()
        if now != last:
            last, since = now, time.monotonic()
        elif now[3] >= now[2] and time.monotonic() - since >= settle:
            return
    raise SystemExit("the worker did not settle within --max-seconds")


def measure(mode: str, edits: int, commit: str, max_seconds: float) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + max_seconds
    with benchmark_stack(people=20) as stack:
        counters = Counters(stack.graph_url)
        counters.install()
        if mode == "before":
            restore_old_worker(commit)
        put = stack.client.put(
            "/api/tenants/me/settings",
            headers=stack.admin_headers,
            json={"interviews_mailbox": INTERVIEWS, "sync_mailbox": SYNC},
        )
        put.raise_for_status()
        organizers = stack.people[:ORGANIZERS]
        day = (stack.monday + timedelta(days=28)).date()
        booked: set[str] = set()

        def book(index: int, calendar: str, interviewer: str) -> None:
            start = datetime(day.year, day.month, day.day, 6, tzinfo=UTC) + timedelta(days=index // 6, hours=index % 6)
            response = stack.post(
                "/api/bookings",
                headers_extra={"Idempotency-Key": f"sync-{uuid.uuid4()}"},
                json={
                    "start": start.isoformat(),
                    "end": (start + timedelta(minutes=45)).isoformat(),
                    "interviewers": [interviewer],
                    "candidate": {"name": "Bench Candidate", "email": f"sync{index}@example.org"},
                    "subject": f"Interview {index}",
                    "calendar": calendar,
                    "check_availability": False,
                    "online_meeting": False,
                },
            )
            if response.status_code != 201:
                raise SystemExit(f"booking {index} answered {response.status_code}: {response.text[:300]}")
            booked.add(response.json()["event_id"])

        index = 0
        for organizer in organizers:
            for _ in range(BOOKINGS_EACH):
                book(index, organizer, organizer)
                index += 1
        for n in range(INTERVIEWS_BOOKINGS):
            book(index, "interviews", organizers[n % ORGANIZERS])
            index += 1
        health = stack.client.get("/api/subscriptions/health", headers=stack.admin_headers)
        health.raise_for_status()
        held = sorted(s["mailbox"] for s in health.json()["subscriptions"])
        wait_quiet(counters, deadline)

        control = httpx.Client(base_url=f"{stack.cloud_url}/_control/graph", verify=stack.ca_bundle, timeout=30)
        targets: list[str] = []
        per = edits // ORGANIZERS + (edits % ORGANIZERS > 0)
        for organizer in organizers:
            events = control.get(f"/mailboxes/{organizer}/events").json()["value"]
            theirs = [e["id"] for e in events if e["id"] not in booked]
            targets += [theirs[i % len(theirs)] for i in range(per)]
        targets = targets[:edits]
        graph0, tables0, received0, worked0 = counters.snapshot()
        for n, event_id in enumerate(targets):
            control.patch(f"/events/{event_id}", json={"subject": f"Edited in Outlook {n}"}).raise_for_status()
        wait_quiet(counters, deadline)
        graph1, tables1, received1, worked1 = counters.snapshot()
        control.close()
        reads = [r for r in counters.graph[graph0:graph1] if r.startswith("GET ") and "/events/" in r]
        return {
            "mode": mode,
            "bookings": len(booked),
            "subscriptions": held,
            "edits": len(targets),
            "notifications": received1 - received0,
            "worked": worked1 - worked0,
            "graph_requests": graph1 - graph0,
            "event_reads": len(reads),
            "event_read_answers": dict(Counter(r.rsplit(" ", 1)[1] for r in reads)),
            "table_calls": tables1 - tables0,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--before-commit", default="096fc2c")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--mode", choices=("before", "after"), help="one run only, as JSON (used by the two runs)")
    args = parser.parse_args(argv)
    if not 1 <= args.edits <= 1000:
        parser.error("--edits must be 1..1000")
    if args.mode:
        print(json.dumps(measure(args.mode, args.edits, args.before_commit, args.max_seconds)))
        return 0
    results = {}
    for mode in ("before", "after"):
        run = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--edits",
                str(args.edits),
                "--before-commit",
                args.before_commit,
                "--max-seconds",
                str(args.max_seconds),
            ],
            capture_output=True,
            text=True,
            timeout=args.max_seconds + 120,
        )
        if run.returncode != 0:
            raise SystemExit(f"the {mode} run failed:\n{run.stderr[-3000:]}")
        results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    first = results["after"]
    print(
        f"bookings                        : {first['bookings']} "
        f"(10 in {INTERVIEWS}, 10 in five interviewers' calendars)"
    )
    print(f"subscriptions held              : {len(first['subscriptions'])}: {', '.join(first['subscriptions'])}")
    print(f"unrelated edits                 : {first['edits']} in the five organizing interviewers' calendars")
    print(f"{'':32s}  {'before (' + args.before_commit + ')':>18s}  {'after':>8s}")
    for key, label in (
        ("notifications", "notifications received"),
        ("worked", "notifications worked"),
        ("event_reads", "Graph event reads"),
        ("graph_requests", "Graph requests, all"),
        ("table_calls", "Table Storage calls"),
    ):
        print(f"{label:32s}: {results['before'][key]:>18d}  {results['after'][key]:>8d}")
    return 0 if results["after"]["event_reads"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
