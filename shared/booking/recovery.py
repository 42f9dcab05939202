"""Nothing left half-done: a pending booking whose request died (a worker killed, storage failing after
Graph wrote the event) is settled on a timer, not only when a request with the same key comes back.

The timer takes the pending booking's lease the way a retry would, looks the event up by our extended
property (with the same permission the booking writes with), and then either records the booking the
event proves or forgets the pending row (and its slot claims), so that it no longer counts toward caps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from shared.booking.claims import CLAIM_LEASE, grid_cells
from shared.booking.records import booked_with
from shared.booking.write_rule import Writer, decide_writer
from shared.errors import ConcurrencyConflict, NotFound, ServiceError
from shared.identity.tokens import with_app_token, with_user_token
from shared.models import AccessToken, Booking, ObservedEvent, Tenant
from shared.ports import Dependencies
from shared.sync.subscriptions import ensure_mailbox_subscription

logger = logging.getLogger(__name__)

# A pending booking is left to its own request (and that request's retries) for this long after its lease
# ran out: requests answer within their deadline, so one still pending by then has died.
SETTLE_AFTER = timedelta(minutes=2)
RECOVERY_ACTOR = "service"


@dataclass(frozen=True)
class RecoveryReport:
    recovered: int = 0  # Graph held the event: the booking is now booked
    forgotten: int = 0  # Graph held no event: the pending row and its claims are gone
    left: int = 0  # could not be settled now (Graph or storage failing, the recruiter must sign in again)


def recover_pending_bookings(deps: Dependencies) -> RecoveryReport:
    """Settle every pending booking whose request has died, in every tenant. Never raises for one booking."""
    recovered = forgotten = left = 0
    cutoff = deps.clock.now() - SETTLE_AFTER
    for tenant in deps.tenants.list_tenants():
        for pending in deps.bookings.list_pending_bookings(tenant.tenant_id):
            lapsed_at = pending.claimed_until or pending.updated_at or pending.created_at
            if lapsed_at is not None and lapsed_at > cutoff:
                continue
            try:
                outcome = _settle(deps, tenant, pending)
            except ServiceError as err:
                logger.warning("Pending booking %s not settled now: %s", pending.booking_id, err.describe())
                outcome = "left"
            recovered += outcome == "recovered"
            forgotten += outcome == "forgotten"
            left += outcome == "left"
    report = RecoveryReport(recovered=recovered, forgotten=forgotten, left=left)
    if recovered or forgotten or left:
        logger.info("Pending bookings: %s recovered, %s forgotten, %s left for later", recovered, forgotten, left)
    return report


def _settle(deps: Dependencies, tenant: Tenant, pending: Booking) -> str:
    now = deps.clock.now()
    try:  # take the lease as a retry would, so a request with the same key arriving now waits for us
        mine = deps.bookings.update_booking(replace(pending, claimed_until=now + CLAIM_LEASE))
    except (ConcurrencyConflict, NotFound):
        return "left"  # a request with the key took it over, or finished it, meanwhile
    event = _find_event(deps, tenant, mine)
    if event is None:
        # Nothing reached Graph: forget the booking, as its request would have, and its slot claims.
        for person in mine.interviewers:
            deps.bookings.release_slots(mine.tenant_id, person, mine.booking_id, grid_cells(mine.start, mine.end))
        deps.bookings.delete_booking(mine.tenant_id, mine.booking_id)
        logger.info("Pending booking %s forgotten: Graph holds no event of it", mine.booking_id)
        return "forgotten"
    booked = booked_with(mine, event, at=now, actor=RECOVERY_ACTOR, action="recovered", warnings=mine.warnings)
    stored = deps.bookings.update_booking(booked)
    logger.info("Pending booking %s recovered from the event Graph holds", stored.booking_id)
    ensure_mailbox_subscription(deps, stored.tenant_id, stored.mailbox)
    return "recovered"


def _find_event(deps: Dependencies, tenant: Tenant, booking: Booking) -> ObservedEvent | None:
    """The booking's event by our property, read with the permission the write rule gives its calendar
    (decided afresh, as a retry would): the app's for an interviewer's own mailbox, otherwise the
    recruiter's own delegated token."""

    def find(token: AccessToken) -> ObservedEvent | None:
        return deps.events.find_event_by_booking(
            token, booking.mailbox, booking.booking_id, calendar_id=booking.calendar_id
        )

    fields = {address: "interviewers" for address in (*booking.interviewers, *booking.optional_interviewers)}
    writer = decide_writer(deps, booking.tenant_id, tenant, booking.mailbox, fields, check=False)
    if writer is Writer.APP:
        return with_app_token(deps, booking.tenant_id, find, known=tenant)
    if booking.created_by is None:
        raise NotFound("The booking names no recruiter whose access could read its calendar.")
    return with_user_token(deps, deps.users.get_user(booking.tenant_id, booking.created_by), find)
