"""The free/busy check just before a write: one getSchedule for the interview's people (unreadable is
never free), and the refusal that names who is busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import NamedTuple

from shared import threads
from shared.booking.claims import claim_all, claimant, release_all
from shared.booking.request import BookingRequest
from shared.config import WORKER_THREADS
from shared.errors import (
    GraphRequestFailed,
    GraphUnavailable,
    InvalidRequest,
    ServiceError,
    SlotUnavailable,
)
from shared.identity.guard import RequestContext, with_user_access
from shared.models import (
    FreeBusyStatus,
    Schedule,
    ScheduleStatus,
)
from shared.ports import Dependencies

# Threads a booking's side work runs on (its free/busy check and its recruiter check while the pending
# booking is written, then its slot claims while free/busy is read), kept by the worker: three for each
# invocation it runs at once.
BOOKING_THREADS = 3 * WORKER_THREADS

BUSY = frozenset({FreeBusyStatus.BUSY, FreeBusyStatus.OOF, FreeBusyStatus.TENTATIVE})


def _is_ours(block_start: datetime, block_end: datetime, ours: tuple[datetime, datetime] | None) -> bool:
    return ours is not None and (block_start, block_end) == ours


class FreeBusy(NamedTuple):
    busy: list[str]  # required people Graph shows busy
    busy_optional: list[str]  # optional people Graph shows busy
    unreadable: list[Schedule]  # required people Graph could not be read for: nobody knows


def busy_people(
    deps: Dependencies,
    ctx: RequestContext,
    required: Sequence[str],
    optional: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    ours: tuple[datetime, datetime] | None = None,
    fields: dict[str, str] | None = None,
) -> FreeBusy:
    """One getSchedule for everyone. ``ours``: the booking's own current slot, which shows as busy in its
    attendees' calendars. Raises InvalidRequest naming the field of someone Graph does not know."""
    people = [*required, *optional]
    if not people:
        return FreeBusy([], [], [])
    deadline = deps.settings.availability_deadline()
    schedules = with_user_access(
        deps, ctx, lambda token: deps.graph.get_schedules(token, people, start, end, deadline=deadline)
    )
    found = FreeBusy([], [], [])
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


def field_names(request_interviewers: Sequence[str], optional: Sequence[str]) -> dict[str, str]:
    names = {email: f"interviewers[{i}]" for i, email in enumerate(request_interviewers)}
    names.update({email: f"optional_interviewers[{i}]" for i, email in enumerate(optional)})
    return names


def slot_unavailable(people: Sequence[str]) -> SlotUnavailable:
    return SlotUnavailable(
        f"{', '.join(people)} {'is' if len(people) == 1 else 'are'} not free at that time.", busy=list(people)
    )


# Reasons an interviewer's free/busy stays unreadable whatever the retry: the mailbox is out of Graph's reach.
LASTING_REASONS = frozenset({"access_policy", "on_premises"})
GRAPH_RETRY_AFTER_SECONDS = 5


def not_known_free(found: FreeBusy) -> ServiceError | None:
    """Why the slot cannot be booked, or None: someone busy (409 slot_unavailable) before anyone Graph
    could not be read for, who is never reported busy: 503 graph_unavailable with Retry-After when Graph
    failed or ran out of time, 502 graph_request_failed when the mailbox is out of Graph's reach."""
    if found.busy:
        return slot_unavailable(found.busy)
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


def check_slot(
    deps: Dependencies,
    ctx: RequestContext,
    request: BookingRequest,
    booking_id: str,
    cells: Sequence[datetime],
    busy_check: Future[FreeBusy],
) -> list[str]:
    """The getSchedule already in flight, and the slot claims; the warnings. Raises SlotUnavailable,
    InvalidRequest."""
    warnings: list[str] = []
    required = list(request.interviewers)
    # The claims go to storage while getSchedule goes to Graph: the two waits overlap.
    pool = threads.pool("booking", BOOKING_THREADS)
    claims = (
        pool.submit(claim_all, deps, ctx.tenant_id, booking_id, required, cells) if request.check_availability else None
    )
    try:
        found = busy_check.result()
    except BaseException:
        if claims is not None and not claims.result():
            release_all(deps, claimant(ctx.tenant_id, booking_id), required, cells)
        raise
    taken = claims.result() if claims is not None else []
    refusal = not_known_free(found)
    if refusal is not None and request.check_availability and (found.busy or not taken):
        if not taken:
            release_all(deps, claimant(ctx.tenant_id, booking_id), required, cells)
        raise refusal
    if taken:
        raise slot_unavailable(taken)
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
