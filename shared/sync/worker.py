"""The notification worker's core: turn one queue message into booking updates.

A message holds change notifications (from the webhook), lifecycle notifications, or delta
catch-up items (from reconciliation); all name a tenant and an event id. For a change the event is
read from Graph with the tenant's app token (only the fields needed) in the mailbox of OUR stored
subscription record (never a mailbox the notification names) and handed to the booking core's
``apply_observed_event``, which finds the booking through our extended property, records responses
and drift, and is idempotent: the same change delivered twice updates the booking once. An event
that is gone (deleted, or 404 on reading) cancels a booking only when it was read in the mailbox
that holds the booking; gone from any other mailbox it changes nothing.

Retries (``run_message``): a transient failure (Graph throttled or unavailable, storage or the identity
platform unreachable, a lost ETag race) re-enqueues the message with an attempt counter and an initial
invisibility of ``NOTIFICATION_RETRY_SECONDS`` x 2^attempt (4, 8, 16, 32, 64 s by default: about two
minutes), and the invocation succeeds so the host deletes the original. After ``MAX_DELAYED_RETRIES`` or
for any other failure it raises: the Functions host then tries it up to ``maxDequeueCount`` times and
moves it to ``<queue>-poison``, from where reconciliation replays it once Graph answers again
(``shared.sync.subscriptions.replay_poison``). Storage queue triggers have no host retry policy with backoff
of their own (host.json's ``visibilityTimeout`` is one fixed delay), so the backoff lives here and works
the same on Azure and on the local host.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.booking.outlook import apply_observed_event
from shared.errors import (
    ConcurrencyConflict,
    GraphRequestFailed,
    NotFound,
    ServiceError,
    UpstreamError,
)
from shared.identity.tokens import with_app_token
from shared.models import Booking, ObservedEvent
from shared.ports import Dependencies
from shared.sync.intake import (
    CHANGE_TYPES,
    EVENT_ID,
    LIFECYCLE_EVENT,
    SUBSCRIPTION_ID,
    QueueEnvelope,
    decode_message,
    encode_messages,
)
from shared.sync.renewal import handle_lifecycle
from shared.sync.subscriptions import record_notification

logger = logging.getLogger(__name__)

ApplyObserved = Callable[..., Booking | None]


@dataclass(frozen=True)
class WorkReport:
    events: int = 0  # events read and applied
    bookings_updated: int = 0  # of those, events that are ours
    lifecycle: int = 0
    skipped: int = 0  # notifications for subscriptions we no longer keep
    foreign: int = 0  # events whose booking lives in another mailbox than the one reported: nothing changed
    retried: int = 0  # 1 when the message was queued again for a delayed retry
    unrelated: int = 0  # events that are none of our bookings: not read from Graph
    deferred: int = 0  # events queued again to wait for a booking still being made in their mailbox


MAX_DELAYED_RETRIES = 5
IN_FLIGHT_CLOCK_MARGIN = timedelta(minutes=5)  # instances' clocks may differ: a booking this much newer counts
IN_FLIGHT_MARGIN = timedelta(seconds=2)  # after a pending booking's lease, before its event is looked up again
IN_FLIGHT_RECHECK = timedelta(seconds=30)  # how often a notification looks again once a pending booking's lease ran out
# Past this a notification waits no more (a pending booking is settled by its request within its lease or by
# the recovery timer within minutes); were the event a booking's after all, reconciliation's delta catch-up of
# the mailbox reports it again once the booking is stored.
IN_FLIGHT_GIVE_UP = timedelta(minutes=15)
TRANSIENT_GRAPH_REASONS = frozenset({"throttled", "unavailable", "other"})


def parse_message(text: str) -> tuple[str, list[dict[str, str]]]:
    """The kind and items of a queue message. Raises InvalidRequest for anything we did not write."""
    envelope = decode_message(text)
    return envelope.kind, list(envelope.items)


def is_transient(err: BaseException) -> bool:
    """Whether a failure is worth a delayed retry: Graph throttled or unavailable, storage or the identity
    platform unreachable, a lost ETag race. An access policy, a missing permission or a revoked consent is
    not (those go to the poison queue at once and are replayed once Graph answers that mailbox again)."""
    if isinstance(err, GraphRequestFailed):
        return err.reason in TRANSIENT_GRAPH_REASONS
    return isinstance(err, (UpstreamError, ConcurrencyConflict))


def retry_delay(base_seconds: float, attempt: int) -> timedelta:
    """How long a message stays invisible before its retry number ``attempt + 1`` (whole seconds, as the
    queue counts them)."""
    return timedelta(seconds=math.ceil(base_seconds * 2**attempt))


def run_message(deps: Dependencies, text: str, *, apply: ApplyObserved | None = None) -> WorkReport:
    """The queue trigger's body: process the message; on a transient failure queue it again with a longer
    initial invisibility and return (the host deletes this copy). Raises for anything else, for the
    last retry, and when the copy cannot be queued (the host then retries this one)."""
    envelope = decode_message(text)
    try:
        return process_envelope(deps, envelope, apply=apply)
    except ServiceError as err:
        if not is_transient(err) or envelope.attempt >= MAX_DELAYED_RETRIES:
            raise
        delay = retry_delay(deps.settings.notification_retry_seconds, envelope.attempt)
        deps.notification_queue.send(replace(envelope, attempt=envelope.attempt + 1).encode(), delay=delay)
        logger.warning(
            "A notification message failed on attempt %d (%s); queued again, due in %d s",
            envelope.attempt + 1,
            err.code,
            int(delay.total_seconds()),
        )
        return WorkReport(retried=1)


def process_message(deps: Dependencies, text: str, *, apply: ApplyObserved | None = None) -> WorkReport:
    """Apply every notification in one queue message. Raises for anything that should be retried."""
    return process_envelope(deps, decode_message(text), apply=apply)


def process_envelope(deps: Dependencies, envelope: QueueEnvelope, *, apply: ApplyObserved | None = None) -> WorkReport:
    """Apply every notification of one decoded queue message. Raises for anything that should be retried."""
    kind, items = envelope.kind, envelope.items
    apply = apply or apply_observed_event
    report = WorkReport()
    # The last change per event wins (created then deleted in one batch is a delete).
    changes: dict[tuple[str, str, str], tuple[str, dict[str, str]]] = {}
    seen_subscriptions: set[tuple[str, str]] = set()
    for item in items:
        tenant_id = item.get("t", "")
        if kind == "lifecycle":
            sub_id, event = item.get("s", ""), item.get("l", "")
            if SUBSCRIPTION_ID.fullmatch(sub_id) and LIFECYCLE_EVENT.fullmatch(event):
                handle_lifecycle(deps, tenant_id, sub_id, event)
                report = replace(report, lifecycle=report.lifecycle + 1)
            continue
        event_id, change = item.get("e", ""), item.get("c", "")
        if not EVENT_ID.fullmatch(event_id) or change not in CHANGE_TYPES:
            continue
        if kind == "change":
            sub_id = item.get("s", "")
            try:
                mailbox = deps.subscriptions.get_subscription(tenant_id, sub_id).mailbox
            except NotFound:
                # Replaced since Graph sent it: the replacement's delta catch-up covers the change.
                report = replace(report, skipped=report.skipped + 1)
                continue
            seen_subscriptions.add((tenant_id, sub_id))
        else:
            mailbox = item.get("m", "")
        changes[(tenant_id, mailbox, event_id)] = (change, item)
    in_flight = _InFlight(deps, _received_at(envelope))
    deferred: list[dict[str, str]] = []
    for (tenant_id, mailbox, event_id), (change, item) in changes.items():
        booking = _booking_of_event(deps, tenant_id, event_id)
        if booking is None and in_flight.may_hold(tenant_id, mailbox):
            # A booking in this mailbox is still being made: the event may be its own, whose id is stored
            # only once Graph has answered the create. Looked up once more (it may have been stored since
            # the first look), then left for later rather than read or dropped.
            booking = _booking_of_event(deps, tenant_id, event_id)
            if booking is None:
                deferred.append(item)
                continue
        if booking is None:
            # Not one of our bookings (every booking's event id is in storage once it is booked, and a
            # booking being made was waited for above): nothing of it is read from Graph.
            report = replace(report, unrelated=report.unrelated + 1)
            continue
        if booking.mailbox.strip().lower() != mailbox.strip().lower():
            # The event is in another mailbox than the one this subscription (or catch-up) watches: an id
            # of one mailbox names nothing in another, so there is nothing to read here, and "gone from
            # here" says nothing about the booking's event. (Microsoft's documentation does not say in so many
            # words that an event id is meaningful only in its own mailbox; attendees' copies carry ids of
            # their own, and reading another mailbox's id answers 404 in practice.)
            logger.warning(
                "Ignored a change of an event of tenant %s reported from a mailbox that does not hold its booking %s",
                tenant_id,
                booking.booking_id,
            )
            report = replace(report, foreign=report.foreign + 1)
            continue
        observed = None if change == "deleted" else read_event(deps, tenant_id, mailbox, event_id)
        stored = apply(deps, tenant_id, event_id=event_id, observed=observed, seen_at=deps.clock.now())
        report = replace(
            report, events=report.events + 1, bookings_updated=report.bookings_updated + (stored is not None)
        )
    if deferred:
        delay = in_flight.wait()
        for message in encode_messages(kind, deferred, _received_at(envelope) or deps.clock.now()):
            deps.notification_queue.send(message, delay=delay)
        report = replace(report, deferred=report.deferred + len(deferred))
        logger.info(
            "%d notifications wait %d s for bookings still being made in their mailbox",
            len(deferred),
            int(delay.total_seconds()),
        )
    for tenant_id, sub_id in seen_subscriptions:
        record_notification(deps, tenant_id, sub_id)
    return report


def _booking_of_event(deps: Dependencies, tenant_id: str, event_id: str) -> Booking | None:
    try:
        return deps.bookings.find_booking_by_event(tenant_id, event_id)
    except NotFound:
        return None


def _received_at(envelope: QueueEnvelope) -> datetime | None:
    try:
        moment = datetime.fromisoformat(envelope.at)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class _InFlight:
    """Bookings still being made (``pending``) per mailbox, read once per message.

    A booking's event id is stored in the same write that books it, after Graph answered the create;
    the event's own notifications (and an attendee's answer or a move made at once) can be processed
    before that. Such a notification is about an event that existed when it was received, so only a
    booking made pending before then (with a margin for clocks of different instances) can own it."""

    def __init__(self, deps: Dependencies, received: datetime | None) -> None:
        self._deps = deps
        self._received = received
        self._found: dict[tuple[str, str], list[Booking]] = {}

    def may_hold(self, tenant_id: str, mailbox: str) -> bool:
        if self._received is not None and self._deps.clock.now() - self._received > IN_FLIGHT_GIVE_UP:
            return False
        key = (tenant_id, mailbox.strip().lower())
        if key not in self._found:
            pending = self._deps.bookings.list_pending_bookings_in(tenant_id, mailbox)
            if self._received is not None:
                latest = self._received + IN_FLIGHT_CLOCK_MARGIN
                pending = [b for b in pending if b.created_at is None or b.created_at <= latest]
            self._found[key] = pending
        return bool(self._found[key])

    def wait(self) -> timedelta:
        """How long deferred notifications wait: until the earliest of those bookings' requests must have
        answered (the rest of its lease, at most a minute), a little more; a lease already run out means the
        request died and the recovery timer settles the booking, so they look again every 30 s."""
        now = self._deps.clock.now()
        leases = [b.claimed_until for found in self._found.values() for b in found if b.claimed_until is not None]
        live = [lease - now for lease in leases if lease > now]
        if not live:
            return IN_FLIGHT_RECHECK
        return timedelta(seconds=math.ceil((min(live) + IN_FLIGHT_MARGIN).total_seconds()))


def read_event(deps: Dependencies, tenant_id: str, mailbox: str, event_id: str) -> ObservedEvent | None:
    """The event as Graph shows it now, or None when it is gone."""
    try:
        return with_app_token(deps, tenant_id, lambda token: deps.events.get_event(token, mailbox, event_id))
    except NotFound:
        return None


def describe(report: WorkReport) -> dict[str, Any]:
    return {
        "events": report.events,
        "bookings_updated": report.bookings_updated,
        "lifecycle": report.lifecycle,
        "skipped": report.skipped,
        "foreign": report.foreign,
        "retried": report.retried,
        "unrelated": report.unrelated,
        "deferred": report.deferred,
    }
