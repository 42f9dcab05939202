"""Delivery: due notifications grouped into one POST per URL, retried with backoff inside the retry window,
delivered on demand (tests) or by the background worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx

from devtools.cloud.notify.changes import attach
from devtools.cloud.notify.lifecycle import sweep
from devtools.cloud.notify.model import (
    POLL_SECONDS,
    DeliveryRecord,
    NotificationState,
    PendingNotification,
    delivery_log,
    record,
    state,
)
from devtools.cloud.notify.worker import http_client, run_worker, wake
from devtools.cloud.state import World

logger = logging.getLogger(__name__)


def advance_clock(world: World, seconds: float) -> datetime:
    """Control: move the cloud's clock forward (never back); returns the cloud's new time.

    Retries that fall due and subscriptions that expire meanwhile are handled by the next delivery round
    (the background worker's, or :func:`deliver_now`).
    """
    if seconds < 0:
        raise ValueError("the clock only moves forward")
    with world.lock:
        world.clock_offset += timedelta(seconds=seconds)
        now = world.now()
    wake(world)
    return now


def _backoff(world: World, attempts: int) -> float:
    schedule = world.switches.notification_retry_seconds or (1.0,)
    return float(schedule[min(attempts - 1, len(schedule) - 1)])


def _take_due(world: World, now: datetime, *, force: bool) -> dict[tuple[str, str], list[PendingNotification]]:
    """Claim every due notification, grouped by (kind, URL) so each group becomes one POST.

    ``force`` also claims first attempts still inside their batching delay (retries keep their backoff).
    """
    groups: dict[tuple[str, str], list[PendingNotification]] = {}
    with world.lock:
        st = state(world)
        for pending in list(st.pending):
            if pending.in_flight:
                continue
            if pending.due_at > now and not (force and pending.attempts == 0):
                continue
            if pending.kind == "change":
                sub = st.subscriptions.get(pending.subscription_id)
                if sub is None or sub.expired(now):
                    st.pending.remove(pending)
                    record(
                        world,
                        DeliveryRecord(
                            pending.kind,
                            pending.url,
                            "dropped",
                            None,
                            pending.attempts,
                            (pending.subscription_id,),
                            {"value": [pending.item]},
                            now,
                            reason="subscriptionGone",
                        ),
                    )
                    continue
            pending.in_flight = True
            groups.setdefault((pending.kind, pending.url), []).append(pending)
    return groups


async def _post(world: World, client: httpx.AsyncClient, kind: str, url: str, items: list[PendingNotification]) -> None:
    payload = {"value": [p.item for p in items]}
    timeout = world.switches.notification_timeout_seconds
    started = time.monotonic()
    status: int | None = None
    reason: str | None = None
    try:
        response = await asyncio.wait_for(
            client.post(url, json=payload, headers={"Content-Type": "application/json; charset=utf-8"}), timeout
        )
        status = response.status_code
    except (TimeoutError, httpx.TimeoutException):
        reason = "timeout"
    except httpx.HTTPError as err:
        reason = type(err).__name__
    elapsed = time.monotonic() - started
    now = world.now()
    ok = status is not None and 200 <= status < 300
    window = timedelta(seconds=world.switches.notification_retry_window_seconds)
    attempt = max(p.attempts for p in items) + 1
    with world.lock:
        st = state(world)
        retrying: list[PendingNotification] = []
        dropped: list[PendingNotification] = []
        for p in items:
            p.attempts += 1
            p.in_flight = False
            if ok:
                _remove(st, p)
                continue
            next_due = now + timedelta(seconds=_backoff(world, p.attempts))
            if next_due - p.queued_at > window:
                _remove(st, p)
                dropped.append(p)
            else:
                p.due_at = next_due
                retrying.append(p)
        ids = tuple(dict.fromkeys(p.subscription_id for p in items))
        outcome = "delivered" if ok else ("retrying" if retrying else "dropped")
        record(
            world,
            DeliveryRecord(
                kind,
                url,
                outcome,
                status,
                attempt,
                ids,
                payload,
                now,
                elapsed,
                None if ok else (reason or f"status {status}"),
            ),
        )
    if not ok:
        logger.warning("notification POST to %s failed (%s), attempt %d", url, reason or status, attempt)


def _remove(st: NotificationState, pending: PendingNotification) -> None:
    with contextlib.suppress(ValueError):  # already dropped by a world reset
        st.pending.remove(pending)


async def _deliver_due(world: World, client: httpx.AsyncClient, *, force: bool) -> list[asyncio.Task[None]]:
    sweep(world)
    groups = _take_due(world, world.now(), force=force)
    return [asyncio.create_task(_post(world, client, kind, url, items)) for (kind, url), items in groups.items()]


async def flush_async(world: World, timeout: float = 10.0) -> list[DeliveryRecord]:
    """Deliver everything pending (first attempts at once, retries at their backoff) until none is left.

    Returns the delivery records written meanwhile. Raises TimeoutError if notifications are
    still pending after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    with world.lock:
        st = state(world)
        start = len(st.log)
    async with http_client() as client:
        while True:
            tasks = await _deliver_due(world, client, force=True)
            if tasks:
                await asyncio.gather(*tasks)
            with world.lock:
                st = state(world)
                left = list(st.pending)
            if not left:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(left)} notification(s) still pending after {timeout} s")
            # Wait for the next retry (or for the worker to finish what it has in flight).
            now = world.now()
            waits = [(p.due_at - now).total_seconds() for p in left if not p.in_flight]
            await asyncio.sleep(min([POLL_SECONDS, *[w for w in waits if w > 0]]))
    with world.lock:
        return list(state(world).log[start:])


async def deliver_now_async(world: World) -> list[DeliveryRecord]:
    """One delivery round at the cloud's current time: every first attempt, and every retry now due.

    Waits for those POSTs (each at most the notification timeout) and returns the records they wrote;
    retries not yet due stay queued. Move the clock with :func:`advance_clock` to make them due.
    """
    with world.lock:
        start = len(state(world).log)
    async with http_client() as client:
        tasks = await _deliver_due(world, client, force=True)
        if tasks:
            await asyncio.gather(*tasks)
    with world.lock:
        return list(state(world).log[start:])


def deliver_now(world: World) -> list[DeliveryRecord]:
    """Synchronous :func:`deliver_now_async` (call it from a thread with no running event loop)."""
    return asyncio.run(deliver_now_async(world))


def flush_notifications(world: World, timeout: float = 10.0) -> list[DeliveryRecord]:
    """Synchronous :func:`flush_async` for tests (call it from a thread with no running event loop)."""
    return asyncio.run(flush_async(world, timeout))


def wait_for_deliveries(
    world: World, predicate: Callable[[list[DeliveryRecord]], bool], timeout: float = 10.0
) -> list[DeliveryRecord]:
    """Wait (without forcing anything) until ``predicate(delivery_log)`` holds; for background-worker tests."""
    deadline = time.monotonic() + timeout
    while True:
        records = delivery_log(world)
        if predicate(records):
            return records
        if time.monotonic() >= deadline:
            raise TimeoutError(f"delivery log did not reach the expected state within {timeout} s")
        time.sleep(POLL_SECONDS / 2)


def _background_round(world: World, client: httpx.AsyncClient) -> Awaitable[list[asyncio.Task[None]]]:
    return _deliver_due(world, client, force=False)


def start_delivery(world: World) -> None:
    """Start the background delivery worker for this world if it is not running."""
    attach(world)
    run_worker(world, _background_round)
