"""Change-notification subscriptions, one per mailbox we watch: created once (the ``MailboxSync`` row settles
races between instances), remembered per worker, and the last notification recorded.

For the booking core: ``ensure_mailbox_subscription(deps, tenant_id, mailbox) -> None`` makes sure Graph
notifies us of changes to ``/users/{mailbox}/events``. It is idempotent and cheap when the mailbox is
already subscribed (a per-worker memory, else one point read); it never raises for Graph or storage
trouble (the renewal timer retries), only ValueError for an empty mailbox.

Which mailboxes: the tenant's Interviews and Sync mailboxes and every mailbox that organises one of our
bookings, with application permissions: Graph sends RSVPs and extended properties only on the organizer's
item, so the organizer's mailbox is the one that must be watched.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.conflicts import retry_on_conflict
from shared.errors import (
    ConcurrencyConflict,
    NotFound,
    ServiceError,
)
from shared.models import BookingStatus, CreatedSubscription, MailboxSync, Subscription
from shared.ports import Dependencies
from shared.sync.delta import app, catch_up
from shared.sync.intake import (
    client_state_hash,
    forget_unknown_subscriptions,
)
from shared.urls import graph_lifecycle_url, graph_webhook_url

logger = logging.getLogger(__name__)


# Bookings this far ahead keep their organizer's mailbox subscribed.
UPCOMING_BOOKINGS = timedelta(days=400)
CLAIM_LEASE = timedelta(minutes=2)  # longer than a create with its two handshakes (10 s each) takes
_known: dict[tuple[str, str], datetime] = {}  # (tenant, mailbox) -> subscription expiry, this worker
_known_lock = threading.Lock()


def remember(tenant_id: str, mailbox: str, expires_at: datetime | None) -> None:
    with _known_lock:
        if expires_at is None:
            _known.pop((tenant_id, mailbox.lower()), None)
        else:
            _known[(tenant_id, mailbox.lower())] = expires_at


def forget_worker_memory() -> None:
    with _known_lock:
        _known.clear()


def ensure_mailbox_subscription(deps: Dependencies, tenant_id: str, mailbox: str) -> None:
    """Subscribe to the mailbox's events unless a live subscription (or a creator's claim) exists."""
    mailbox = mailbox.strip()
    if not mailbox:
        raise ValueError("mailbox must not be empty")
    now = deps.clock.now()
    with _known_lock:
        known = _known.get((tenant_id, mailbox.lower()))
    if known is not None and known > now:
        return
    try:
        _ensure(deps, tenant_id, mailbox, now)
    except ServiceError as err:
        logger.warning(
            "Subscribing to a mailbox of tenant %s failed (%s); the renewal timer retries", tenant_id, err.code
        )


def _ensure(deps: Dependencies, tenant_id: str, mailbox: str, now: datetime) -> None:
    try:
        sync: MailboxSync | None = deps.subscriptions.get_mailbox_sync(tenant_id, mailbox)
    except NotFound:
        sync = None
    if sync is not None and sync.subscription_id and sync.expires_at and sync.expires_at > now:
        remember(tenant_id, mailbox, sync.expires_at)
        return
    subscribe_mailbox(deps, tenant_id, mailbox, sync=sync)


def _claim(deps: Dependencies, tenant_id: str, mailbox: str, sync: MailboxSync | None) -> MailboxSync | None:
    """Take the mailbox's claim (conditional insert, or an ETag update of a lapsed claim); None if lost."""
    now = deps.clock.now()
    until = now + CLAIM_LEASE
    try:
        if sync is None:
            return deps.subscriptions.create_mailbox_sync(MailboxSync(tenant_id, mailbox, claimed_until=until))
        if sync.claimed_until is not None and sync.claimed_until > now:
            return None  # another writer is creating this mailbox's subscription right now
        return deps.subscriptions.update_mailbox_sync(replace(sync, claimed_until=until))
    except ConcurrencyConflict:
        return None


def subscribe_mailbox(
    deps: Dependencies, tenant_id: str, mailbox: str, *, sync: MailboxSync | None = None, catch_up_after: bool = True
) -> Subscription | None:
    """Create a subscription for the mailbox if this caller wins its claim; replaces the one on record.

    Returns the new subscription, or None when another writer holds the claim. Raises ServiceError
    for Graph or storage failures (the claim then lapses and the next run tries again)."""
    claim = _claim(deps, tenant_id, mailbox, sync)
    if claim is None:
        logger.info("Another writer is subscribing a mailbox of tenant %s; leaving it to them", tenant_id)
        return None
    settings = deps.settings
    mailbox_id = _mailbox_id(deps, tenant_id, mailbox)
    client_state = secrets.token_urlsafe(32)
    expires_at = deps.clock.now() + timedelta(minutes=settings.subscription_minutes)
    resource = f"users/{mailbox}/events"
    try:
        created: CreatedSubscription = app(deps, tenant_id)(
            lambda token: deps.graph.create_subscription(
                token,
                resource=resource,
                notification_url=graph_webhook_url(settings),
                lifecycle_url=graph_lifecycle_url(settings),
                client_state=client_state,
                expires_at=expires_at,
            )
        )
    except ServiceError as err:
        _record_sync_error(deps, claim, f"create failed: {err.code}")
        raise
    now = deps.clock.now()
    subscription = deps.subscriptions.create_subscription(
        Subscription(
            tenant_id=tenant_id,
            subscription_id=created.subscription_id,
            resource=created.resource or resource,
            mailbox=mailbox,
            expires_at=created.expires_at,  # what Graph granted, not what we asked for
            client_state_hash=client_state_hash(client_state),
            mailbox_id=mailbox_id,
            created_at=now,
            last_renewed_at=now,
        )
    )
    forget_unknown_subscriptions(created.subscription_id)  # this worker may have seen it before it was stored
    previous = claim.subscription_id
    try:
        deps.subscriptions.update_mailbox_sync(
            replace(
                claim,
                subscription_id=created.subscription_id,
                expires_at=created.expires_at,
                claimed_until=None,
                last_error=None,
            )
        )
    except ConcurrencyConflict:
        # Our claim lapsed and someone else took the mailbox over: theirs stands, ours goes.
        logger.warning(
            "Lost a mailbox claim of tenant %s while subscribing; removing the extra subscription", tenant_id
        )
        _drop_subscription(deps, tenant_id, created.subscription_id)
        return None
    if previous and previous != created.subscription_id:
        _drop_subscription(deps, tenant_id, previous)
    remember(tenant_id, mailbox, created.expires_at)
    logger.info("Subscribed to a mailbox of tenant %s until %s", tenant_id, created.expires_at.isoformat())
    if catch_up_after:
        try:
            catch_up(deps, tenant_id, mailbox)
        except ServiceError as err:
            logger.warning("Delta catch-up after subscribing failed (%s); reconciliation retries", err.code)
    return subscription


def _mailbox_id(deps: Dependencies, tenant_id: str, mailbox: str) -> str | None:
    """The mailbox's Graph user id, the name Graph's notifications give it (None when it cannot be read:
    the webhook then tells another mailbox only by its address)."""
    try:
        user = app(deps, tenant_id)(lambda token: deps.graph.get_user(token, mailbox))
    except ServiceError as err:
        logger.info("Could not read the user id of a mailbox of tenant %s (%s)", tenant_id, err.code)
        return None
    return str(user.user_id) or None


def _drop_subscription(deps: Dependencies, tenant_id: str, subscription_id: str) -> None:
    try:
        app(deps, tenant_id)(lambda token: deps.graph.delete_subscription(token, subscription_id))
    except ServiceError as err:
        logger.info("Deleting a replaced subscription at Graph failed (%s); it expires by itself", err.code)
    deps.subscriptions.delete_subscription(tenant_id, subscription_id)


def _record_sync_error(deps: Dependencies, sync: MailboxSync, error: str) -> None:
    try:
        deps.subscriptions.update_mailbox_sync(replace(sync, last_error=error[:200], claimed_until=None))
    except ServiceError:
        logger.info("Could not record a mailbox sync error; the claim lapses by itself")


def update_subscription(deps: Dependencies, tenant_id: str, subscription_id: str, **changes: Any) -> None:
    def write() -> None:
        current = deps.subscriptions.get_subscription(tenant_id, subscription_id)
        deps.subscriptions.update_subscription(replace(current, **changes))

    try:
        retry_on_conflict(write)
    except NotFound:
        return


def tenant_mailboxes(deps: Dependencies, tenant_id: str) -> list[str]:
    """The mailboxes this tenant's bookings live in: Interviews, Sync, every subscribed organizer, and
    the organizer of every booking still to come (so one whose subscribing failed at booking time heals)."""
    tenant = deps.tenants.get_tenant(tenant_id)
    found: dict[str, str] = {}
    for mailbox in (tenant.interviews_mailbox, tenant.sync_mailbox):
        if mailbox:
            found.setdefault(mailbox.lower(), mailbox)
    for sync in deps.subscriptions.list_mailbox_syncs(tenant_id):
        found.setdefault(sync.mailbox.lower(), sync.mailbox)
    now = deps.clock.now()
    for booking in deps.bookings.list_bookings_between(tenant_id, now, now + UPCOMING_BOOKINGS):
        if booking.status is not BookingStatus.CANCELLED and booking.event_id:
            found.setdefault(booking.mailbox.lower(), booking.mailbox)
    return list(found.values())


def subscribe_tenant_mailboxes(deps: Dependencies, tenant_id: str) -> None:
    """After the admin sets the Interviews/Sync mailboxes: subscribe both. Never raises (logged)."""
    try:
        tenant = deps.tenants.get_tenant(tenant_id)
    except ServiceError as err:
        logger.warning("Could not read tenant %s to subscribe its mailboxes (%s)", tenant_id, err.code)
        return
    for mailbox in (tenant.interviews_mailbox, tenant.sync_mailbox):
        if mailbox:
            ensure_mailbox_subscription(deps, tenant_id, mailbox)


def record_notification(deps: Dependencies, tenant_id: str, subscription_id: str) -> None:
    """The worker saw a notification for this subscription (for the health view); best effort, one try:
    a conflict means another message of the same subscription wrote a time as fresh meanwhile, so the
    many messages of a busy subscription never queue behind each other's retries on its one row."""
    now = deps.clock.now()
    try:
        current = deps.subscriptions.get_subscription(tenant_id, subscription_id)
        if current.last_notification_at is not None and current.last_notification_at >= now:
            return
        deps.subscriptions.update_subscription(replace(current, last_notification_at=now))
    except ConcurrencyConflict:
        return
    except NotFound:
        return
    except ServiceError as err:
        logger.info("Could not record the last notification time (%s)", err.code)
