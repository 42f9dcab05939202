"""The subscriptions health view: per mailbox, the subscription, its expiry, the last notification, the last
catch-up and errors; dropped-notification counters; the poison queue and what was replayed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def subscriptions_health(deps: Dependencies, tenant_id: str) -> dict[str, Any]:
    """Each subscription's resource, expiry, last notification, last renewal and last error, each
    mailbox's delta state, the poison-queue count, and the secondary-calendar limitation."""
    subs = deps.subscriptions.list_subscriptions(tenant_id)
    syncs = {s.mailbox.lower(): s for s in deps.subscriptions.list_mailbox_syncs(tenant_id)}
    try:
        poison: int | None = deps.notification_queue.poison_count()
    except ServiceError:
        poison = None
    flush_drops(deps, force=True)  # this worker's own latest drops
    dropped: dict[str, Any] = {
        "client_state_mismatch": 0,
        "wrong_mailbox": 0,
        "malformed": 0,
        "unknown_subscription_all_tenants": 0,
    }
    try:
        ours = deps.subscriptions.get_dropped(tenant_id)
        unattributed = deps.subscriptions.get_dropped(UNATTRIBUTED)
        for reason in ("client_state_mismatch", "wrong_mailbox", "malformed"):
            dropped[reason] = ours.get(reason, 0)
        dropped["unknown_subscription_all_tenants"] = unattributed.get("unknown_subscription", 0)
    except ServiceError:
        dropped = dict.fromkeys(dropped)
    try:
        replayed: int | None = deps.subscriptions.get_dropped(POISON_SCOPE).get("replayed", 0)
    except ServiceError:
        replayed = None
    dropped["note"] = DROPPED_NOTE
    now = deps.clock.now()
    return {
        "subscriptions": [
            {
                "subscription_id": s.subscription_id,
                "resource": s.resource,
                "mailbox": s.mailbox,
                "expires_at": _iso(s.expires_at),
                "expired": s.expires_at <= now,
                "last_notification_at": _iso(s.last_notification_at),
                "last_renewed_at": _iso(s.last_renewed_at),
                "last_error": s.last_error,
                "last_error_at": _iso(s.last_error_at),
                "last_delta_at": _iso(syncs[s.mailbox.lower()].last_delta_at) if s.mailbox.lower() in syncs else None,
            }
            for s in sorted(subs, key=lambda s: s.mailbox.lower())
        ],
        "mailboxes_without_subscription": sorted(
            s.mailbox
            for key, s in syncs.items()
            if not s.subscription_id or all(x.mailbox.lower() != key for x in subs)
        ),
        "poison_queue": {
            "queue": deps.settings.notification_queue + "-poison",
            "count": poison,
            "replayed": replayed,
            "note": POISON_NOTE,
        },
        "dropped_notifications": dropped,
        "secondary_calendars": SECONDARY_CALENDAR_NOTE,
        "secondary_calendar_bookings": len(secondary_calendar_bookings(deps, tenant_id)),
    }
