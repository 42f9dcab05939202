"""Change-notification machinery of the local cloud: subscriptions, queued notifications, delivery.

Modules: ``model`` (the data), ``changes`` (queueing), ``lifecycle`` (lifecycle events, expiry),
``delivery`` (POSTs and retries) and ``worker`` (the background thread). Everything public is importable
from here.

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

from devtools.cloud.notify.changes import (
    attach,
    change_item,
    lifecycle_item,
    on_change,
    queue_lifecycle,
)
from devtools.cloud.notify.delivery import (
    advance_clock,
    deliver_now,
    deliver_now_async,
    flush_async,
    flush_notifications,
    start_delivery,
    wait_for_deliveries,
)
from devtools.cloud.notify.lifecycle import (
    expire_subscription,
    fire_lifecycle_event,
    sweep,
)
from devtools.cloud.notify.model import (
    CHANGE_TYPES,
    LIFECYCLE_EVENTS,
    STATE_SLOT,
    DeliveryRecord,
    NotificationState,
    PendingNotification,
    Subscription,
    clear_delivery_log,
    delivery_log,
    format_datetime,
    pending_count,
    state,
)
from devtools.cloud.notify.worker import (
    DeliveryWorker,
    delivery_running,
    stop_delivery,
)

__all__ = [
    "CHANGE_TYPES",
    "DeliveryRecord",
    "DeliveryWorker",
    "LIFECYCLE_EVENTS",
    "NotificationState",
    "PendingNotification",
    "STATE_SLOT",
    "Subscription",
    "advance_clock",
    "attach",
    "change_item",
    "clear_delivery_log",
    "deliver_now",
    "deliver_now_async",
    "delivery_log",
    "delivery_running",
    "expire_subscription",
    "fire_lifecycle_event",
    "flush_async",
    "flush_notifications",
    "format_datetime",
    "lifecycle_item",
    "on_change",
    "pending_count",
    "queue_lifecycle",
    "start_delivery",
    "state",
    "stop_delivery",
    "sweep",
    "wait_for_deliveries",
]
