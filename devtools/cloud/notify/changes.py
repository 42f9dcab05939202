"""Queueing: the notifications a change or a lifecycle event makes, and the listener that hears the world's
event changes."""

from __future__ import annotations

import base64
import threading
import weakref
from datetime import timedelta
from typing import Any

from devtools.cloud.notify.model import (
    LIFECYCLE_EVENTS,
    DeliveryRecord,
    PendingNotification,
    Subscription,
    format_datetime,
    record,
    state,
)
from devtools.cloud.notify.worker import wake
from devtools.cloud.state import World

_attached: weakref.WeakSet[World] = weakref.WeakSet()
_attach_lock = threading.Lock()


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


def enqueue(world: World, pending: PendingNotification) -> None:
    state(world).pending.append(pending)
    wake(world)


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
                record(
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
            enqueue(world, PendingNotification("change", sub.notification_url, sub.id, item, now, now + delay))


def queue_lifecycle(world: World, sub: Subscription, event: str) -> bool:
    """Queue a lifecycle notification; False when the subscription has no lifecycle URL to send it to."""
    if event not in LIFECYCLE_EVENTS:
        raise ValueError(f"unknown lifecycle event {event!r}")
    if not sub.lifecycle_notification_url:
        return False
    now = world.now()
    delay = timedelta(seconds=world.switches.notification_batch_delay_seconds)
    with world.lock:
        enqueue(
            world,
            PendingNotification(
                "lifecycle", sub.lifecycle_notification_url, sub.id, lifecycle_item(sub, event), now, now + delay
            ),
        )
    return True


def attach(world: World) -> None:
    """Listen to the world's event changes (once per world, however often routes are built)."""
    with _attach_lock:
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
