"""Creating an interview exactly once: the booking row under the Idempotency-Key, inserted before Graph is
called, the slot checked and claimed, the event written, and a refusal kept so every retry gets it again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta

from shared import threads
from shared.booking.claims import CLAIM_LEASE, grid_cells, release_all
from shared.booking.freebusy import BOOKING_THREADS, FreeBusy, busy_people, check_slot, field_names
from shared.booking.placement import on_calendar, recruiter_writes, target_of
from shared.booking.records import BookingOutcome, booked_with, booking_id_for, invited, key_hash, offset_minutes
from shared.booking.request import BookingRequest
from shared.cache.keeper import note_written
from shared.errors import (
    ConcurrencyConflict,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    NotFound,
    ServiceError,
    SlotUnavailable,
    UpstreamUnavailable,
    error_from_code,
)
from shared.identity.guard import RequestContext
from shared.models import (
    Booking,
    BookingStatus,
    EventDraft,
    ObservedEvent,
)
from shared.ports import Dependencies
from shared.sync.subscriptions import ensure_mailbox_subscription

logger = logging.getLogger(__name__)


WAIT_FOR_OTHER = timedelta(seconds=20)  # how long a request with the same key waits for the first
POLL_SECONDS = 0.1
# A refused request's answer is kept under its key this long: every retry with the key gets it again.
REFUSAL_LIFETIME = timedelta(hours=24)


# Refusals whose answer a race decides (someone else took the slot) are kept under the key, so retries
# cannot get another answer once the race moves on. Others are answered afresh: an unknown interviewer
# stays unknown, and sign-in, consent and outages, once fixed, should let a retry with the key book.
KEPT_REFUSALS: tuple[type[ServiceError], ...] = (SlotUnavailable,)


MAX_TAKEOVERS = 5  # times one request starts afresh after an earlier request with its key let it go
SECONDARY_CALENDAR_WARNING = (
    "The event is in a calendar other than the mailbox's primary one, which raises no change notification: "
    "attendees' responses and changes made there are picked up by the periodic reconciliation only."
)


def create_booking(
    deps: Dependencies,
    ctx: RequestContext,
    request: BookingRequest,
    key: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> BookingOutcome:
    """Book the interview once per Idempotency-Key. Raises IdempotencyKeyReused, IdempotencyKeyInProgress,
    SlotUnavailable, InvalidRequest (unknown interviewer), NoAccessToCalendar, UpstreamError."""
    pending = _pending(deps, ctx, request, key)
    # The free/busy check goes to Graph while the pending booking goes to storage: the waits overlap.
    # A repeated request reads free/busy for nothing, which costs a read and changes nothing.
    pool = threads.pool("booking", BOOKING_THREADS)
    writer_check = pool.submit(
        recruiter_writes, deps, ctx, pending.mailbox, request.interviewers, request.optional_interviewers
    )
    busy_check = pool.submit(
        busy_people,
        deps,
        ctx,
        request.interviewers,
        request.optional_interviewers,
        request.start,
        request.end,
        fields=field_names(request.interviewers, request.optional_interviewers),
    )
    stored, recovering = _claim_key(deps, pending, sleep)
    if stored.status is not BookingStatus.PENDING:
        return BookingOutcome(stored, created=False)
    booked = _book(deps, ctx, request, stored, busy_check, writer_check, recovering=recovering)
    note_written(deps, ctx.tenant_id, [booked.mailbox, *booked.attendees, *booked.interviewers])
    return BookingOutcome(booked, created=True)


def _pending(deps: Dependencies, ctx: RequestContext, request: BookingRequest, key: str) -> Booking:
    """The booking row a request starts with, under its key: pending, with this request's lease."""
    now = deps.clock.now()
    target = target_of(ctx, request)
    attendees = (*request.interviewers, *request.optional_interviewers)
    if request.candidate is not None:
        attendees = (*attendees, request.candidate.email)
    return Booking(
        tenant_id=ctx.tenant_id,
        booking_id=booking_id_for(ctx.tenant_id, key),
        mailbox=target.mailbox,
        start=request.start,
        end=request.end,
        subject=request.subject,
        status=BookingStatus.PENDING,
        transaction_id=key,
        attendees=attendees,
        created_by=ctx.user.user_id,
        created_at=now,
        calendar=request.calendar,
        calendar_id=target.calendar_id,
        delegated=target.delegated,
        interviewers=request.interviewers,
        optional_interviewers=request.optional_interviewers,
        candidate_email=request.candidate.email if request.candidate else None,
        candidate_name=request.candidate.name if request.candidate else None,
        location=request.location,
        online_meeting=request.online_meeting,
        idempotency_key_hash=key_hash(ctx.tenant_id, key),
        fingerprint=request.fingerprint(),
        display_offset_minutes=offset_minutes(request.start),
        notify_candidate=request.notify_candidate,
        claimed_until=now + CLAIM_LEASE,
        updated_at=now,
    )


def _claim_key(deps: Dependencies, pending: Booking, sleep: Callable[[float], None]) -> tuple[Booking, bool]:
    """Insert the pending booking, or find what an earlier request with the same key made of it:
    (its finished booking, False); (the pending booking with this request's lease, True) when it stopped
    half-way. Raises the earlier request's refusal, IdempotencyKeyReused or IdempotencyKeyInProgress."""
    for _ in range(MAX_TAKEOVERS):
        try:
            return deps.bookings.create_booking(pending), False
        except ConcurrencyConflict:
            pass
        try:
            stored = _earlier(deps, pending, sleep)
        except NotFound:
            continue  # the earlier request failed before writing anything and let the key go: start afresh
        if stored.status is BookingStatus.FAILED:
            raise _refusal_of(stored)
        return stored, stored.status is BookingStatus.PENDING
    raise IdempotencyKeyInProgress(
        "Requests with this Idempotency-Key keep failing and retrying; retry in a few seconds.", retry_after=2
    )


def _refusal_of(booking: Booking) -> ServiceError:
    """The error a refused request answered, as it answered it."""
    kept = json.loads(booking.refusal or "{}")
    return error_from_code(
        str(kept.get("code", "conflict")), str(kept.get("message", "This request was refused.")), kept.get("details")
    )


def _earlier(deps: Dependencies, pending: Booking, sleep: Callable[[float], None]) -> Booking:
    """The booking an earlier request with the same key made, once it is done (or the answer it was
    refused with); or, when that request's lease ran out or was given up, the pending booking with a new
    lease for this request to finish. A refusal past its lifetime lets the key start afresh. Raises
    NotFound when the earlier request let the key go."""
    tenant_id, booking_id = pending.tenant_id, pending.booking_id
    give_up = deps.clock.now() + WAIT_FOR_OTHER
    while True:
        current = deps.bookings.get_booking(tenant_id, booking_id)
        now = deps.clock.now()
        lapsed = current.claimed_until is None or current.claimed_until <= now
        if current.status is BookingStatus.FAILED and lapsed:
            try:  # the refusal has lived its life: the key is free again, for any request
                return deps.bookings.update_booking(replace(pending, etag=current.etag))
            except ConcurrencyConflict:
                continue
        if current.fingerprint != pending.fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different booking request; use a new key."
            )
        if current.status is not BookingStatus.PENDING:
            return current
        if lapsed:
            try:
                return deps.bookings.update_booking(replace(current, claimed_until=now + CLAIM_LEASE))
            except ConcurrencyConflict:
                continue  # another request took it over first: wait for that one instead
        if now >= give_up:
            raise IdempotencyKeyInProgress(
                "A request with this Idempotency-Key is still being processed; retry in a few seconds.",
                retry_after=2,
            )
        sleep(POLL_SECONDS)


def _give_up(deps: Dependencies, pending: Booking, *, forget: bool) -> None:
    """After a failure: forget the pending booking (nothing was written to Graph, so the key may be used
    again) or release its lease (Graph may have the event: the next request with the key recovers it)."""
    try:
        if forget:
            deps.bookings.delete_booking(pending.tenant_id, pending.booking_id)
        else:
            current = deps.bookings.get_booking(pending.tenant_id, pending.booking_id)
            if current.status is BookingStatus.PENDING:
                deps.bookings.update_booking(replace(current, claimed_until=None))
    except ServiceError as err:
        logger.warning("Could not release pending booking %s: %s", pending.booking_id, err.describe())


def _refuse(deps: Dependencies, pending: Booking, error: ServiceError) -> None:
    """Nothing was written to Graph and the request was refused for what it asked: keep that answer under
    its key (status ``failed``, never listed or counted), so every retry gets the same one."""
    now = deps.clock.now()
    refusal = json.dumps({"code": error.code, "message": error.message, "details": error.details})
    try:
        current = deps.bookings.get_booking(pending.tenant_id, pending.booking_id)
        if current.status is BookingStatus.PENDING:
            deps.bookings.update_booking(
                replace(
                    current,
                    status=BookingStatus.FAILED,
                    refusal=refusal,
                    claimed_until=now + REFUSAL_LIFETIME,
                    updated_at=now,
                )
            )
    except ServiceError as err:
        # Not kept: a retry starts afresh and is refused (or booked) on its own merits.
        logger.warning("Could not keep the refusal of booking %s: %s", pending.booking_id, err.describe())
        _give_up(deps, pending, forget=True)


def _draft(request: BookingRequest, pending: Booking) -> EventDraft:
    names = []
    if request.candidate is not None and request.candidate.name:
        names.append((request.candidate.email, request.candidate.name))
    return EventDraft(
        subject=request.subject,
        body=request.body,
        start=request.start,
        end=request.end,
        attendees=invited(pending),
        names=tuple(names),
        location=request.location,
        online_meeting=request.online_meeting,
        booking_id=pending.booking_id,
        transaction_id=pending.transaction_id,
    )


def _book(
    deps: Dependencies,
    ctx: RequestContext,
    request: BookingRequest,
    pending: Booking,
    busy_check: Future[FreeBusy],
    writer_check: Future[bool],
    *,
    recovering: bool,
) -> Booking:
    try:
        pending = replace(pending, delegated=writer_check.result())
    except ServiceError:
        # Nothing was written to Graph by this request: forget the pending booking so the key may be used again.
        _give_up(deps, pending, forget=not recovering)
        raise
    cells = grid_cells(request.start, request.end)
    event = _recovered_event(deps, ctx, request, pending, cells) if recovering else None
    warnings: list[str] = []
    if event is None:
        warnings = _checked_slot(deps, ctx, request, pending, cells, busy_check, recovering=recovering)
        event = _created_event(deps, ctx, request, pending, cells)
    if pending.calendar_id is not None:
        warnings.append(SECONDARY_CALENDAR_WARNING)
    if request.online_meeting and not event.join_url:
        warnings.append("Microsoft Graph created the event without a Teams meeting.")
    stored = _store_booked(deps, ctx, pending, event, tuple(warnings), recovering=recovering)
    logger.info("booking %s %s in %s", stored.booking_id, "recovered" if recovering else "created", stored.mailbox)
    # Changes to the event reach us only from a subscription on the mailbox that organises it: a worker's
    # memory answers for mailboxes already subscribed; a new organizer is subscribed now (never raises).
    ensure_mailbox_subscription(deps, stored.tenant_id, stored.mailbox)
    return stored


def _recovered_event(
    deps: Dependencies, ctx: RequestContext, request: BookingRequest, pending: Booking, cells: list[datetime]
) -> ObservedEvent | None:
    """The event an earlier request with the key wrote before it stopped, found by our property. Its
    attendees now show it as busy, so the slot is not checked again for an event that exists: the
    interviewers' claims are taken over as they stand."""
    try:
        event = on_calendar(
            deps,
            ctx,
            pending.mailbox,
            pending.delegated,
            lambda t: deps.events.find_event_by_booking(
                t, pending.mailbox, pending.booking_id, calendar_id=pending.calendar_id
            ),
        )
    except ServiceError:
        _give_up(deps, pending, forget=False)
        raise
    if event is not None and request.check_availability:
        for person in request.interviewers:
            try:
                deps.bookings.claim_slots(ctx.tenant_id, person, pending.booking_id, cells)
            except ConcurrencyConflict:
                logger.warning("booking %s: recovered over another booking's claim", pending.booking_id)
    return event


def _checked_slot(
    deps: Dependencies,
    ctx: RequestContext,
    request: BookingRequest,
    pending: Booking,
    cells: list[datetime],
    busy_check: Future[FreeBusy],
    *,
    recovering: bool,
) -> list[str]:
    """Check and claim the slot; its warnings. A refusal a race decided is kept under the key; after any
    other failure the pending booking is forgotten (nothing was written to Graph)."""
    try:
        return check_slot(deps, ctx, request, pending.booking_id, cells, busy_check)
    except KEPT_REFUSALS as err:
        _refuse(deps, pending, err)
        raise
    except ServiceError:
        # Nothing was written to Graph: forget the pending booking so the key may be used again.
        _give_up(deps, pending, forget=not recovering)
        raise


def _created_event(
    deps: Dependencies, ctx: RequestContext, request: BookingRequest, pending: Booking, cells: list[datetime]
) -> ObservedEvent:
    draft = _draft(request, pending)
    try:
        return on_calendar(
            deps,
            ctx,
            pending.mailbox,
            pending.delegated,
            lambda t: deps.events.create_event(t, pending.mailbox, draft, calendar_id=pending.calendar_id),
        )
    except ServiceError:
        release_all(deps, pending, request.interviewers, cells)
        # The event may exist (a create whose answer was lost): keep the booking for recovery.
        _give_up(deps, pending, forget=False)
        raise


def _store_booked(
    deps: Dependencies,
    ctx: RequestContext,
    pending: Booking,
    event: ObservedEvent,
    warnings: tuple[str, ...],
    *,
    recovering: bool,
) -> Booking:
    """Record the event Graph holds. Raises UpstreamUnavailable when storage fails (a retry with the same
    Idempotency-Key finishes the booking)."""
    booked = booked_with(
        pending,
        event,
        at=deps.clock.now(),
        actor=ctx.user.user_id,
        action="recovered" if recovering else "created",
        warnings=warnings,
    )
    try:
        return deps.bookings.update_booking(booked)
    except ServiceError as err:
        logger.warning("Booking %s: Graph holds the event but storage failed: %s", pending.booking_id, err.message)
        _give_up(deps, pending, forget=False)
        raise UpstreamUnavailable(
            "The interview was written to the calendar but could not be recorded; retry with the same "
            "Idempotency-Key to finish.",
            retry_after=1,
        ) from err
