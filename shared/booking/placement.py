"""Where a booking's event lives and whose permission writes it: the Interviews mailbox or an interviewer's
calendar, written with the app's permission or the recruiter's as ``shared.booking.write_rule`` decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from shared.booking.freebusy import field_names
from shared.booking.records import user_access
from shared.booking.request import (
    INTERVIEWS,
    BookingChange,
    BookingRequest,
)
from shared.booking.write_rule import Writer, decide_writer
from shared.errors import (
    GraphRequestFailed,
    InvalidRequest,
    NoAccessToCalendar,
)
from shared.identity.guard import RequestContext
from shared.identity.readiness import RECRUITING_GROUP  # the group that holds access to the shared mailboxes
from shared.identity.tokens import with_app_token, with_user_token
from shared.models import (
    AccessToken,
    Booking,
)
from shared.ports import Dependencies

T = TypeVar("T")


@dataclass(frozen=True)
class _Target:
    mailbox: str
    delegated: bool
    calendar_id: str | None


def target_of(ctx: RequestContext, request: BookingRequest) -> _Target:
    """Where the event goes. Whose permission writes it is decided by the write rule once the directory
    has answered (``recruiter_writes``); until then, and whenever unsure, it is the recruiter's."""
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


def recruiter_writes(
    deps: Dependencies, ctx: RequestContext, mailbox: str, interviewers: Sequence[str], optional: Sequence[str]
) -> bool:
    """Whether the recruiter's own token writes ``mailbox`` (True) or the app's may (False): the write rule
    over this interview's interviewers, who are checked first (no shared, room or equipment mailbox).
    Raises InvalidRequest naming the field, GraphUnavailable."""
    return (
        decide_writer(deps, ctx.tenant_id, ctx.tenant, mailbox, field_names(interviewers, optional)) is not Writer.APP
    )


def with_writer(deps: Dependencies, ctx: RequestContext, booking: Booking, change: BookingChange | None) -> Booking:
    """The booking with the write rule decided afresh for this PATCH (the interviewers it leaves) or DELETE
    (``change`` None: the interviewers it has, not checked again, so a booking can always be cancelled).
    What an earlier request recorded never lets the app write where the rule now forbids it."""
    if change is None:
        interviewers, optional = booking.interviewers, booking.optional_interviewers
        fields = field_names(interviewers, optional)
        writer = decide_writer(deps, ctx.tenant_id, ctx.tenant, booking.mailbox, fields, check=False)
        return replace(booking, delegated=writer is not Writer.APP)
    interviewers = change.interviewers if change.interviewers is not None else booking.interviewers
    optional = (
        change.optional_interviewers if change.optional_interviewers is not None else booking.optional_interviewers
    )
    return replace(booking, delegated=recruiter_writes(deps, ctx, booking.mailbox, interviewers, optional))


def on_calendar(
    deps: Dependencies, ctx: RequestContext, mailbox: str, delegated: bool, call: Callable[[AccessToken], T]
) -> T:
    """Run an event call with the token the write rule chose: the recruiter's own (a 403 means Exchange
    gives them no access: for the Interviews mailbox, they are not in the group that grants it), or the
    app's."""
    if not delegated:
        return with_app_token(deps, ctx.tenant_id, call, known=ctx.tenant)
    try:
        return with_user_token(deps, ctx.user, call, token=user_access(ctx))
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
