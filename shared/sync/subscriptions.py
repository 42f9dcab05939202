"""Change-notification subscriptions: create, renew, heal, reconcile, and the health view.

For the booking core: ``ensure_mailbox_subscription(deps, tenant_id, mailbox) -> None`` makes sure
Graph notifies us of changes to ``/users/{mailbox}/events``. Call it when a booking is created in a
mailbox (an interviewer's calendar that organises it). It is idempotent and cheap when the mailbox
is already subscribed (a per-worker memory, else one point read); it never raises for Graph or
storage trouble (the renewal timer retries), only ValueError for an empty mailbox.

Which mailboxes: the tenant's Interviews and Sync mailboxes (set in PUT /api/tenants/me/settings)
and every mailbox that organises one of our bookings, with application permissions. Graph sends
RSVPs (the tally) and extended properties only on the organizer's item, so the organizer's mailbox
is the one that must be watched; see the README for why bookings do not invite the Sync mailbox.

Races are settled in storage: each mailbox has one ``MailboxSync`` row. Whoever inserts it (or
takes it over with its ETag once an earlier claim lapsed) creates the subscription; a second timer
run, a late run or another instance loses the insert or the ETag and does nothing. Renewal PATCHes
are idempotent, so two runs renewing the same subscription leave one subscription.

Reconciliation: every mailbox keeps a ``calendarView/delta`` link (encrypted). A catch-up sends what
changed since to the notification queue, where the worker handles it exactly as a notification;
Graph's 410 starts a full resync of the window. Changes in a secondary calendar raise no
notification (Microsoft: "by design") and primary-calendar delta does not see them either; such
bookings are covered only by the periodic reconciliation, which reads each of them directly: every
booking that stores a ``calendar_id`` and is live within the delta window is queued for the worker,
which reads its event (gone means deleted) and applies it through ``apply_observed_event``, exactly
as for a notification. The health view and the booking's warnings say so.

Poison replay: after its catch-ups, reconciliation moves what reached ``<queue>-poison`` back to the
queue (attempt counter reset, replay count raised), except messages naming a mailbox whose catch-up
failed in the same run: Graph does not answer for it yet, so they wait for the next run (rewritten
without an expiry when theirs is near). Nothing is discarded; the health view shows the poison count
and how many messages were replayed.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.conflicts import retry_on_conflict
from shared.errors import (
    ConcurrencyConflict,
    DeltaExpired,
    InvalidRequest,
    NotFound,
    ServiceError,
)
from shared.identity.tokens import with_app_token
from shared.models import BookingStatus, CreatedSubscription, MailboxSync, QueuedMessage, Subscription
from shared.ports import Dependencies
from shared.sync.intake import (
    UNATTRIBUTED,
    QueueEnvelope,
    client_state_hash,
    decode_message,
    encode_messages,
    flush_drops,
    forget_unknown_subscriptions,
)
from shared.sync.ncrontab import NCrontab
from shared.urls import graph_lifecycle_url, graph_webhook_url

logger = logging.getLogger(__name__)

# Bookings this far ahead keep their organizer's mailbox subscribed.
UPCOMING_BOOKINGS = timedelta(days=400)

CLAIM_LEASE = timedelta(minutes=2)  # longer than a create with its two handshakes (10 s each) takes
DELTA_PAST = timedelta(days=7)
DELTA_FUTURE = timedelta(days=180)
DELTA_REOPEN_AFTER = timedelta(days=30)  # a delta window is fixed when opened: slide it monthly
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
LIVE = (BookingStatus.BOOKED, BookingStatus.DRIFTED)
POISON_SCOPE = "poison"  # the service-wide counters row of the poison-queue replay (webhookdrops table)
POISON_LEASE = timedelta(minutes=5)  # a received poison message stays hidden while this run decides on it
POISON_REPLAY_MAX = 512  # poison messages looked at per reconciliation run
POISON_REWRITE_BEFORE = timedelta(days=2)  # a held message this close to its expiry is rewritten without one
_known: dict[tuple[str, str], datetime] = {}  # (tenant, mailbox) -> subscription expiry, this worker
_known_lock = threading.Lock()


@dataclass(frozen=True)
class RenewalReport:
    renewed: int = 0
    recreated: int = 0
    created: int = 0
    failed: int = 0


# ---- creating ---------------------------------------------------------------------------------
def _app(deps: Dependencies, tenant_id: str) -> Any:
    def call(fn: Any) -> Any:
        return with_app_token(deps, tenant_id, fn)

    return call


def _remember(tenant_id: str, mailbox: str, expires_at: datetime | None) -> None:
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
        _remember(tenant_id, mailbox, sync.expires_at)
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
        created: CreatedSubscription = _app(deps, tenant_id)(
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
    _remember(tenant_id, mailbox, created.expires_at)
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
        user = _app(deps, tenant_id)(lambda token: deps.graph.get_user(token, mailbox))
    except ServiceError as err:
        logger.info("Could not read the user id of a mailbox of tenant %s (%s)", tenant_id, err.code)
        return None
    return str(user.user_id) or None


def _drop_subscription(deps: Dependencies, tenant_id: str, subscription_id: str) -> None:
    try:
        _app(deps, tenant_id)(lambda token: deps.graph.delete_subscription(token, subscription_id))
    except ServiceError as err:
        logger.info("Deleting a replaced subscription at Graph failed (%s); it expires by itself", err.code)
    deps.subscriptions.delete_subscription(tenant_id, subscription_id)


def _record_sync_error(deps: Dependencies, sync: MailboxSync, error: str) -> None:
    try:
        deps.subscriptions.update_mailbox_sync(replace(sync, last_error=error[:200], claimed_until=None))
    except ServiceError:
        logger.info("Could not record a mailbox sync error; the claim lapses by itself")


def _update_subscription(deps: Dependencies, tenant_id: str, subscription_id: str, **changes: Any) -> None:
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


# ---- renewing ---------------------------------------------------------------------------------
def renewal_horizon(deps: Dependencies) -> timedelta:
    """How far ahead the timer renews: past its next two runs, read from RENEWAL_SCHEDULE."""
    schedule = NCrontab.parse(deps.settings.require("RENEWAL_SCHEDULE"))
    now = deps.clock.now()
    first = schedule.next_after(now) or now
    second = schedule.next_after(first) or first
    # A margin on top: a late run, and Graph's reauthorization challenges near expiry.
    return (second - now) + timedelta(minutes=10)


def renew_subscriptions(deps: Dependencies, *, horizon: timedelta | None = None) -> RenewalReport:
    """The renewal timer: for every tenant, subscribe missing mailboxes, renew what expires within the
    horizon (``$batch`` when several), and re-create what Graph no longer knows, then catch up by delta."""
    horizon = horizon if horizon is not None else renewal_horizon(deps)
    report = RenewalReport()
    for tenant in deps.tenants.list_tenants():
        try:
            report = _renew_tenant(deps, tenant.tenant_id, horizon, report)
        except ServiceError as err:
            logger.warning("Renewal for tenant %s failed: %s", tenant.tenant_id, err.code)
            report = replace(report, failed=report.failed + 1)
    logger.info("Subscription renewal: %s", asdict(report))
    return report


def _renew_tenant(deps: Dependencies, tenant_id: str, horizon: timedelta, report: RenewalReport) -> RenewalReport:
    now = deps.clock.now()
    by_mailbox = {s.mailbox.lower(): s for s in deps.subscriptions.list_mailbox_syncs(tenant_id)}
    for mailbox in tenant_mailboxes(deps, tenant_id):
        sync = by_mailbox.get(mailbox.lower())
        if sync is None or not sync.subscription_id:
            try:
                if subscribe_mailbox(deps, tenant_id, mailbox, sync=sync) is not None:
                    report = replace(report, created=report.created + 1)
            except ServiceError as err:
                logger.warning("Subscribing a mailbox of tenant %s failed: %s", tenant_id, err.code)
                report = replace(report, failed=report.failed + 1)
    due = [s for s in deps.subscriptions.list_subscriptions(tenant_id) if s.expires_at <= now + horizon]
    if not due:
        return report
    target = now + timedelta(minutes=deps.settings.subscription_minutes)
    answers = _app(deps, tenant_id)(
        lambda token: deps.graph.renew_subscriptions(token, [(s.subscription_id, target) for s in due])
    )
    for sub in due:
        answer = answers.get(sub.subscription_id)
        if isinstance(answer, CreatedSubscription):
            _renewed(deps, sub, answer.expires_at)
            report = replace(report, renewed=report.renewed + 1)
        elif isinstance(answer, NotFound) or sub.expires_at <= now:
            report = _recreate(deps, sub, report, reason="Graph no longer knows it")
        else:
            reason = answer.code if isinstance(answer, ServiceError) else "no answer"
            _update_subscription(
                deps, tenant_id, sub.subscription_id, last_error=f"renewal failed: {reason}", last_error_at=now
            )
            report = replace(report, failed=report.failed + 1)
    return report


def _renewed(deps: Dependencies, sub: Subscription, expires_at: datetime) -> None:
    now = deps.clock.now()
    _update_subscription(
        deps,
        sub.tenant_id,
        sub.subscription_id,
        expires_at=expires_at,
        last_renewed_at=now,
        last_error=None,
        last_error_at=None,
    )

    def write_sync() -> None:
        sync = deps.subscriptions.get_mailbox_sync(sub.tenant_id, sub.mailbox)
        if sync.subscription_id == sub.subscription_id and sync.expires_at != expires_at:
            deps.subscriptions.update_mailbox_sync(replace(sync, expires_at=expires_at))

    with contextlib.suppress(NotFound):
        retry_on_conflict(write_sync)
    _remember(sub.tenant_id, sub.mailbox, expires_at)


def _recreate(deps: Dependencies, sub: Subscription, report: RenewalReport, *, reason: str) -> RenewalReport:
    logger.info("Re-creating a subscription of tenant %s: %s", sub.tenant_id, reason)
    _remember(sub.tenant_id, sub.mailbox, None)
    try:
        sync = deps.subscriptions.get_mailbox_sync(sub.tenant_id, sub.mailbox)
    except NotFound:
        sync = None
    if sync is not None and sync.subscription_id not in (None, sub.subscription_id):
        # Someone already replaced it: this row is a leftover.
        deps.subscriptions.delete_subscription(sub.tenant_id, sub.subscription_id)
        return report
    try:
        created = subscribe_mailbox(deps, sub.tenant_id, sub.mailbox, sync=sync)
    except ServiceError as err:
        _update_subscription(
            deps,
            sub.tenant_id,
            sub.subscription_id,
            last_error=f"re-create failed: {err.code}",
            last_error_at=deps.clock.now(),
        )
        return replace(report, failed=report.failed + 1)
    return replace(report, recreated=report.recreated + (created is not None))


# ---- lifecycle --------------------------------------------------------------------------------
def handle_lifecycle(deps: Dependencies, tenant_id: str, subscription_id: str, event: str) -> None:
    """reauthorizationRequired: renew (which also reauthorizes); subscriptionRemoved: re-create and
    catch up; missed: catch up; anything else: logged and ignored, as Graph advises."""
    try:
        sub = deps.subscriptions.get_subscription(tenant_id, subscription_id)
    except NotFound:
        logger.info("Lifecycle event %s for a subscription we no longer keep; ignored", event)
        return
    if event == "reauthorizationRequired":
        target = deps.clock.now() + timedelta(minutes=deps.settings.subscription_minutes)
        answers = _app(deps, tenant_id)(
            lambda token: deps.graph.renew_subscriptions(token, [(subscription_id, target)])
        )
        answer = answers.get(subscription_id)
        if isinstance(answer, CreatedSubscription):
            _renewed(deps, sub, answer.expires_at)
        elif isinstance(answer, NotFound):
            _recreate(deps, sub, RenewalReport(), reason="reauthorization found it gone")
        elif isinstance(answer, Exception):
            raise answer  # the queue retries the message
    elif event == "subscriptionRemoved":
        _recreate(deps, sub, RenewalReport(), reason="Graph removed it")
    elif event == "missed":
        catch_up(deps, tenant_id, sub.mailbox)
    else:
        logger.warning("Unknown lifecycle event %r for a subscription of tenant %s; ignored", event[:64], tenant_id)


# ---- reconciliation ---------------------------------------------------------------------------
def catch_up(deps: Dependencies, tenant_id: str, mailbox: str) -> int:
    """Follow the mailbox's delta link and queue what changed for the worker; a 410 (or a window older
    than ``DELTA_REOPEN_AFTER``) syncs the window afresh and queues every event in it. Returns how many
    changes were queued. Raises ServiceError (the next reconciliation tries again)."""
    sync = deps.subscriptions.get_mailbox_sync(tenant_id, mailbox)
    now = deps.clock.now()
    start, end = now - DELTA_PAST, now + DELTA_FUTURE
    link = sync.delta_link
    fresh = link is None or sync.delta_started_at is None or now - sync.delta_started_at > DELTA_REOPEN_AFTER
    full = fresh and link is not None  # a first baseline has nothing to catch up on
    opened = sync.delta_started_at if not fresh else now
    try:
        round_ = _app(deps, tenant_id)(
            lambda token: deps.graph.calendar_delta(
                token, mailbox, delta_link=None if fresh else link, start=start, end=end
            )
        )
    except DeltaExpired:
        logger.info("Graph expired a delta link of tenant %s; syncing the mailbox afresh", tenant_id)
        full, opened = True, now
        round_ = _app(deps, tenant_id)(
            lambda token: deps.graph.calendar_delta(token, mailbox, delta_link=None, start=start, end=end)
        )
    changes = list(round_.changes) if (full or not fresh) else []
    items = [
        {"t": tenant_id, "m": mailbox, "e": c.event_id, "c": "deleted" if c.removed else "updated"} for c in changes
    ]
    for message in encode_messages("sync", items, now):
        deps.notification_queue.send(message)

    def write() -> None:
        current = deps.subscriptions.get_mailbox_sync(tenant_id, mailbox)
        deps.subscriptions.update_mailbox_sync(
            replace(current, delta_link=round_.delta_link, delta_started_at=opened, last_delta_at=now, last_error=None)
        )

    retry_on_conflict(write)
    logger.info("Delta catch-up of a mailbox of tenant %s queued %d changes", tenant_id, len(items))
    return len(items)


def secondary_calendar_bookings(deps: Dependencies, tenant_id: str) -> list[tuple[str, str]]:
    """(mailbox, event id) of the tenant's live bookings in a secondary calendar within the delta window."""
    now = deps.clock.now()
    return [
        (b.mailbox, b.event_id)
        for b in deps.bookings.list_bookings_between(tenant_id, now - DELTA_PAST, now + DELTA_FUTURE)
        if b.calendar_id and b.event_id and b.status in LIVE
    ]


def reconcile_secondary_calendars(deps: Dependencies, tenant_id: str) -> int:
    """Queue every secondary-calendar booking's event for the worker, which reads it directly and applies
    it (no notification or primary-calendar delta ever reports these). Returns how many were queued."""
    items = [
        {"t": tenant_id, "m": mailbox, "e": event_id, "c": "updated"}
        for mailbox, event_id in secondary_calendar_bookings(deps, tenant_id)
    ]
    for message in encode_messages("sync", items, deps.clock.now()):
        deps.notification_queue.send(message)
    if items:
        logger.info("Reconciliation queued %d secondary-calendar bookings of tenant %s", len(items), tenant_id)
    return len(items)


def reconcile(deps: Dependencies) -> int:
    """The reconciliation timer: a delta catch-up of every subscribed mailbox, and a direct read of every
    secondary-calendar booking. Returns the changes queued."""
    flush_drops(deps)  # a quiet webhook still gets its drop counts into storage
    queued = 0
    for tenant in deps.tenants.list_tenants():
        try:
            queued += reconcile_secondary_calendars(deps, tenant.tenant_id)
        except ServiceError as err:
            logger.warning("Reconciling secondary calendars of tenant %s failed: %s", tenant.tenant_id, err.code)
    unanswered: set[tuple[str, str]] = set()
    for sync in deps.subscriptions.list_mailbox_syncs():
        try:
            queued += catch_up(deps, sync.tenant_id, sync.mailbox)
        except ServiceError as err:
            logger.warning("Reconciliation of a mailbox of tenant %s failed: %s", sync.tenant_id, err.code)
            unanswered.add((sync.tenant_id, sync.mailbox.lower()))
            try:
                current = deps.subscriptions.get_mailbox_sync(sync.tenant_id, sync.mailbox)
                deps.subscriptions.update_mailbox_sync(replace(current, last_error=f"delta failed: {err.code}"))
            except ServiceError:
                pass
    replay_poison(deps, unanswered=unanswered)
    return queued


# ---- poison replay ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayReport:
    replayed: int = 0  # moved back to the queue
    held: int = 0  # left for the next run: Graph did not answer one of their mailboxes in this one
    unreadable: int = 0  # not a message we wrote: left where it is


def replay_poison(
    deps: Dependencies, *, unanswered: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset()
) -> ReplayReport:
    """Move what reached ``<queue>-poison`` back to the queue, attempt counter reset and replay count raised;
    a message naming a mailbox in ``unanswered`` ((tenant, lower-cased mailbox) whose Graph catch-up just
    failed) waits for the next run. Copy first, then delete: a crash duplicates (the worker is idempotent),
    never loses. Never raises (logged; the next run goes on)."""
    queue = deps.notification_queue
    report = ReplayReport()
    mailboxes: dict[tuple[str, str], str | None] = {}
    waiting: list[QueuedMessage] = []  # held or unreadable: visible again once this run is over
    try:
        while sum((report.replayed, report.held, report.unreadable)) < POISON_REPLAY_MAX:
            batch = queue.receive_poison(max_messages=32, lease=POISON_LEASE)
            if not batch:
                break
            for message in batch:
                report, replayed = _replay_one(deps, message, unanswered, mailboxes, report)
                if not replayed:
                    waiting.append(message)
        now = deps.clock.now()
        for message in waiting:
            if message.expires_at is not None and message.expires_at - now < POISON_REWRITE_BEFORE:
                queue.keep_poison(message)
            else:
                queue.release_poison(message)
    except ServiceError as err:
        logger.warning("Replaying the poison queue failed (%s); the next reconciliation goes on", err.code)
    if report.replayed:
        try:
            deps.subscriptions.add_dropped(POISON_SCOPE, {"replayed": report.replayed})
        except ServiceError as err:
            logger.info("Could not count the replayed poison messages (%s)", err.code)
    if report != ReplayReport():
        logger.info("Poison queue replay: %s", asdict(report))
    return report


def _replay_one(
    deps: Dependencies,
    message: QueuedMessage,
    unanswered: set[tuple[str, str]] | frozenset[tuple[str, str]],
    mailboxes: dict[tuple[str, str], str | None],
    report: ReplayReport,
) -> tuple[ReplayReport, bool]:
    try:
        envelope = decode_message(message.text)
    except InvalidRequest:
        logger.warning("A poison message %s is not one we wrote; left in the poison queue", message.message_id)
        return replace(report, unreadable=report.unreadable + 1), False
    if _mailboxes_of(deps, envelope, mailboxes) & unanswered:
        return replace(report, held=report.held + 1), False
    deps.notification_queue.send(replace(envelope, attempt=0, replays=envelope.replays + 1).encode())
    deps.notification_queue.delete_poison(message)
    return replace(report, replayed=report.replayed + 1), True


def _mailboxes_of(
    deps: Dependencies, envelope: QueueEnvelope, known: dict[tuple[str, str], str | None]
) -> set[tuple[str, str]]:
    """(tenant, lower-cased mailbox) of every item: named by catch-up items, from our record for the rest."""
    found: set[tuple[str, str]] = set()
    for item in envelope.items:
        tenant_id = item.get("t", "")
        if item.get("m"):
            found.add((tenant_id, item["m"].lower()))
            continue
        key = (tenant_id, item.get("s", ""))
        if key not in known:
            try:
                known[key] = deps.subscriptions.get_subscription(*key).mailbox.lower()
            except (NotFound, ValueError):
                known[key] = None
        mailbox = known[key]
        if mailbox is not None:
            found.add((tenant_id, mailbox))
    return found


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


# ---- health -----------------------------------------------------------------------------------
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
