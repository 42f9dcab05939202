"""Change-notification machinery of the local cloud: subscriptions, queued notifications, delivery.

Graph's documented delivery behaviour, with every timing taken from ``world.switches``:
notifications for one URL are POSTed together as ``{"value": [...]}``; a POST that is not answered
2xx within the timeout is retried with backoff until the retry window closes; expired subscriptions
send nothing and disappear; lifecycle notifications (``reauthorizationRequired``,
``subscriptionRemoved``, ``missed``) go to ``lifecycleNotificationUrl``; after a
``reauthorizationRequired`` challenge change notifications keep flowing for a grace period and are
then lost until the app reauthorizes or renews.

Timing (documented in concepts/change-notifications-delivery-webhooks.md): "If Microsoft Graph doesn't
receive a 2xx class code within 3 seconds, it tries to resend the change notification multiple times,
for up to 4 hours. If Microsoft Graph still doesn't receive a 2xx code within the period, it discards
the change notification." The documentation does not give the intervals between attempts; the default
schedule in ``Switches.notification_retry_seconds`` is this cloud's choice. Every due time, the retry
window and subscription expiry are read on the cloud's clock (``World.now``), so a test moves the clock
(:func:`advance_clock`) and calls :func:`deliver_now` instead of waiting hours; only the 3-second
answer budget of each POST is real time.

Delivery runs on one background thread per world (its own asyncio loop), started lazily by the
first subscription and stopped with :func:`stop_delivery`. :func:`flush_notifications` delivers
whatever is pending from the calling thread, so tests need not wait on timers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from devtools.cloud.state import World, utcnow

logger = logging.getLogger(__name__)

STATE_SLOT = "subscriptions"
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
CHANGE_TYPES = ("created", "updated", "deleted")
# How often the worker looks at timers (expiry, reauthorization, retries) when nothing wakes it.
_POLL_SECONDS = 0.05


def format_datetime(value: datetime) -> str:
    """Graph's DateTimeOffset rendering: UTC with seven fractional digits, e.g. ``...45.9356913Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class Subscription:
    """One Graph subscription on the events of one mailbox."""

    id: str
    tenant_id: str
    client_id: str
    creator_id: str  # signed-in user id, or the app's service principal id for app-only callers
    delegated_user_id: str | None  # set when created with a delegated token
    mailbox_id: str
    resource: str  # as the client wrote it
    change_type: str  # as the client wrote it, e.g. "created,updated"
    notification_url: str
    lifecycle_notification_url: str | None
    client_state: str | None
    expiration: datetime
    latest_supported_tls_version: str = "v1_2"
    notification_url_app_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    # When the current reauthorizationRequired challenge was sent; None while authorized.
    reauthorization_required_at: datetime | None = None
    # When the last automatic near-expiry challenge was sent (to space repeats).
    last_expiry_challenge_at: datetime | None = None

    @property
    def change_types(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.change_type.split(","))

    def expired(self, now: datetime) -> bool:
        return self.expiration <= now

    def paused(self, world: World, now: datetime) -> bool:
        """Change notifications pause once a reauthorization challenge went unanswered for the grace period."""
        if self.reauthorization_required_at is None:
            return False
        grace = timedelta(seconds=world.switches.reauthorization_grace_seconds)
        return now >= self.reauthorization_required_at + grace

    def reauthorized(self) -> None:
        self.reauthorization_required_at = None

    def to_json(self) -> dict[str, Any]:
        """The documented subscription resource (v1.0)."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.client_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": format_datetime(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": self.latest_supported_tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": self.notification_url_app_id,
        }


@dataclass
class PendingNotification:
    """One notification object waiting for (re)delivery; several share a POST when their URL matches."""

    kind: str  # "change" | "lifecycle"
    url: str
    subscription_id: str
    item: dict[str, Any]  # the object that goes into the POST's "value" array
    queued_at: datetime
    due_at: datetime
    attempts: int = 0
    in_flight: bool = False


@dataclass(frozen=True)
class DeliveryRecord:
    """What the cloud sent (or gave up on), for tests to inspect.

    ``kind`` is "change", "lifecycle" or "validation". ``outcome`` is "delivered", "retrying",
    "dropped" (with ``reason``) or, for validation requests, "validated" / "rejected".
    ``status`` is None when the endpoint did not answer in time or could not be reached.
    """

    kind: str
    url: str
    outcome: str
    status: int | None
    attempt: int
    subscription_ids: tuple[str, ...]
    payload: dict[str, Any] | None
    at: datetime
    elapsed_seconds: float = 0.0
    reason: str | None = None

    def to_json(self, *, redact: bool = True) -> dict[str, Any]:
        payload = self.payload
        if redact and payload is not None:
            # clientState is the receiver's shared secret; keep it out of control-API output.
            payload = {
                "value": [
                    {**item, "clientState": "***"} if item.get("clientState") is not None else item
                    for item in payload.get("value", [])
                ]
            }
        return {
            "kind": self.kind,
            "url": self.url,
            "outcome": self.outcome,
            "status": self.status,
            "attempt": self.attempt,
            "subscriptionIds": list(self.subscription_ids),
            "payload": payload,
            "at": format_datetime(self.at),
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "reason": self.reason,
        }


@dataclass
class NotificationState:
    """Everything the subscriptions API and the delivery worker share, kept in ``world.extra``."""

    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    pending: list[PendingNotification] = field(default_factory=list)
    log: list[DeliveryRecord] = field(default_factory=list)


def state(world: World) -> NotificationState:
    """This world's notification state, created on first use (and anew after a world reset)."""
    return world.module_state(STATE_SLOT, NotificationState)


# ---- queueing ----------------------------------------------------------------------------------
def _etag(world: World, event_id: str) -> str:
    """The event's current ``@odata.etag``, as the Graph event endpoints render it."""
    event = world.events.get(event_id)
    if event is not None:
        from devtools.cloud.graph.serialize import etag

        return etag(event)
    # A deleted event has no change key left; an opaque value in the same base64 style stands in.
    return 'W/"' + base64.b64encode(event_id.replace("-", "").encode()[:24]).decode("ascii") + '"'


def change_item(world: World, sub: Subscription, change_type: str, event_id: str) -> dict[str, Any]:
    """A basic (no resource data) Outlook event change notification, shaped as Graph documents it."""
    path = f"Users/{sub.mailbox_id}/Events/{event_id}"
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": format_datetime(sub.expiration),
        "changeType": change_type,
        "resource": path,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": path,
            "@odata.etag": _etag(world, event_id),
            "id": event_id,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    }


def lifecycle_item(sub: Subscription, event: str) -> dict[str, Any]:
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": format_datetime(sub.expiration),
        "tenantId": sub.tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }


def _enqueue(world: World, pending: PendingNotification) -> None:
    state(world).pending.append(pending)
    _wake(world)


def _record(world: World, record: DeliveryRecord) -> None:
    state(world).log.append(record)


def on_change(world: World, tenant_id: str, mailbox_id: str, change_type: str, event_id: str) -> None:
    """``World`` change listener: queue a notification for every matching live subscription."""
    now = world.now()
    delay = timedelta(seconds=world.switches.notification_batch_delay_seconds)
    with world.lock:
        st = state(world)
        for sub in list(st.subscriptions.values()):
            if sub.tenant_id != tenant_id or sub.mailbox_id != mailbox_id:
                continue
            if change_type not in sub.change_types:
                continue
            if sub.expired(now):
                continue  # swept by the worker; an expired subscription sends nothing
            item = change_item(world, sub, change_type, event_id)
            if sub.paused(world, now):
                # Documented: changes made while delivery is paused are lost (the app resyncs by delta).
                _record(
                    world,
                    DeliveryRecord(
                        "change",
                        sub.notification_url,
                        "dropped",
                        None,
                        0,
                        (sub.id,),
                        {"value": [item]},
                        now,
                        reason="reauthorizationRequired",
                    ),
                )
                continue
            _enqueue(world, PendingNotification("change", sub.notification_url, sub.id, item, now, now + delay))


def queue_lifecycle(world: World, sub: Subscription, event: str) -> bool:
    """Queue a lifecycle notification; False when the subscription has no lifecycle URL to send it to."""
    if event not in LIFECYCLE_EVENTS:
        raise ValueError(f"unknown lifecycle event {event!r}")
    if not sub.lifecycle_notification_url:
        return False
    now = world.now()
    delay = timedelta(seconds=world.switches.notification_batch_delay_seconds)
    with world.lock:
        _enqueue(
            world,
            PendingNotification(
                "lifecycle", sub.lifecycle_notification_url, sub.id, lifecycle_item(sub, event), now, now + delay
            ),
        )
    return True


def fire_lifecycle_event(world: World, subscription_id: str, event: str) -> bool:
    """Control: make Graph send ``event`` for a subscription, with its documented consequence.

    ``reauthorizationRequired`` starts the grace period after which delivery pauses;
    ``subscriptionRemoved`` deletes the subscription; ``missed`` changes nothing else.
    Returns whether a notification was queued. Raises KeyError for an unknown subscription.
    """
    with world.lock:
        sub = state(world).subscriptions[subscription_id]
        queued = queue_lifecycle(world, sub, event)
        if event == "reauthorizationRequired" and sub.reauthorization_required_at is None:
            sub.reauthorization_required_at = world.now()
        elif event == "subscriptionRemoved":
            state(world).subscriptions.pop(subscription_id, None)
    return queued


def expire_subscription(world: World, subscription_id: str) -> None:
    """Control: move a subscription's expiration to now, as if its lifetime ran out."""
    with world.lock:
        state(world).subscriptions[subscription_id].expiration = world.now()


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
    _wake(world)
    return now


def delivery_log(world: World) -> list[DeliveryRecord]:
    with world.lock:
        return list(state(world).log)


def clear_delivery_log(world: World) -> None:
    with world.lock:
        state(world).log.clear()


def pending_count(world: World) -> int:
    with world.lock:
        return len(state(world).pending)


# ---- timers ------------------------------------------------------------------------------------
def sweep(world: World, now: datetime | None = None) -> None:
    """Remove expired subscriptions and send the automatic near-expiry reauthorization challenges."""
    now = now or world.now()
    sw = world.switches
    lead = timedelta(seconds=sw.reauthorization_before_expiry_seconds)
    repeat = timedelta(seconds=sw.reauthorization_repeat_seconds)
    with world.lock:
        st = state(world)
        for sub in list(st.subscriptions.values()):
            if sub.expired(now):
                # Graph deletes a subscription that was not renewed in time.
                del st.subscriptions[sub.id]
                continue
            if not sub.lifecycle_notification_url or sub.expiration - now > lead:
                continue
            last = sub.last_expiry_challenge_at
            if last is not None and now - last < repeat:
                continue
            sub.last_expiry_challenge_at = now
            if sub.reauthorization_required_at is None:
                sub.reauthorization_required_at = now
            queue_lifecycle(world, sub, "reauthorizationRequired")


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
                    _record(
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
        _record(
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


def _client() -> httpx.AsyncClient:
    # No redirects: Graph posts to exactly the registered URL. No timeout of httpx's own (its default is
    # 5 seconds): each POST's only limit is the notification timeout, applied around it.
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=None)


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
    async with _client() as client:
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
            await asyncio.sleep(min([_POLL_SECONDS, *[w for w in waits if w > 0]]))
    with world.lock:
        return list(state(world).log[start:])


async def deliver_now_async(world: World) -> list[DeliveryRecord]:
    """One delivery round at the cloud's current time: every first attempt, and every retry now due.

    Waits for those POSTs (each at most the notification timeout) and returns the records they wrote;
    retries not yet due stay queued. Move the clock with :func:`advance_clock` to make them due.
    """
    with world.lock:
        start = len(state(world).log)
    async with _client() as client:
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
        time.sleep(_POLL_SECONDS / 2)


# ---- background worker -------------------------------------------------------------------------
class DeliveryWorker:
    """A daemon thread running an asyncio loop that delivers due notifications and runs the timers."""

    def __init__(self, world: World) -> None:
        self._world_ref = weakref.ref(world)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloud-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def wake(self) -> None:
        loop, event = self._loop, self._wake_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closing during stop()
                loop.call_soon_threadsafe(event.set)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self.wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self._ready.set()
        tasks: set[asyncio.Task[None]] = set()
        async with _client() as client:
            while not self._stopping:
                world = self._world_ref()
                if world is None:
                    break
                try:
                    for task in await _deliver_due(world, client, force=False):
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                except Exception:  # keep delivering for the other subscriptions
                    logger.exception("notification worker cycle failed")
                del world
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_event.wait(), _POLL_SECONDS)
                self._wake_event.clear()
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


_workers: weakref.WeakKeyDictionary[World, DeliveryWorker] = weakref.WeakKeyDictionary()
_attached: weakref.WeakSet[World] = weakref.WeakSet()
_registry_lock = threading.Lock()


def attach(world: World) -> None:
    """Listen to the world's event changes (once per world, however often routes are built)."""
    with _registry_lock:
        if world in _attached:
            return
        _attached.add(world)
    ref = weakref.ref(world)

    def listener(tenant_id: str, mailbox_id: str, change_type: str, event_id: str) -> None:
        target = ref()
        if target is not None:
            on_change(target, tenant_id, mailbox_id, change_type, event_id)

    def after_reset() -> None:
        # The reset replaced world.extra, so the old queue is gone; in-flight POSTs finish harmlessly.
        target = ref()
        if target is not None:
            state(target)

    world.add_change_listener(listener)
    world.add_reset_listener(after_reset)


def start_delivery(world: World) -> None:
    """Start the background delivery worker for this world if it is not running."""
    attach(world)
    with _registry_lock:
        worker = _workers.get(world)
        if worker is not None and worker.alive:
            return
        worker = DeliveryWorker(world)
        _workers[world] = worker
    worker.start()


def stop_delivery(world: World, timeout: float = 5.0) -> None:
    """Stop the background worker; pending notifications stay queued (flush or restart to send them)."""
    with _registry_lock:
        worker = _workers.pop(world, None)
    if worker is not None:
        worker.stop(timeout)


def delivery_running(world: World) -> bool:
    with _registry_lock:
        worker = _workers.get(world)
    return worker is not None and worker.alive


def _wake(world: World) -> None:
    worker = _workers.get(world)
    if worker is not None:
        worker.wake()
