"""Subscription lifecycle: lifecycle events fired on demand, expiry, and the automatic near-expiry
reauthorization challenges."""

from __future__ import annotations

from datetime import datetime, timedelta

from devtools.cloud.notify.changes import queue_lifecycle
from devtools.cloud.notify.model import state
from devtools.cloud.state import World


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
