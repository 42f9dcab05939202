"""The notification worker's core: turn one queue message into booking updates.

A message holds change notifications (from the webhook), lifecycle notifications, or delta
catch-up items (from reconciliation); all name a tenant and an event id. For a change the event is
read from Graph with the tenant's app token (only the fields needed) and handed to the booking core's
``apply_observed_event``, which finds the booking through our extended property, records responses
and drift, and is idempotent: the same change delivered twice updates the booking once. Any failure
raises, so the queue delivers the message again; after 5 attempts it goes to ``<queue>-poison``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.booking import apply_observed_event
from shared.errors import InvalidRequest, NotFound
from shared.models import Booking, ObservedEvent
from shared.ports import Dependencies
from shared.subscriptions import handle_lifecycle, record_notification
from shared.tokens import with_app_token
from shared.webhooks import CHANGE_TYPES, EVENT_ID, LIFECYCLE_EVENT, MESSAGE_VERSION, SUBSCRIPTION_ID

logger = logging.getLogger(__name__)

ApplyObserved = Callable[..., Booking | None]


@dataclass(frozen=True)
class WorkReport:
    events: int = 0  # events read and applied
    bookings_updated: int = 0  # of those, events that are ours
    lifecycle: int = 0
    skipped: int = 0  # notifications for subscriptions we no longer keep


def parse_message(text: str) -> tuple[str, list[dict[str, str]]]:
    """The kind and items of a queue message. Raises InvalidRequest for anything we did not write."""
    try:
        body = json.loads(text)
    except ValueError as err:
        raise InvalidRequest("The queue message is not JSON.") from err
    if (
        not isinstance(body, dict)
        or body.get("v") != MESSAGE_VERSION
        or body.get("k") not in ("change", "lifecycle", "sync")
    ):
        raise InvalidRequest("The queue message is not a notification message.")
    items = body.get("n")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidRequest("The queue message has no notification list.")
    return str(body["k"]), [{str(k): str(v) for k, v in i.items()} for i in items]


def process_message(deps: Dependencies, text: str, *, apply: ApplyObserved | None = None) -> WorkReport:
    """Apply every notification in one queue message. Raises for anything that should be retried."""
    kind, items = parse_message(text)
    apply = apply or apply_observed_event
    report = WorkReport()
    # The last change per event wins (created then deleted in one batch is a delete).
    changes: dict[tuple[str, str, str], str] = {}
    seen_subscriptions: set[tuple[str, str]] = set()
    for item in items:
        tenant_id = item.get("t", "")
        if kind == "lifecycle":
            sub_id, event = item.get("s", ""), item.get("l", "")
            if SUBSCRIPTION_ID.fullmatch(sub_id) and LIFECYCLE_EVENT.fullmatch(event):
                handle_lifecycle(deps, tenant_id, sub_id, event)
                report = WorkReport(report.events, report.bookings_updated, report.lifecycle + 1, report.skipped)
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
                report = WorkReport(report.events, report.bookings_updated, report.lifecycle, report.skipped + 1)
                continue
            seen_subscriptions.add((tenant_id, sub_id))
        else:
            mailbox = item.get("m", "")
        changes[(tenant_id, mailbox, event_id)] = change
    for (tenant_id, mailbox, event_id), change in changes.items():
        observed = None if change == "deleted" else read_event(deps, tenant_id, mailbox, event_id)
        booking = apply(deps, tenant_id, event_id=event_id, observed=observed, seen_at=deps.clock.now())
        report = WorkReport(
            report.events + 1, report.bookings_updated + (booking is not None), report.lifecycle, report.skipped
        )
    for tenant_id, sub_id in seen_subscriptions:
        record_notification(deps, tenant_id, sub_id)
    return report


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
    }
