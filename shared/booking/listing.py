"""Reading bookings: one by id, and the recruiter's bookings in a time range, page by page."""

from __future__ import annotations

from shared.booking.records import BookingPage
from shared.booking.request import (
    PAGE_SIZE,
    BookingQuery,
)
from shared.errors import NotFound
from shared.identity.guard import RequestContext
from shared.models import (
    Booking,
    BookingStatus,
)
from shared.ports import Dependencies


def get_booking(deps: Dependencies, ctx: RequestContext, booking_id: str) -> Booking:
    """The caller's tenant's booking, ``pending`` while a request is still making it. Raises NotFound
    when there is no such booking (a refused request never made one)."""
    try:
        booking = deps.bookings.get_booking(ctx.tenant_id, booking_id)
    except NotFound:
        raise NotFound("No such booking.") from None
    if booking.status is BookingStatus.FAILED:
        raise NotFound("No such booking.")
    return booking


def list_bookings(deps: Dependencies, ctx: RequestContext, query: BookingQuery) -> BookingPage:
    """The tenant's bookings overlapping the range in start order, a full page at a time; storage reads
    only the range (and only the interviewer's bookings when one is asked for)."""
    found, after = deps.bookings.page_bookings(
        ctx.tenant_id, query.start, query.end, after=query.after, limit=PAGE_SIZE, attendee=query.interviewer
    )
    return BookingPage(bookings=tuple(found), after=after)
