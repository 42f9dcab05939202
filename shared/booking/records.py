"""A booking's identity (its id and key hash), its history and the attendees it invited: the vocabulary
the booking modules share.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from shared.booking.request import whole_seconds
from shared.errors import ReauthRequired
from shared.identity.guard import RequestContext
from shared.models import (
    AccessToken,
    AttendeeResponse,
    Booking,
    BookingStatus,
    HistoryEntry,
    ObservedAttendee,
    ObservedEvent,
)

HISTORY_LIMIT = 200


@dataclass(frozen=True)
class BookingOutcome:
    booking: Booking
    created: bool  # this request booked it (201); otherwise it returns an earlier request's booking (200)


@dataclass(frozen=True)
class BookingPage:
    bookings: tuple[Booking, ...]
    after: str | None


def booking_id_for(tenant_id: str, key: str) -> str:
    """26 lower-case base32 characters: the same (tenant, key) always names the same booking."""
    digest = hashlib.sha256(f"booking|{tenant_id}|{key}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:26].lower()


def key_hash(tenant_id: str, key: str) -> str:
    return hashlib.sha256(f"idempotency|{tenant_id}|{key}".encode()).hexdigest()


def offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def same_time(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Equal at the precision booking times are kept (``whole_seconds``): a booking stored before times
    were normalised is not mistaken for drift."""
    return (whole_seconds(a[0]), whole_seconds(a[1])) == (whole_seconds(b[0]), whole_seconds(b[1]))


def entry(booking: Booking, entry: HistoryEntry) -> tuple[HistoryEntry, ...]:
    return (*booking.history, entry)[-HISTORY_LIMIT:]


def user_access(ctx: RequestContext) -> AccessToken:
    if ctx.user_access is None:  # the two-token guard always sets it for calendar calls
        raise ReauthRequired("Sign in again.")
    return ctx.user_access


def invited(booking: Booking) -> tuple[ObservedAttendee, ...]:
    """Everyone the booking's event invites, as the event was drafted: interviewers, optional ones, candidate."""
    return (
        *(ObservedAttendee(email=e, type="required") for e in booking.interviewers),
        *(ObservedAttendee(email=e, type="optional") for e in booking.optional_interviewers),
        *((ObservedAttendee(email=booking.candidate_email, type="required"),) if booking.candidate_email else ()),
    )


def booked_with(
    pending: Booking, event: ObservedEvent, *, at: datetime, actor: str, action: str, warnings: tuple[str, ...]
) -> Booking:
    """The pending booking, booked: the event Graph holds, no response from anyone yet, and the history."""
    return replace(
        pending,
        status=BookingStatus.BOOKED,
        event_id=event.event_id,
        ical_uid=event.ical_uid,
        join_url=event.join_url,
        claimed_until=None,
        responses=tuple(
            ObservedAttendee(email=a.email, type=a.type, response=AttendeeResponse.NONE) for a in invited(pending)
        ),
        warnings=warnings,
        history=entry(pending, HistoryEntry(at=at, actor=actor, action=action, detail=f"event in {pending.mailbox}")),
        updated_at=at,
    )
