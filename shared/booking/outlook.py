"""What Outlook did to our events (attendees' responses, moves, deletions), applied to the bookings: the
notification worker and reconciliation hand each observed event here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.booking.change import is_changing
from shared.booking.claims import follow_claims
from shared.booking.records import HISTORY_LIMIT, entry, same_time
from shared.conflicts import retry_on_conflict
from shared.errors import NotFound
from shared.models import (
    AttendeeResponse,
    Booking,
    BookingStatus,
    HistoryEntry,
    ObservedEvent,
)
from shared.ports import Dependencies


def apply_observed_event(
    deps: Dependencies, tenant_id: str, *, event_id: str, observed: ObservedEvent | None, seen_at: datetime
) -> Booking | None:
    """Record what Outlook shows of one of our events: each attendee's response (accepted, declined,
    tentative, and a proposed new time when there is one) with a timestamp in the booking's history, and
    drift (the interview moved, edited or deleted/cancelled in Outlook by someone else) in its state and
    history. Idempotent: the same observation applied twice changes nothing. ``observed=None`` means the
    event is gone (deleted). Returns None when the event is not one of our bookings."""
    booking = _booking_of(deps, tenant_id, event_id, observed)
    if booking is None:
        return None
    if booking.event_id != event_id:
        return booking  # an attendee's copy: the organizer's event is the one we follow

    before: list[Booking] = []

    def write() -> Booking:
        current = deps.bookings.get_booking(tenant_id, booking.booking_id)
        before[:] = [current]
        changed = _observe(current, observed, seen_at)
        if changed is current:
            return current
        return deps.bookings.update_booking(changed)

    stored = retry_on_conflict(write)
    if before and before[0] is not stored:
        follow_claims(deps, before[0], stored)
    return stored


def _booking_of(deps: Dependencies, tenant_id: str, event_id: str, observed: ObservedEvent | None) -> Booking | None:
    if observed is not None and observed.booking_id:
        try:
            return deps.bookings.get_booking(tenant_id, observed.booking_id)
        except NotFound:
            pass
    try:
        return deps.bookings.find_booking_by_event(tenant_id, event_id)
    except NotFound:
        return None


def _observe(booking: Booking, observed: ObservedEvent | None, seen_at: datetime) -> Booking:
    """The booking after this observation; the same object when nothing changes."""
    if booking.status in (BookingStatus.PENDING, BookingStatus.FAILED):
        return booking
    if observed is None or observed.is_cancelled:
        if booking.status is BookingStatus.CANCELLED:
            return booking
        what = "deleted in Outlook" if observed is None else "cancelled in Outlook"
        return replace(
            booking,
            status=BookingStatus.CANCELLED,
            history=entry(booking, HistoryEntry(seen_at, "outlook", "drifted", what)),
            updated_at=seen_at,
        )
    entries: list[HistoryEntry] = []
    updates: dict[str, Any] = {}
    # While a PATCH holds the booking, Graph may already show what it is writing (its notification can
    # arrive before the booking records the change): that is ours, not drift, and the PATCH records it.
    changing = is_changing(booking, seen_at)
    in_flight: tuple[datetime, datetime] | None = None
    if changing and booking.change_start is not None and booking.change_end is not None:
        in_flight = (booking.change_start, booking.change_end)
    seen = (observed.start, observed.end)
    if not same_time(seen, (booking.start, booking.end)) and not (in_flight and same_time(seen, in_flight)):
        entries.append(
            HistoryEntry(
                seen_at,
                "outlook",
                "drifted",
                f"moved from {booking.start.isoformat()} to {observed.start.isoformat()}-{observed.end.isoformat()}",
            )
        )
        updates.update(start=observed.start, end=observed.end)
    if (
        observed.subject
        and observed.subject != booking.subject
        and not (changing and observed.subject == booking.change_subject)
    ):
        entries.append(HistoryEntry(seen_at, "outlook", "drifted", "subject edited"))
        updates["subject"] = observed.subject
    # A PATCH in flight restores a Teams meeting Graph dropped on the way: not drift either.
    if booking.online_meeting and booking.join_url and observed.join_url != booking.join_url and not changing:
        entries.append(HistoryEntry(seen_at, "outlook", "drifted", "the Teams meeting changed or was removed"))
        updates["join_url"] = observed.join_url
    known = {r.email: r for r in booking.responses}
    for attendee in observed.attendees:
        before = known.get(attendee.email)
        answer = (attendee.response, attendee.proposed_start, attendee.proposed_end)
        if before is not None and (before.response, before.proposed_start, before.proposed_end) == answer:
            continue
        if attendee.response in (AttendeeResponse.NONE, AttendeeResponse.NOT_RESPONDED) and before is None:
            continue  # a new attendee who has not answered: nothing to tell
        detail = attendee.response.value
        if attendee.proposed_start is not None and attendee.proposed_end is not None:
            detail += f", proposed {attendee.proposed_start.isoformat()} to {attendee.proposed_end.isoformat()}"
        entries.append(HistoryEntry(attendee.responded_at or seen_at, attendee.email, "responded", detail))
    if observed.attendees != booking.responses:
        updates["responses"] = observed.attendees
    if not entries and "responses" not in updates:
        return booking
    drifted = any(e.action == "drifted" for e in entries)
    return replace(
        booking,
        **updates,
        status=BookingStatus.DRIFTED if drifted else booking.status,
        history=(*booking.history, *entries)[-HISTORY_LIMIT:],
        observed_change_key=observed.change_key,
        updated_at=seen_at,
    )
