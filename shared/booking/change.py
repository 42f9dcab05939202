"""Moving and cancelling an interview: only our own events, If-Match serializing moves through a short lease
on the booking row, the slot checked and claimed again for a new time.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from shared.booking.claims import CLAIM_LEASE, grid_cells, release_all
from shared.booking.freebusy import busy_people, field_names, not_known_free, slot_unavailable
from shared.booking.listing import get_booking
from shared.booking.placement import on_calendar, with_writer
from shared.booking.records import HISTORY_LIMIT, entry, invited, same_time
from shared.booking.request import BookingChange
from shared.cache.keeper import note_written
from shared.conflicts import retry_on_conflict
from shared.errors import (
    ConcurrencyConflict,
    NotFound,
    NotOurEvent,
    PreconditionFailed,
    PreconditionRequired,
    ServiceError,
    UpstreamUnavailable,
)
from shared.identity.guard import RequestContext
from shared.models import (
    AccessToken,
    Booking,
    BookingStatus,
    EventDraft,
    HistoryEntry,
    ObservedAttendee,
    ObservedEvent,
)
from shared.ports import Dependencies

logger = logging.getLogger(__name__)


def _same_etag(stored: str | None, sent: str) -> bool:
    return stored is not None and stored.removeprefix("W/").strip('"') == sent


def _checked(deps: Dependencies, ctx: RequestContext, booking_id: str, etag: str | None) -> Booking:
    booking = get_booking(deps, ctx, booking_id)
    if etag is None:
        raise PreconditionRequired("Send If-Match with the booking's ETag (from GET /api/bookings/{id}).")
    if not _same_etag(booking.etag, etag):
        raise PreconditionFailed("The booking changed since you read it; read it again and retry.")
    return booking


def _our_event(deps: Dependencies, ctx: RequestContext, booking: Booking) -> ObservedEvent:
    """The booking's event as Graph shows it now; raises NotOurEvent when it lacks our property."""
    if booking.event_id is None:
        raise NotFound("The booking has no event.")
    event_id = booking.event_id
    event = on_calendar(
        deps, ctx, booking.mailbox, booking.delegated, lambda t: deps.events.get_event(t, booking.mailbox, event_id)
    )
    if event.booking_id != booking.booking_id:
        logger.warning("booking %s: event %s does not carry our property; refused", booking.booking_id, event_id)
        raise NotOurEvent("This event was not created by this service, so it will not be changed.")
    return event


def is_changing(booking: Booking, now: datetime) -> bool:
    """Whether a PATCH holds the booking now (its lease has not run out)."""
    return booking.change_id is not None and booking.claimed_until is not None and booking.claimed_until > now


def _unheld(booking: Booking) -> Booking:
    return replace(booking, change_id=None, claimed_until=None, change_start=None, change_end=None, change_subject=None)


def _take(deps: Dependencies, booking: Booking, start: datetime, end: datetime, subject: str) -> Booking:
    """Take the booking for one change, conditionally on the version the client named, before anything is
    written to Graph: of two requests sent with the same If-Match only one gets it, and only that one writes
    the calendar. The lease runs out by itself (CLAIM_LEASE) when the process holding it dies. Raises
    PreconditionFailed when the booking changed since it was read (another request took it first)."""
    held = replace(
        booking,
        change_id=secrets.token_hex(8),
        claimed_until=deps.clock.now() + CLAIM_LEASE,
        change_start=start,
        change_end=end,
        change_subject=subject,
    )
    try:
        return deps.bookings.update_booking(held)
    except ConcurrencyConflict:
        raise PreconditionFailed("The booking changed since you read it; read it again and retry.") from None


def _put_back(deps: Dependencies, held: Booking, err: ServiceError) -> None:
    """After a failure before (or instead of) the Graph write: give the booking up at once, so the next
    change need not wait for the lease to run out, and tell the client the ETag it now has (the booking
    is otherwise as it was, so a retry may send it)."""

    def write() -> Booking:
        current = deps.bookings.get_booking(held.tenant_id, held.booking_id)
        if current.change_id != held.change_id:
            return current
        return deps.bookings.update_booking(_unheld(current))

    try:
        err.details.setdefault("etag", retry_on_conflict(write).etag)
    except ServiceError as failed:
        logger.warning("booking %s: could not give up its change lease: %s", held.booking_id, failed.message)


def update_booking(
    deps: Dependencies, ctx: RequestContext, booking_id: str, etag: str | None, change: BookingChange
) -> Booking:
    """Move the interview or change its people, subject, body or location. Only the request that takes the
    booking (``_take``) writes to Graph. Raises NotFound, PreconditionRequired, PreconditionFailed (also to
    the loser of two changes sent with the same If-Match), NotOurEvent, SlotUnavailable, ConcurrencyConflict
    (another change of the booking is in progress)."""
    booking = _changeable(deps, ctx, booking_id, etag)
    booking = with_writer(deps, ctx, booking, change)
    event = _our_event(deps, ctx, booking)
    plan = _plan(booking, event, change)
    if plan.claiming:
        _check_free(deps, ctx, plan, event)
    draft = _draft(booking, change, plan)
    held = _take(deps, booking, plan.start, plan.end, change.subject or booking.subject)
    claimed = _claim_and_write(deps, ctx, booking, event, held, plan, draft)
    # Graph holds the change from here on: the booking records it even when reading the event back fails.
    try:
        after, restored = _keep_meeting(deps, ctx, booking, event)
    except ServiceError as err:
        logger.warning("booking %s: the changed event could not be read back: %s", booking.booking_id, err.message)
        after, restored = None, False
    now = deps.clock.now()
    entries = _history(ctx, booking, change, plan, after, restored=restored, now=now)
    stored = _record(deps, ctx, booking, held, _changed(change, plan, after, entries, now), claimed, plan)
    _release_stale(deps, booking, plan)
    note_written(deps, ctx.tenant_id, _calendars(booking, stored))
    return stored


def _changeable(deps: Dependencies, ctx: RequestContext, booking_id: str, etag: str | None) -> Booking:
    """The booking at the version the client named, booked and held by no other change."""
    booking = _checked(deps, ctx, booking_id, etag)
    if booking.status not in (BookingStatus.BOOKED, BookingStatus.DRIFTED):
        raise ConcurrencyConflict(f"A {booking.status.value} booking cannot be changed.")
    if is_changing(booking, deps.clock.now()):
        raise ConcurrencyConflict("Another change of this booking is in progress; read it again in a few seconds.")
    return booking


@dataclass(frozen=True)
class _Plan:
    """What a change makes of the booking: its new time and people, and what of it Graph is told."""

    start: datetime
    end: datetime
    interviewers: tuple[str, ...]
    optional: tuple[str, ...]
    attendees: tuple[ObservedAttendee, ...]
    location: str | None
    moved: bool
    people_changed: bool
    write_time: bool
    claiming: bool  # the new time or people are checked and claimed


def _plan(booking: Booking, event: ObservedEvent, change: BookingChange) -> _Plan:
    start, end = change.start or booking.start, change.end or booking.end
    interviewers = change.interviewers if change.interviewers is not None else booking.interviewers
    optional = (
        change.optional_interviewers if change.optional_interviewers is not None else booking.optional_interviewers
    )
    moved = (start, end) != (booking.start, booking.end)
    people_changed = (interviewers, optional) != (booking.interviewers, booking.optional_interviewers)
    return _Plan(
        start=start,
        end=end,
        interviewers=interviewers,
        optional=optional,
        attendees=invited(replace(booking, interviewers=interviewers, optional_interviewers=optional)),
        location=None if change.clear_location else (change.location or booking.location),
        moved=moved,
        people_changed=people_changed,
        # Graph may show another time than the booking when an earlier change died after writing it.
        write_time=moved or not same_time((event.start, event.end), (start, end)),
        claiming=(moved or people_changed) and change.check_availability,
    )


def _fresh(booking: Booking, plan: _Plan, person: str) -> list[datetime]:
    """The cells of the new time that ``person`` does not already hold for this booking."""
    old_cells = grid_cells(booking.start, booking.end)
    return [c for c in grid_cells(plan.start, plan.end) if person not in booking.interviewers or c not in old_cells]


def _release_claimed(deps: Dependencies, booking: Booking, plan: _Plan, claimed: list[str]) -> None:
    for person in claimed:
        release_all(deps, booking, [person], _fresh(booking, plan, person))


def _check_free(deps: Dependencies, ctx: RequestContext, plan: _Plan, event: ObservedEvent) -> None:
    """Raises SlotUnavailable unless every interviewer is known to be free at the new time (the event's own
    time counts as free)."""
    refusal = not_known_free(
        busy_people(
            deps,
            ctx,
            plan.interviewers,
            (),
            plan.start,
            plan.end,
            ours=(event.start, event.end),
            fields=field_names(plan.interviewers, ()),
        )
    )
    if refusal is not None:
        raise refusal


def _draft(booking: Booking, change: BookingChange, plan: _Plan) -> EventDraft:
    """What Graph is told: only what changes."""
    return EventDraft(
        subject=change.subject,
        body=change.body,
        start=plan.start if plan.write_time else None,
        end=plan.end if plan.write_time else None,
        attendees=plan.attendees if plan.people_changed else None,
        names=((booking.candidate_email, booking.candidate_name),)
        if booking.candidate_email and booking.candidate_name
        else (),
        location=(plan.location or "") if (change.location is not None or change.clear_location) else None,
    )


def _claim_and_write(
    deps: Dependencies,
    ctx: RequestContext,
    booking: Booking,
    event: ObservedEvent,
    held: Booking,
    plan: _Plan,
    draft: EventDraft,
) -> list[str]:
    """Claim the new time for each interviewer (when it is checked), then write the event; the interviewers
    claimed. On a failure the claims are released and the booking given up before the error goes on."""
    claimed: list[str] = []
    try:
        for person in plan.interviewers if plan.claiming else ():
            try:
                deps.bookings.claim_slots(ctx.tenant_id, person, booking.booking_id, _fresh(booking, plan, person))
            except ConcurrencyConflict:
                raise slot_unavailable([person]) from None
            claimed.append(person)
        event_id = event.event_id
        on_calendar(
            deps,
            ctx,
            booking.mailbox,
            booking.delegated,
            lambda t: deps.events.update_event(t, booking.mailbox, event_id, draft),
        )
    except ServiceError as err:
        _release_claimed(deps, booking, plan, claimed)
        _put_back(deps, held, err)
        raise
    return claimed


def _history(
    ctx: RequestContext,
    booking: Booking,
    change: BookingChange,
    plan: _Plan,
    after: ObservedEvent | None,
    *,
    restored: bool,
    now: datetime,
) -> list[HistoryEntry]:
    entries: list[HistoryEntry] = []
    if plan.moved:
        detail = f"{plan.start.isoformat()} to {plan.end.isoformat()}"
        entries.append(HistoryEntry(now, ctx.user.user_id, "moved", detail))
    changed = [n for n in ("subject", "body", "location") if getattr(change, n) is not None] + (
        ["location"] if change.clear_location else []
    )
    if plan.people_changed:
        changed.append("attendees")
    if changed:
        entries.append(HistoryEntry(now, ctx.user.user_id, "updated", ", ".join(changed)))
    if restored and after is not None:
        same = after.join_url == booking.join_url
        detail = "the same Teams meeting" if same else "a new Teams meeting was attached"
        entries.append(HistoryEntry(now, "service", "meeting_restored", detail))
    return entries


def _changed(
    change: BookingChange, plan: _Plan, after: ObservedEvent | None, entries: list[HistoryEntry], now: datetime
) -> Callable[[Booking], Booking]:
    """The booking as stored now, with the change recorded and the booking given up."""

    def apply(current: Booking) -> Booking:
        # Responses the notification worker recorded meanwhile are kept.
        known = {r.email: r for r in current.responses}
        return replace(
            _unheld(current),
            start=plan.start,
            end=plan.end,
            subject=change.subject or current.subject,
            interviewers=plan.interviewers,
            optional_interviewers=plan.optional,
            attendees=tuple(a.email for a in plan.attendees),
            location=plan.location,
            join_url=(after.join_url if after is not None else None) or current.join_url,
            responses=tuple(known.get(a.email, ObservedAttendee(email=a.email, type=a.type)) for a in plan.attendees),
            status=BookingStatus.BOOKED,
            history=(*current.history, *entries)[-HISTORY_LIMIT:],
            observed_change_key=after.change_key if after is not None else current.observed_change_key,
            updated_at=now,
        )

    return apply


def _record(
    deps: Dependencies,
    ctx: RequestContext,
    booking: Booking,
    held: Booking,
    changed: Callable[[Booking], Booking],
    claimed: list[str],
    plan: _Plan,
) -> Booking:
    """Store what Graph now holds (``changed`` of the booking as read again), unless the booking was
    cancelled or taken over meanwhile. Raises UpstreamUnavailable when storage fails, ConcurrencyConflict
    when the booking was cancelled or taken over (releasing the new claims of a cancelled one)."""
    last_read: list[Booking] = []

    def write() -> Booking | None:
        # Re-read: the notification worker may have recorded responses meanwhile (the lease is kept).
        current = deps.bookings.get_booking(ctx.tenant_id, booking.booking_id)
        last_read[:] = [current]
        if current.change_id != held.change_id or current.status not in (BookingStatus.BOOKED, BookingStatus.DRIFTED):
            return None
        return deps.bookings.update_booking(changed(current))

    try:
        stored = retry_on_conflict(write)
    except ServiceError as err:
        # The lease runs out by itself; meanwhile the worker takes Graph's new state for ours, not for drift.
        logger.warning("booking %s: Graph holds the change but storage failed: %s", booking.booking_id, err.message)
        raise UpstreamUnavailable(
            "The change was written to the calendar but could not be recorded; read the booking again and "
            "retry in a minute.",
            retry_after=60,
        ) from err
    if stored is None:
        logger.warning("booking %s: cancelled or taken over while this change was written", booking.booking_id)
        if last_read and last_read[0].status is BookingStatus.CANCELLED:
            _release_claimed(deps, booking, plan, claimed)
        raise ConcurrencyConflict("The booking was cancelled or changed by another request meanwhile; read it again.")
    return stored


def _release_stale(deps: Dependencies, booking: Booking, plan: _Plan) -> None:
    """Release the claims the booking no longer needs: its old time and people, and those of a change
    whose process died (``change_start``/``change_end``)."""
    old_cells, new_cells = grid_cells(booking.start, booking.end), grid_cells(plan.start, plan.end)
    left: list[datetime] = []
    if booking.change_start is not None and booking.change_end is not None:
        left = grid_cells(booking.change_start, booking.change_end)
    for person in dict.fromkeys((*booking.interviewers, *plan.interviewers)):
        keep = new_cells if person in plan.interviewers else []
        held_before = old_cells if (plan.moved or plan.people_changed) and person in booking.interviewers else []
        stale = [c for c in dict.fromkeys((*held_before, *left)) if c not in keep]
        if stale:
            release_all(deps, booking, [person], stale)


def _keep_meeting(
    deps: Dependencies, ctx: RequestContext, booking: Booking, before: ObservedEvent
) -> tuple[ObservedEvent, bool]:
    """Read the event back after a PATCH; when Graph dropped the Teams meeting, turn it on again (Graph
    brings back the same meeting while it still exists) and read once more for the join URL. The event,
    and whether a dropped meeting was brought back."""
    event_id = before.event_id

    def read(t: AccessToken) -> ObservedEvent:
        return deps.events.get_event(t, booking.mailbox, event_id)

    after = on_calendar(deps, ctx, booking.mailbox, booking.delegated, read)
    if not booking.online_meeting or (after.is_online_meeting and after.join_url):
        return after, False
    logger.warning("booking %s: the PATCH dropped the Teams meeting; restoring it", booking.booking_id)
    restore = EventDraft(online_meeting=True)
    on_calendar(
        deps,
        ctx,
        booking.mailbox,
        booking.delegated,
        lambda t: deps.events.update_event(t, booking.mailbox, event_id, restore),
    )
    restored = on_calendar(deps, ctx, booking.mailbox, booking.delegated, read)
    return restored, bool(restored.is_online_meeting and restored.join_url)


def cancel_booking(
    deps: Dependencies, ctx: RequestContext, booking_id: str, message: str | None, etag: str | None = None
) -> Booking:
    """Cancel the interview: as organizer, Graph's cancel tells the attendees (with ``message``); otherwise
    our copy is deleted. Cancelling a cancelled booking returns it unchanged. Raises NotFound, NotOurEvent,
    PreconditionFailed (only when ``etag`` is sent and stale)."""
    booking = get_booking(deps, ctx, booking_id)
    if etag is not None and not _same_etag(booking.etag, etag):
        raise PreconditionFailed("The booking changed since you read it; read it again and retry.")
    if booking.status is BookingStatus.CANCELLED:
        return booking
    if booking.status is BookingStatus.PENDING:
        raise ConcurrencyConflict("The booking is still being made; read it again in a few seconds.")
    booking = with_writer(deps, ctx, booking, None)
    action = "cancelled"
    try:
        event = _our_event(deps, ctx, booking)
    except NotFound:
        event = None
        action = "cancelled (the event was already gone)"
    if event is not None and not event.is_cancelled:
        event_id = event.event_id
        if event.organizer is None or event.organizer == booking.mailbox.lower():
            on_calendar(
                deps,
                ctx,
                booking.mailbox,
                booking.delegated,
                lambda t: deps.events.cancel_event(t, booking.mailbox, event_id, message or ""),
            )
        else:
            action = "deleted (not the organizer)"
            on_calendar(
                deps,
                ctx,
                booking.mailbox,
                booking.delegated,
                lambda t: deps.events.delete_event(t, booking.mailbox, event_id),
            )
    now = deps.clock.now()

    def write() -> Booking:
        current = deps.bookings.get_booking(ctx.tenant_id, booking_id)
        if current.status is BookingStatus.CANCELLED:
            return current
        return deps.bookings.update_booking(
            replace(
                current,
                delegated=booking.delegated,
                status=BookingStatus.CANCELLED,
                history=entry(current, HistoryEntry(now, ctx.user.user_id, action, message or "")),
                updated_at=now,
            )
        )

    stored = retry_on_conflict(write)
    release_all(deps, booking, booking.interviewers, grid_cells(booking.start, booking.end))
    note_written(deps, ctx.tenant_id, _calendars(booking))
    return stored


def _calendars(*bookings: Booking) -> list[str]:
    """Every mailbox whose calendar a write to these bookings' event touched: the organizer's, and each
    attendee's copy."""
    return [address for b in bookings for address in (b.mailbox, *b.attendees, *b.interviewers)]
