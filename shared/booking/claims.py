"""Slot claims: per-interviewer cells on a 5-minute grid, inserted atomically in storage, so two instances
booking the same interviewer at once cannot both win.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from shared.errors import (
    ConcurrencyConflict,
    ServiceError,
)
from shared.models import (
    Booking,
    BookingStatus,
)
from shared.ports import Dependencies

logger = logging.getLogger(__name__)


GRID = timedelta(minutes=5)  # slot claims: 8 hours are 96 cells, inside one table transaction (100)
CLAIM_LEASE = timedelta(seconds=60)  # how long a pending booking belongs to the request that inserted it


def grid_cells(start: datetime, end: datetime) -> list[datetime]:
    """The 5-minute cells [start, end) touches, from the cell holding ``start``."""
    epoch = datetime(2000, 1, 1, tzinfo=start.tzinfo)
    cell = epoch + ((start - epoch) // GRID) * GRID
    cells = []
    while cell < end:
        cells.append(cell)
        cell += GRID
    return cells


def claim_all(
    deps: Dependencies, tenant_id: str, booking_id: str, people: Sequence[str], cells: Sequence[datetime]
) -> list[str]:
    """Claim the cells for everyone; on a conflict release what this call claimed and return who is taken."""
    claimed: list[str] = []
    taken: list[str] = []
    for person in people:
        try:
            deps.bookings.claim_slots(tenant_id, person, booking_id, cells)
            claimed.append(person)
        except ConcurrencyConflict:
            taken.append(person)
    if taken:
        for person in claimed:
            deps.bookings.release_slots(tenant_id, person, booking_id, cells)
    return taken


def claimant(tenant_id: str, booking_id: str) -> Booking:
    """Enough of a booking to release its claims."""
    moment = datetime.min.replace(tzinfo=UTC)
    return Booking(tenant_id=tenant_id, booking_id=booking_id, mailbox="", start=moment, end=moment, subject="")


def release_all(deps: Dependencies, booking: Booking, people: Sequence[str], cells: Sequence[datetime]) -> None:
    for person in people:
        try:
            deps.bookings.release_slots(booking.tenant_id, person, booking.booking_id, cells)
        except ServiceError as err:
            logger.warning("Could not release slot claims of %s: %s", booking.booking_id, err.message)


def follow_claims(deps: Dependencies, old: Booking, new: Booking) -> None:
    """Keep the interviewers' slot claims where the interview now is: released when it was cancelled or
    deleted in Outlook, moved with it when it was moved there."""
    cancelled = BookingStatus.CANCELLED
    moved = (old.start, old.end) != (new.start, new.end)
    if old.status is cancelled or not (moved or new.status is cancelled):
        return
    release_all(deps, old, old.interviewers, grid_cells(old.start, old.end))
    if new.status is cancelled:
        return
    for person in new.interviewers:
        try:
            deps.bookings.claim_slots(new.tenant_id, person, new.booking_id, grid_cells(new.start, new.end))
        except ConcurrencyConflict:
            # Moved in Outlook onto time another booking of ours holds: recorded as drift on the booking.
            logger.warning("booking %s was moved onto time another booking holds", new.booking_id)
        except (ValueError, ServiceError) as err:
            logger.warning("booking %s: its new time could not be claimed (%s)", new.booking_id, err)
