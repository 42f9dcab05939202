"""Booking: interviews created, moved and cancelled on Office 365 calendars, exactly once, only ours.

- Exactly once: the booking id derives from the tenant and the Idempotency-Key, and the booking row
  (status ``pending``, the request's fingerprint, a short lease) is inserted conditionally before Graph
  is called; whoever inserts it books, everyone else with the same key waits for that booking. The key
  is the event's ``transactionId``, and every event carries our extended property with the booking id,
  so a request that takes over a stale lease first looks the event up by that property.
- No double booking: one getSchedule just before writing (unreadable is never free), then per-interviewer
  slot claims on a 5-minute grid, inserted atomically in storage, settle races between instances.
- Only our events: PATCH and DELETE read the event first and refuse one without our property.
- Whose permission writes: ``shared.write_rule`` decides, for a create and again for every PATCH and
  DELETE (the booking records the answer): the app's only for an interviewer's own user mailbox in the
  tenant, the recruiter's delegated token for everything else (the Interviews mailbox above all).
- Free/busy that could not be read is never reported as busy: 503 ``graph_unavailable``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from shared.booking_request import (
    INTERVIEWS,
    PAGE_SIZE,
    BookingChange,
    BookingQuery,
    BookingRequest,
    whole_seconds,
)
from shared.conflicts import retry_on_conflict
from shared.errors import (
    ConcurrencyConflict,
    GraphRequestFailed,
    GraphUnavailable,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    NoAccessToCalendar,
    NotFound,
    NotOurEvent,
    PreconditionFailed,
    PreconditionRequired,
    ReauthRequired,
    ServiceError,
    SlotUnavailable,
    UpstreamUnavailable,
    error_from_code,
)
from shared.models import (
    AccessToken,
    AttendeeResponse,
    Booking,
    BookingStatus,
    EventDraft,
    FreeBusyStatus,
    HistoryEntry,
    ObservedAttendee,
    ObservedEvent,
    Schedule,
    ScheduleStatus,
)
from shared.ports import Dependencies
from shared.readiness import RECRUITING_GROUP  # the group that holds access to the shared mailboxes
from shared.session_guard import RequestContext
from shared.subscriptions import ensure_mailbox_subscription
from shared.tokens import with_app_token, with_user_token
from shared.write_rule import Writer, decide_writer

logger = logging.getLogger(__name__)

T = TypeVar("T")

GRID = timedelta(minutes=5)  # slot claims: 8 hours are 96 cells, inside one table transaction (100)
CLAIM_LEASE = timedelta(seconds=60)  # how long a pending booking belongs to the request that inserted it
WAIT_FOR_OTHER = timedelta(seconds=20)  # how long a request with the same key waits for the first
POLL_SECONDS = 0.1
# A refused request's answer is kept under its key this long: every retry with the key gets it again.
REFUSAL_LIFETIME = timedelta(hours=24)
# Refusals whose answer a race decides (someone else took the slot) are kept under the key, so retries
# cannot get another answer once the race moves on. Others are answered afresh: an unknown interviewer
# stays unknown, and sign-in, consent and outages, once fixed, should let a retry with the key book.
KEPT_REFUSALS: tuple[type[ServiceError], ...] = (SlotUnavailable,)
MAX_TAKEOVERS = 5  # times one request starts afresh after an earlier request with its key let it go
HISTORY_LIMIT = 200
BUSY = frozenset({FreeBusyStatus.BUSY, FreeBusyStatus.OOF, FreeBusyStatus.TENTATIVE})
SECONDARY_CALENDAR_WARNING = (
    "The event is in a calendar other than the mailbox's primary one, which raises no change notification: "
    "attendees' responses and changes made there are picked up by the periodic reconciliation only."
)


@dataclass(frozen=True)
class BookingOutcome:
    booking: Booking
    created: bool  # this request booked it (201); otherwise it returns an earlier request's booking (200)


@dataclass(frozen=True)
class BookingPage:
    bookings: tuple[Booking, ...]
    after: str | None


# ---- identities ------------------------------------------------------------------------------------
def booking_id_for(tenant_id: str, key: str) -> str:
    """26 lower-case base32 characters: the same (tenant, key) always names the same booking."""
    digest = hashlib.sha256(f"booking|{tenant_id}|{key}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:26].lower()


def key_hash(tenant_id: str, key: str) -> str:
    return hashlib.sha256(f"idempotency|{tenant_id}|{key}".encode()).hexdigest()


def grid_cells(start: datetime, end: datetime) -> list[datetime]:
    """The 5-minute cells [start, end) touches, from the cell holding ``start``."""
    epoch = datetime(2000, 1, 1, tzinfo=start.tzinfo)
    cell = epoch + ((start - epoch) // GRID) * GRID
    cells = []
    while cell < end:
        cells.append(cell)
        cell += GRID
    return cells


def _offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def _same_time(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Equal at the precision booking times are kept (``whole_seconds``): a booking stored before times
    were normalised is not mistaken for drift."""
    return (whole_seconds(a[0]), whole_seconds(a[1])) == (whole_seconds(b[0]), whole_seconds(b[1]))


def _entry(booking: Booking, entry: HistoryEntry) -> tuple[HistoryEntry, ...]:
    return (*booking.history, entry)[-HISTORY_LIMIT:]


def _user_access(ctx: RequestContext) -> AccessToken:
    if ctx.user_access is None:  # the two-token guard always sets it for calendar calls
        raise ReauthRequired("Sign in again.")
    return ctx.user_access


# ---- where the event lives ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    mailbox: str
    delegated: bool
    calendar_id: str | None


def _target(ctx: RequestContext, request: BookingRequest) -> _Target:
    """Where the event goes. Whose permission writes it is decided by the write rule once the directory
    has answered (``_writer``); until then, and whenever unsure, it is the recruiter's."""
    if request.calendar != INTERVIEWS:
        return _Target(request.calendar, delegated=True, calendar_id=request.calendar_id)
    mailbox = ctx.tenant.interviews_mailbox if ctx.tenant is not None else None
    if not mailbox:
        raise InvalidRequest(
            "Your tenant has no Interviews mailbox configured; an admin sets interviews_mailbox in the tenant "
            "settings, or book into an interviewer's calendar.",
            field="calendar",
        )
    return _Target(mailbox.lower(), delegated=True, calendar_id=None)


def _writer(
    deps: Dependencies, ctx: RequestContext, mailbox: str, interviewers: Sequence[str], optional: Sequence[str]
) -> bool:
    """Whether the recruiter's own token writes ``mailbox`` (True) or the app's may (False): the write rule
    over this interview's interviewers, who are checked first (no shared, room or equipment mailbox).
    Raises InvalidRequest naming the field, GraphUnavailable."""
    return (
        decide_writer(deps, ctx.tenant_id, ctx.tenant, mailbox, _field_names(interviewers, optional)) is not Writer.APP
    )


def _with_writer(deps: Dependencies, ctx: RequestContext, booking: Booking, change: BookingChange | None) -> Booking:
    """The booking with the write rule decided afresh for this PATCH (the interviewers it leaves) or DELETE
    (``change`` None: the interviewers it has, not checked again, so a booking can always be cancelled).
    What an earlier request recorded never lets the app write where the rule now forbids it."""
    if change is None:
        interviewers, optional = booking.interviewers, booking.optional_interviewers
        fields = _field_names(interviewers, optional)
        writer = decide_writer(deps, ctx.tenant_id, ctx.tenant, booking.mailbox, fields, check=False)
        return replace(booking, delegated=writer is not Writer.APP)
    interviewers = change.interviewers if change.interviewers is not None else booking.interviewers
    optional = (
        change.optional_interviewers if change.optional_interviewers is not None else booking.optional_interviewers
    )
    return replace(booking, delegated=_writer(deps, ctx, booking.mailbox, interviewers, optional))


def _on_calendar(
    deps: Dependencies, ctx: RequestContext, mailbox: str, delegated: bool, call: Callable[[AccessToken], T]
) -> T:
    """Run an event call with the token the write rule chose: the recruiter's own (a 403 means Exchange
    gives them no access: for the Interviews mailbox, they are not in the group that grants it), or the
    app's."""
    if not delegated:
        return with_app_token(deps, ctx.tenant_id, call, known=ctx.tenant)
    try:
        return with_user_token(deps, ctx.user, call, token=_user_access(ctx))
    except GraphRequestFailed as err:
        if err.status == 403 and err.reason == "forbidden":
            interviews = ctx.tenant.interviews_mailbox if ctx.tenant is not None else None
            if interviews and interviews.lower() == mailbox.lower():
                raise NoAccessToCalendar(
                    f"You cannot write to the Interviews calendar ({mailbox}). Ask your admin to add you to the "
                    f'"{RECRUITING_GROUP}" group, which holds access to it.',
                    group=RECRUITING_GROUP,
                    mailbox=mailbox,
                ) from err
            raise NoAccessToCalendar(
                f"Your Office 365 account cannot write to the calendar of {mailbox}, and the app writes only to "
                "the calendars of this interview's interviewers. Book into the Interviews calendar instead.",
                mailbox=mailbox,
            ) from err
        raise


# ---- free/busy ---------------------------------------------------------------------------------------
def _is_ours(block_start: datetime, block_end: datetime, ours: tuple[datetime, datetime] | None) -> bool:
    return ours is not None and (block_start, block_end) == ours


class _FreeBusy(NamedTuple):
    busy: list[str]  # required people Graph shows busy
    busy_optional: list[str]  # optional people Graph shows busy
    unreadable: list[Schedule]  # required people Graph could not be read for: nobody knows


def _busy_people(
    deps: Dependencies,
    ctx: RequestContext,
    required: Sequence[str],
    optional: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    ours: tuple[datetime, datetime] | None = None,
    fields: dict[str, str] | None = None,
) -> _FreeBusy:
    """One getSchedule for everyone. ``ours``: the booking's own current slot, which shows as busy in its
    attendees' calendars. Raises InvalidRequest naming the field of someone Graph does not know."""
    people = [*required, *optional]
    if not people:
        return _FreeBusy([], [], [])
    deadline = deps.settings.availability_deadline()
    schedules = with_user_token(
        deps,
        ctx.user,
        lambda token: deps.graph.get_schedules(token, people, start, end, deadline=deadline),
        token=_user_access(ctx),
    )
    found = _FreeBusy([], [], [])
    for email, schedule in zip(people, schedules, strict=True):
        if schedule.status is ScheduleStatus.UNREADABLE and schedule.reason == "unknown":
            field = (fields or {}).get(email, "interviewers")
            raise InvalidRequest(f"{email} is not a person Microsoft Graph knows in your tenant.", field=field)
        if schedule.status is ScheduleStatus.UNREADABLE:
            if email in required:  # never free when unread, and never called busy either
                found.unreadable.append(schedule)
        elif _blocked(schedule, start, end, ours):
            (found.busy if email in required else found.busy_optional).append(email)
    return found


def _blocked(schedule: Schedule, start: datetime, end: datetime, ours: tuple[datetime, datetime] | None) -> bool:
    return any(
        b.status in BUSY and b.start < end and b.end > start and not _is_ours(b.start, b.end, ours)
        for b in schedule.busy
    )


def _field_names(request_interviewers: Sequence[str], optional: Sequence[str]) -> dict[str, str]:
    names = {email: f"interviewers[{i}]" for i, email in enumerate(request_interviewers)}
    names.update({email: f"optional_interviewers[{i}]" for i, email in enumerate(optional)})
    return names


def _claim_all(
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


def _slot_unavailable(people: Sequence[str]) -> SlotUnavailable:
    return SlotUnavailable(
        f"{', '.join(people)} {'is' if len(people) == 1 else 'are'} not free at that time.", busy=list(people)
    )


# Reasons an interviewer's free/busy stays unreadable whatever the retry: the mailbox is out of Graph's reach.
LASTING_REASONS = frozenset({"access_policy", "on_premises"})
GRAPH_RETRY_AFTER_SECONDS = 5


def _not_known_free(found: _FreeBusy) -> ServiceError | None:
    """Why the slot cannot be booked, or None: someone busy (409 slot_unavailable) before anyone Graph
    could not be read for, who is never reported busy: 503 graph_unavailable with Retry-After when Graph
    failed or ran out of time, 502 graph_request_failed when the mailbox is out of Graph's reach."""
    if found.busy:
        return _slot_unavailable(found.busy)
    if not found.unreadable:
        return None
    emails = [s.email for s in found.unreadable]
    lasting = [s for s in found.unreadable if s.reason in LASTING_REASONS]
    if lasting:
        return GraphRequestFailed(
            f"Microsoft Graph cannot read the calendar of {', '.join(s.email for s in lasting)} "
            "(an application access policy, or a mailbox on premises), so the time cannot be checked; "
            "nothing was booked. Book with check_availability false to book without the check.",
            status=403,
            reason=lasting[0].reason or "other",
            unreadable=[s.email for s in lasting],
        )
    return GraphUnavailable(
        f"Microsoft Graph could not be read for {', '.join(emails)}, so whether they are free is not known; "
        "nothing was booked. Retry in a few seconds.",
        unreadable=emails,
        retry_after=GRAPH_RETRY_AFTER_SECONDS,
    )


# ---- create ------------------------------------------------------------------------------------------
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
    now = deps.clock.now()
    target = _target(ctx, request)
    booking_id = booking_id_for(ctx.tenant_id, key)
    fingerprint = request.fingerprint()
    attendees = (*request.interviewers, *request.optional_interviewers)
    if request.candidate is not None:
        attendees = (*attendees, request.candidate.email)
    pending = Booking(
        tenant_id=ctx.tenant_id,
        booking_id=booking_id,
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
        fingerprint=fingerprint,
        display_offset_minutes=_offset_minutes(request.start),
        claimed_until=now + CLAIM_LEASE,
        updated_at=now,
    )
    # The free/busy check goes to Graph while the pending booking goes to storage: the waits overlap.
    # A repeated request reads free/busy for nothing, which costs a read and changes nothing.
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        writer_check = pool.submit(
            _writer, deps, ctx, target.mailbox, request.interviewers, request.optional_interviewers
        )
        busy_check = pool.submit(
            _busy_people,
            deps,
            ctx,
            request.interviewers,
            request.optional_interviewers,
            request.start,
            request.end,
            fields=_field_names(request.interviewers, request.optional_interviewers),
        )
        stored, recovering = _claim_key(deps, pending, sleep)
        if stored.status is not BookingStatus.PENDING:
            return BookingOutcome(stored, created=False)
        return BookingOutcome(
            _book(deps, ctx, request, stored, busy_check, writer_check, recovering=recovering), created=True
        )
    finally:
        pool.shutdown(wait=False)


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


def _check_slot(
    deps: Dependencies,
    ctx: RequestContext,
    request: BookingRequest,
    booking_id: str,
    cells: Sequence[datetime],
    busy_check: Future[_FreeBusy],
) -> list[str]:
    """The getSchedule already in flight, and the slot claims; the warnings. Raises SlotUnavailable,
    InvalidRequest."""
    warnings: list[str] = []
    required = list(request.interviewers)
    # The claims go to storage while getSchedule goes to Graph: the two waits overlap.
    with ThreadPoolExecutor(max_workers=1) as pool:
        claims = (
            pool.submit(_claim_all, deps, ctx.tenant_id, booking_id, required, cells)
            if request.check_availability
            else None
        )
        try:
            found = busy_check.result()
        except BaseException:
            if claims is not None and not claims.result():
                _release_all(deps, _claimant(ctx.tenant_id, booking_id), required, cells)
            raise
        taken = claims.result() if claims is not None else []
    refusal = _not_known_free(found)
    if refusal is not None and request.check_availability and (found.busy or not taken):
        if not taken:
            _release_all(deps, _claimant(ctx.tenant_id, booking_id), required, cells)
        raise refusal
    if taken:
        raise _slot_unavailable(taken)
    unfree = [*found.busy, *(s.email for s in found.unreadable)]
    if unfree:
        warnings.append(
            f"{', '.join(unfree)} {'is' if len(unfree) == 1 else 'are'} busy or could not be checked at that time; "
            "booked anyway because check_availability is false."
        )
    busy_optional = found.busy_optional
    if busy_optional:
        warnings.append(f"Optional interviewer(s) busy at that time: {', '.join(busy_optional)}.")
    return warnings


def _claimant(tenant_id: str, booking_id: str) -> Booking:
    """Enough of a booking to release its claims."""
    moment = datetime.min.replace(tzinfo=UTC)
    return Booking(tenant_id=tenant_id, booking_id=booking_id, mailbox="", start=moment, end=moment, subject="")


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
    busy_check: Future[_FreeBusy],
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
    required = list(request.interviewers)
    draft = _draft(request, pending)
    event: ObservedEvent | None = None
    warnings: list[str] = []
    if recovering:
        # The earlier request may have written the event before it stopped: find it by our property. Its
        # attendees now show it as busy, so the slot is not checked again for an event that exists.
        try:
            event = _on_calendar(
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
            for person in required:
                try:
                    deps.bookings.claim_slots(ctx.tenant_id, person, pending.booking_id, cells)
                except ConcurrencyConflict:
                    logger.warning("booking %s: recovered over another booking's claim", pending.booking_id)
    if event is None:
        try:
            warnings = _check_slot(deps, ctx, request, pending.booking_id, cells, busy_check)
        except KEPT_REFUSALS as err:
            _refuse(deps, pending, err)
            raise
        except ServiceError:
            # Nothing was written to Graph: forget the pending booking so the key may be used again.
            _give_up(deps, pending, forget=not recovering)
            raise
        try:
            event = _on_calendar(
                deps,
                ctx,
                pending.mailbox,
                pending.delegated,
                lambda t: deps.events.create_event(t, pending.mailbox, draft, calendar_id=pending.calendar_id),
            )
        except ServiceError:
            _release_all(deps, pending, required, cells)
            # The event may exist (a create whose answer was lost): keep the booking for recovery.
            _give_up(deps, pending, forget=False)
            raise
    if pending.calendar_id is not None:
        warnings.append(SECONDARY_CALENDAR_WARNING)
    if request.online_meeting and not event.join_url:
        warnings.append("Microsoft Graph created the event without a Teams meeting.")
    booked = booked_with(
        pending,
        event,
        at=deps.clock.now(),
        actor=ctx.user.user_id,
        action="recovered" if recovering else "created",
        warnings=tuple(warnings),
    )
    try:
        stored = deps.bookings.update_booking(booked)
    except ServiceError as err:
        logger.warning("Booking %s: Graph holds the event but storage failed: %s", pending.booking_id, err.message)
        _give_up(deps, pending, forget=False)
        raise UpstreamUnavailable(
            "The interview was written to the calendar but could not be recorded; retry with the same "
            "Idempotency-Key to finish.",
            retry_after=1,
        ) from err
    logger.info("booking %s %s in %s", stored.booking_id, "recovered" if recovering else "created", stored.mailbox)
    # Changes to the event reach us only from a subscription on the mailbox that organises it: a worker's
    # memory answers for mailboxes already subscribed; a new organizer is subscribed now (never raises).
    ensure_mailbox_subscription(deps, stored.tenant_id, stored.mailbox)
    return stored


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
        history=_entry(pending, HistoryEntry(at=at, actor=actor, action=action, detail=f"event in {pending.mailbox}")),
        updated_at=at,
    )


def _release_all(deps: Dependencies, booking: Booking, people: Sequence[str], cells: Sequence[datetime]) -> None:
    for person in people:
        try:
            deps.bookings.release_slots(booking.tenant_id, person, booking.booking_id, cells)
        except ServiceError as err:
            logger.warning("Could not release slot claims of %s: %s", booking.booking_id, err.message)


# ---- read ---------------------------------------------------------------------------------------------
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


# ---- change -------------------------------------------------------------------------------------------
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
    event = _on_calendar(
        deps, ctx, booking.mailbox, booking.delegated, lambda t: deps.events.get_event(t, booking.mailbox, event_id)
    )
    if event.booking_id != booking.booking_id:
        logger.warning("booking %s: event %s does not carry our property; refused", booking.booking_id, event_id)
        raise NotOurEvent("This event was not created by this service, so it will not be changed.")
    return event


def _changing(booking: Booking, now: datetime) -> bool:
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
    booking = _checked(deps, ctx, booking_id, etag)
    if booking.status not in (BookingStatus.BOOKED, BookingStatus.DRIFTED):
        raise ConcurrencyConflict(f"A {booking.status.value} booking cannot be changed.")
    if _changing(booking, deps.clock.now()):
        raise ConcurrencyConflict("Another change of this booking is in progress; read it again in a few seconds.")
    booking = _with_writer(deps, ctx, booking, change)
    event = _our_event(deps, ctx, booking)
    start, end = change.start or booking.start, change.end or booking.end
    interviewers = change.interviewers if change.interviewers is not None else booking.interviewers
    optional = (
        change.optional_interviewers if change.optional_interviewers is not None else booking.optional_interviewers
    )
    moved = (start, end) != (booking.start, booking.end)
    people_changed = (interviewers, optional) != (booking.interviewers, booking.optional_interviewers)
    # Graph may show another time than the booking when an earlier change died after writing it.
    write_time = moved or not _same_time((event.start, event.end), (start, end))
    old_cells, new_cells = grid_cells(booking.start, booking.end), grid_cells(start, end)

    def fresh(person: str) -> list[datetime]:
        return [c for c in new_cells if person not in booking.interviewers or c not in old_cells]

    claiming = (moved or people_changed) and change.check_availability
    if claiming:
        refusal = _not_known_free(
            _busy_people(
                deps,
                ctx,
                interviewers,
                (),
                start,
                end,
                ours=(event.start, event.end),
                fields=_field_names(interviewers, ()),
            )
        )
        if refusal is not None:
            raise refusal
    attendees = (
        *(ObservedAttendee(email=e, type="required") for e in interviewers),
        *(ObservedAttendee(email=e, type="optional") for e in optional),
        *((ObservedAttendee(email=booking.candidate_email, type="required"),) if booking.candidate_email else ()),
    )
    location = None if change.clear_location else (change.location or booking.location)
    draft = EventDraft(
        subject=change.subject,
        body=change.body,
        start=start if write_time else None,
        end=end if write_time else None,
        attendees=attendees if people_changed else None,
        names=((booking.candidate_email, booking.candidate_name),)
        if booking.candidate_email and booking.candidate_name
        else (),
        location=(location or "") if (change.location is not None or change.clear_location) else None,
    )
    held = _take(deps, booking, start, end, change.subject or booking.subject)
    claimed: list[str] = []
    try:
        for person in interviewers if claiming else ():
            try:
                deps.bookings.claim_slots(ctx.tenant_id, person, booking.booking_id, fresh(person))
            except ConcurrencyConflict:
                raise _slot_unavailable([person]) from None
            claimed.append(person)
        event_id = event.event_id
        _on_calendar(
            deps,
            ctx,
            booking.mailbox,
            booking.delegated,
            lambda t: deps.events.update_event(t, booking.mailbox, event_id, draft),
        )
    except ServiceError as err:
        for person in claimed:
            _release_all(deps, booking, [person], fresh(person))
        _put_back(deps, held, err)
        raise
    # Graph holds the change from here on: the booking records it even when reading the event back fails.
    try:
        after, restored = _keep_meeting(deps, ctx, booking, event)
    except ServiceError as err:
        logger.warning("booking %s: the changed event could not be read back: %s", booking.booking_id, err.message)
        after, restored = None, False
    now = deps.clock.now()
    entries: list[HistoryEntry] = []
    if moved:
        entries.append(HistoryEntry(now, ctx.user.user_id, "moved", f"{start.isoformat()} to {end.isoformat()}"))
    changed = [n for n in ("subject", "body", "location") if getattr(change, n) is not None] + (
        ["location"] if change.clear_location else []
    )
    if people_changed:
        changed.append("attendees")
    if changed:
        entries.append(HistoryEntry(now, ctx.user.user_id, "updated", ", ".join(changed)))
    if restored and after is not None:
        same = after.join_url == booking.join_url
        detail = "the same Teams meeting" if same else "a new Teams meeting was attached"
        entries.append(HistoryEntry(now, "service", "meeting_restored", detail))

    last_read: list[Booking] = []

    def write() -> Booking | None:
        # Re-read: the notification worker may have recorded responses meanwhile (the lease is kept).
        current = deps.bookings.get_booking(ctx.tenant_id, booking_id)
        last_read[:] = [current]
        if current.change_id != held.change_id or current.status not in (BookingStatus.BOOKED, BookingStatus.DRIFTED):
            return None
        known = {r.email: r for r in current.responses}
        return deps.bookings.update_booking(
            replace(
                _unheld(current),
                start=start,
                end=end,
                subject=change.subject or current.subject,
                interviewers=interviewers,
                optional_interviewers=optional,
                attendees=tuple(a.email for a in attendees),
                location=location,
                join_url=(after.join_url if after is not None else None) or current.join_url,
                responses=tuple(known.get(a.email, ObservedAttendee(email=a.email, type=a.type)) for a in attendees),
                status=BookingStatus.BOOKED,
                history=(*current.history, *entries)[-HISTORY_LIMIT:],
                observed_change_key=after.change_key if after is not None else current.observed_change_key,
                updated_at=now,
            )
        )

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
            for person in claimed:
                _release_all(deps, booking, [person], fresh(person))
        raise ConcurrencyConflict("The booking was cancelled or changed by another request meanwhile; read it again.")
    left: list[datetime] = []
    if booking.change_start is not None and booking.change_end is not None:
        left = grid_cells(booking.change_start, booking.change_end)  # claims of a change whose process died
    for person in dict.fromkeys((*booking.interviewers, *interviewers)):
        keep = new_cells if person in interviewers else []
        held_before = old_cells if (moved or people_changed) and person in booking.interviewers else []
        stale = [c for c in dict.fromkeys((*held_before, *left)) if c not in keep]
        if stale:
            _release_all(deps, booking, [person], stale)
    return stored


def _keep_meeting(
    deps: Dependencies, ctx: RequestContext, booking: Booking, before: ObservedEvent
) -> tuple[ObservedEvent, bool]:
    """Read the event back after a PATCH; when Graph dropped the Teams meeting, turn it on again (Graph
    brings back the same meeting while it still exists) and read once more for the join URL. The event,
    and whether a dropped meeting was brought back."""
    event_id = before.event_id

    def read(t: AccessToken) -> ObservedEvent:
        return deps.events.get_event(t, booking.mailbox, event_id)

    after = _on_calendar(deps, ctx, booking.mailbox, booking.delegated, read)
    if not booking.online_meeting or (after.is_online_meeting and after.join_url):
        return after, False
    logger.warning("booking %s: the PATCH dropped the Teams meeting; restoring it", booking.booking_id)
    restore = EventDraft(online_meeting=True)
    _on_calendar(
        deps,
        ctx,
        booking.mailbox,
        booking.delegated,
        lambda t: deps.events.update_event(t, booking.mailbox, event_id, restore),
    )
    restored = _on_calendar(deps, ctx, booking.mailbox, booking.delegated, read)
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
    booking = _with_writer(deps, ctx, booking, None)
    action = "cancelled"
    try:
        event = _our_event(deps, ctx, booking)
    except NotFound:
        event = None
        action = "cancelled (the event was already gone)"
    if event is not None and not event.is_cancelled:
        event_id = event.event_id
        if event.organizer is None or event.organizer == booking.mailbox.lower():
            _on_calendar(
                deps,
                ctx,
                booking.mailbox,
                booking.delegated,
                lambda t: deps.events.cancel_event(t, booking.mailbox, event_id, message or ""),
            )
        else:
            action = "deleted (not the organizer)"
            _on_calendar(
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
                history=_entry(current, HistoryEntry(now, ctx.user.user_id, action, message or "")),
                updated_at=now,
            )
        )

    stored = retry_on_conflict(write)
    _release_all(deps, booking, booking.interviewers, grid_cells(booking.start, booking.end))
    return stored


# ---- what Outlook shows ----------------------------------------------------------------------------
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
        _follow_claims(deps, before[0], stored)
    return stored


def _follow_claims(deps: Dependencies, old: Booking, new: Booking) -> None:
    """Keep the interviewers' slot claims where the interview now is: released when it was cancelled or
    deleted in Outlook, moved with it when it was moved there."""
    cancelled = BookingStatus.CANCELLED
    moved = (old.start, old.end) != (new.start, new.end)
    if old.status is cancelled or not (moved or new.status is cancelled):
        return
    _release_all(deps, old, old.interviewers, grid_cells(old.start, old.end))
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
            history=_entry(booking, HistoryEntry(seen_at, "outlook", "drifted", what)),
            updated_at=seen_at,
        )
    entries: list[HistoryEntry] = []
    updates: dict[str, Any] = {}
    # While a PATCH holds the booking, Graph may already show what it is writing (its notification can
    # arrive before the booking records the change): that is ours, not drift, and the PATCH records it.
    changing = _changing(booking, seen_at)
    in_flight: tuple[datetime, datetime] | None = None
    if changing and booking.change_start is not None and booking.change_end is not None:
        in_flight = (booking.change_start, booking.change_end)
    seen = (observed.start, observed.end)
    if not _same_time(seen, (booking.start, booking.end)) and not (in_flight and _same_time(seen, in_flight)):
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
