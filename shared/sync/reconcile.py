"""Reconciliation: what notifications missed. Each mailbox's ``calendarView/delta`` link (encrypted) is caught
up into the notification queue (Graph's 410 starts a full resync of the window); bookings in secondary
calendars, which raise no notification, are read directly; and the poison queue is replayed once Graph
answers again (nothing is discarded; a message naming a mailbox whose catch-up failed waits for the next run).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import timedelta

from shared.errors import (
    InvalidRequest,
    NotFound,
    ServiceError,
)
from shared.models import BookingStatus, QueuedMessage
from shared.ports import Dependencies
from shared.sync.delta import DELTA_FUTURE, DELTA_PAST, catch_up
from shared.sync.intake import (
    QueueEnvelope,
    decode_message,
    encode_messages,
    flush_drops,
)

logger = logging.getLogger(__name__)


LIVE = (BookingStatus.BOOKED, BookingStatus.DRIFTED)
POISON_SCOPE = "poison"  # the service-wide counters row of the poison-queue replay (webhookdrops table)
POISON_LEASE = timedelta(minutes=5)  # a received poison message stays hidden while this run decides on it
POISON_REPLAY_MAX = 512  # poison messages looked at per reconciliation run
POISON_REWRITE_BEFORE = timedelta(days=2)  # a held message this close to its expiry is rewritten without one


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
