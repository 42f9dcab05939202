"""The subscriptions health view: per mailbox, the subscription, its expiry, the last notification, the last
catch-up and errors; dropped-notification counters; the poison queue and what was replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.errors import (
    ServiceError,
)
from shared.ports import Dependencies
from shared.sync.intake import (
    UNATTRIBUTED,
    flush_drops,
)
from shared.sync.reconcile import POISON_SCOPE, secondary_calendar_bookings

SECONDARY_CALENDAR_NOTE = (
    "Changes in a secondary calendar raise no change notification (Microsoft: by design); bookings "
    "there are covered by reconciliation only (RECONCILE_SCHEDULE reads each of their events), so RSVPs "
    "and drift show up at the next reconciliation rather than within seconds."
)


DROPPED_NOTE = (
    "Notifications refused at the webhook. client_state_mismatch, wrong_mailbox (a resource naming a mailbox "
    "other than the subscription's) and malformed count this tenant's subscriptions; "
    "unknown_subscription_all_tenants counts notifications naming no subscription we keep, "
    "which cannot be tied to a tenant. Each worker flushes its counts at most every 30 seconds, so the "
    "latest drops of other workers may not be included yet."
)


POISON_NOTE = (
    "Messages the worker could not process after its delayed retries (about two minutes) and the host's "
    "tries. Each reconciliation moves them back to the queue once Graph answers their mailboxes again; "
    "replayed counts those moves for the whole service."
)


@dataclass(frozen=True)
class SubscriptionState:
    subscription_id: str
    resource: str
    mailbox: str
    expires_at: datetime
    expired: bool
    last_notification_at: datetime | None
    last_renewed_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_delta_at: datetime | None


@dataclass(frozen=True)
class DroppedNotifications:
    """Counts refused at the webhook; None each when storage could not be read."""

    client_state_mismatch: int | None
    wrong_mailbox: int | None
    malformed: int | None
    unknown_subscription_all_tenants: int | None


@dataclass(frozen=True)
class PoisonQueue:
    queue: str
    count: int | None  # None when the queue could not be read
    replayed: int | None


@dataclass(frozen=True)
class SubscriptionsHealth:
    subscriptions: tuple[SubscriptionState, ...]
    mailboxes_without_subscription: tuple[str, ...]
    poison_queue: PoisonQueue
    dropped_notifications: DroppedNotifications
    secondary_calendar_bookings: int


def _dropped(deps: Dependencies, tenant_id: str) -> DroppedNotifications:
    flush_drops(deps, force=True)  # this worker's own latest drops
    try:
        ours = deps.subscriptions.get_dropped(tenant_id)
        unattributed = deps.subscriptions.get_dropped(UNATTRIBUTED)
    except ServiceError:
        return DroppedNotifications(None, None, None, None)
    return DroppedNotifications(
        ours.get("client_state_mismatch", 0),
        ours.get("wrong_mailbox", 0),
        ours.get("malformed", 0),
        unattributed.get("unknown_subscription", 0),
    )


def _poison_queue(deps: Dependencies) -> PoisonQueue:
    try:
        count: int | None = deps.notification_queue.poison_count()
    except ServiceError:
        count = None
    try:
        replayed: int | None = deps.subscriptions.get_dropped(POISON_SCOPE).get("replayed", 0)
    except ServiceError:
        replayed = None
    return PoisonQueue(deps.settings.notification_queue + "-poison", count, replayed)


def subscriptions_health(deps: Dependencies, tenant_id: str) -> SubscriptionsHealth:
    """Each subscription's resource, expiry, last notification, last renewal and last error, each
    mailbox's delta state, the poison-queue count, and the secondary-calendar limitation."""
    subs = deps.subscriptions.list_subscriptions(tenant_id)
    syncs = {s.mailbox.lower(): s for s in deps.subscriptions.list_mailbox_syncs(tenant_id)}
    poison = _poison_queue(deps)
    dropped = _dropped(deps, tenant_id)
    now = deps.clock.now()
    states = tuple(
        SubscriptionState(
            s.subscription_id,
            s.resource,
            s.mailbox,
            s.expires_at,
            s.expires_at <= now,
            s.last_notification_at,
            s.last_renewed_at,
            s.last_error,
            s.last_error_at,
            syncs[s.mailbox.lower()].last_delta_at if s.mailbox.lower() in syncs else None,
        )
        for s in sorted(subs, key=lambda s: s.mailbox.lower())
    )
    unsubscribed = tuple(
        sorted(
            s.mailbox
            for key, s in syncs.items()
            if not s.subscription_id or all(x.mailbox.lower() != key for x in subs)
        )
    )
    return SubscriptionsHealth(states, unsubscribed, poison, dropped, len(secondary_calendar_bookings(deps, tenant_id)))
