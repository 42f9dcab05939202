"""Load on the webhook intake: 2,000 notification POSTs of 10 notifications each at 50 concurrent, loopback only.

Starts the local stack like ``benchmarks/calendar_load.py`` (``stack_support.benchmark_stack``: a seeded
local cloud in a child process, Azurite, the app on the local host, all on free loopback ports); an admin
sets the Interviews and Sync mailboxes, which subscribes both for real (Graph's validation handshake
included). The clientState the app hands Graph is recorded on its way out, so the load carries valid
subscription ids and clientStates, as Graph's own POSTs would. The intake writes to a queue of its own for
this run (``NOTIFICATION_QUEUE`` in the app's environment; the host's worker polls the usual one), so what
the intake queued can be counted afterwards: every message is read back and its notifications counted.

Prints p50 and p99 acknowledgement time (target p99 < 250 ms), requests per second, the count
acknowledged (202) and the count queued (target: equal), next to the targets. Bounded: at most
``--requests`` POSTs, none sent after ``--max-seconds``; then it stops everything it started.

    .venv/bin/python benchmarks/webhook_load.py [--requests 2000] [--concurrency 50] [--per-request 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"
P99_TARGET_MS = 250.0
JSON = {"Content-Type": "application/json"}


class RecordingGraph:
    """The app's Graph client, remembering the clientState of each subscription it creates."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.client_states: dict[str, str] = {}

    def create_subscription(self, token: Any, **kwargs: Any) -> Any:
        created = self._inner.create_subscription(token, **kwargs)
        self.client_states[created.subscription_id] = kwargs["client_state"]
        return created

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _count_queued(connection: str, queue_name: str) -> tuple[int, int]:
    """(messages, notifications) on the queue, read back message by message (and deleted)."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    messages = notifications = 0
    with QueueClient.from_connection_string(
        connection, queue_name, message_decode_policy=TextBase64DecodePolicy()
    ) as queue:
        while True:
            batch = list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=300))
            if not batch:
                return messages, notifications
            for message in batch:
                messages += 1
                notifications += len(json.loads(message.content)["n"])
                queue.delete_message(message)


def _body(subscriptions: list[tuple[str, str]], index: int, per_request: int) -> bytes:
    sub_id, state = subscriptions[index % len(subscriptions)]
    return json.dumps(
        {
            "value": [
                {
                    "subscriptionId": sub_id,
                    "clientState": state,
                    "changeType": "updated",
                    "resource": f"Users/{INTERVIEWS}/Events/AAMkBench{index}x{n}",
                    "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": f"AAMkBench{index}x{n}"},
                    "tenantId": "ignored",
                }
                for n in range(per_request)
            ]
        }
    ).encode()


def _send_load(
    conn: Connection,
    url: str,
    subscriptions: list[tuple[str, str]],
    requests: int,
    concurrency: int,
    per_request: int,
    max_seconds: float,
) -> None:
    """Child process: ``requests`` POSTs over ``concurrency`` keep-alive connections; sends back latencies,
    statuses and the wall time. A small HTTP/1.1 client of its own (like wrk): a general-purpose client
    would spend more CPU than the service it measures, on the same two cores."""
    import asyncio
    from urllib.parse import urlsplit

    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80

    def request_bytes(index: int) -> bytes:
        body = _body(subscriptions, index, per_request)
        head = (
            f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("ascii") + body

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        return status

    async def run() -> tuple[list[float], dict[int, int], float]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        deadline = time.monotonic() + max_seconds
        next_index = iter(range(1, requests + 1))

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                for index in next_index:
                    if time.monotonic() > deadline:
                        return
                    payload = request_bytes(index)
                    started = time.perf_counter()
                    try:
                        status = await asyncio.wait_for(exchange(reader, writer, payload), 30)
                    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as err:
                        status = 0  # a dropped connection counts against the run
                        print(f"request {index} failed: {type(err).__name__}: {err}", file=sys.stderr)
                        writer.close()
                        reader, writer = await asyncio.open_connection(host, port)
                    latencies.append(time.perf_counter() - started)
                    statuses[status] = statuses.get(status, 0) + 1
            finally:
                writer.close()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, statuses, time.perf_counter() - began

    conn.send(asyncio.run(run()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--per-request", type=int, default=10, help="notifications per POST")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this long")
    args = parser.parse_args(argv)
    if not (1 <= args.requests <= 20_000 and 1 <= args.concurrency <= 200 and 1 <= args.per_request <= 100):
        parser.error("--requests 1..20000, --concurrency 1..200, --per-request 1..100")

    import httpx

    from benchmarks.stack_support import ADMIN, benchmark_stack
    from tests.e2e.browser import Browser

    with benchmark_stack(people=20) as stack:
        from shared.adapters.graph import GraphClient
        from shared.bootstrap import Container, get_container, set_container

        queue_name = "bench-notifications-" + uuid.uuid4().hex[:8]
        os.environ["NOTIFICATION_QUEUE"] = queue_name  # the app's writes; the host's worker polls another
        settings = get_container().settings
        recording = RecordingGraph(GraphClient(settings))
        set_container(Container(graph=recording))  # type: ignore[arg-type]

        httpx.put(
            f"{stack.cloud_url}/_control/auto-sign-in", json={"user": ADMIN}, verify=stack.ca_bundle, timeout=30
        ).raise_for_status()
        admin = Browser(stack.base_url, ca_bundle=stack.ca_bundle)
        admin.navigate("/api/auth/login")
        put = admin.request(
            "PUT",
            "/api/tenants/me/settings",
            headers={"x-functions-key": stack.headers["x-functions-key"]},
            json={"interviews_mailbox": INTERVIEWS, "sync_mailbox": SYNC},
        )
        if put.status_code != 200 or len(recording.client_states) != 2:
            raise RuntimeError(f"subscribing failed: {put.status_code} {put.text[:300]}")
        subscriptions = sorted(recording.client_states.items())

        url = f"{stack.base_url}/api/webhooks/graph"
        # The client runs in a process of its own, as Graph does: its 50 connections do not share the
        # app's interpreter (and its lock) the way threads of this process would.
        parent, child = multiprocessing.Pipe()
        sender = multiprocessing.get_context("spawn").Process(
            target=_send_load,
            args=(child, url, subscriptions, args.requests, args.concurrency, args.per_request, args.max_seconds),
            daemon=True,
        )
        warm = httpx.post(url, content=_body(subscriptions, 0, args.per_request), headers=JSON, timeout=30)
        warm.raise_for_status()  # the intake warmed and its queue created; then drained, so it is not counted
        _count_queued(settings.storage_connection, queue_name)
        sender.start()
        latencies, statuses, wall = parent.recv()
        sender.join(timeout=30)
        acknowledged = statuses.get(202, 0)
        messages, notifications = _count_queued(settings.storage_connection, queue_name)
        p50 = statistics.median(latencies) * 1000
        p99 = _percentile(latencies, 0.99) * 1000
        print(f"POSTs sent               : {len(latencies)} at {args.concurrency} concurrent, {args.per_request} each")
        print(f"p50 acknowledgement      : {p50:.1f} ms")
        verdict = "OK" if p99 < P99_TARGET_MS else "MISSED"
        print(f"p99 acknowledgement      : {p99:.1f} ms (target < {P99_TARGET_MS:.0f} ms) {verdict}")
        print(f"requests per second      : {len(latencies) / wall:.1f}")
        print(f"acknowledged (202)       : {acknowledged} POSTs, {acknowledged * args.per_request} notifications")
        print(
            f"queued                   : {messages} messages, {notifications} notifications "
            f"(target: equal to acknowledged) {'OK' if notifications == acknowledged * args.per_request else 'MISSED'}"
        )
        print(f"answers                  : {dict(sorted(statuses.items()))}")
        return 0 if p99 < P99_TARGET_MS and notifications == acknowledged * args.per_request else 1


if __name__ == "__main__":
    raise SystemExit(main())
