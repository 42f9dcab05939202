"""When the candidate gets which email: a booking made with ``notify_candidate`` gets the confirmation, a move
the reschedule notice, a cancellation the cancellation notice, and the email timer the reminder (in
shared/email/sending.py); a recruiter may also send a template on demand. Each asks for its message by key,
so a repeated trigger finds the message the first one asked for.

The automatic notices go from the mailbox of the recruiter who made the booking, whoever moves or cancels it;
an on-demand message from the recruiter who asks for it.
"""

from __future__ import annotations

import hashlib

from shared.email.sending import mail_token, notify, revision_of
from shared.email.templates import template_name
from shared.errors import ConcurrencyConflict, InvalidRequest
from shared.models import Booking, BookingStatus, EmailRecord, User
from shared.ports import EmailDependencies

CONFIRMATION_REVISION = "1"


def _sender(booking: Booking) -> str | None:
    return booking.created_by if booking.notify_candidate and booking.candidate_email else None


def on_booked(deps: EmailDependencies, booking: Booking) -> EmailRecord | None:
    """The confirmation of a booking made with ``notify_candidate`` (None when it was made without)."""
    sender = _sender(booking)
    if sender is None or booking.status is not BookingStatus.BOOKED:
        return None
    return notify(deps, booking, "confirmation", CONFIRMATION_REVISION, sender)


def on_changed(deps: EmailDependencies, before: Booking, after: Booking) -> EmailRecord | None:
    """The reschedule notice when the change moved the interview (one per time the interview moves to, and
    per change: the history's length tells two moves to the same time apart)."""
    sender = _sender(after)
    if sender is None or (before.start, before.end) == (after.start, after.end):
        return None
    revision = f"{revision_of(after.start)}-{len(after.history)}"
    return notify(deps, after, "reschedule", revision, sender)


def on_cancelled(deps: EmailDependencies, booking: Booking) -> EmailRecord | None:
    sender = _sender(booking)
    if sender is None or booking.status is not BookingStatus.CANCELLED:
        return None
    return notify(deps, booking, "cancellation", "1", sender)


def send_on_demand(deps: EmailDependencies, user: User, booking: Booking, template: str, key: str) -> EmailRecord:
    """A template sent now by the recruiter who asks, once per Idempotency-Key. Raises FeatureNotEnabled,
    ReauthRequired, NotFound (no such template, no candidate), InvalidRequest, ConcurrencyConflict."""
    name = template_name(template)
    if not booking.candidate_email:
        raise InvalidRequest("The booking has no candidate to email.", field="booking")
    if booking.status not in (BookingStatus.BOOKED, BookingStatus.DRIFTED, BookingStatus.CANCELLED):
        raise ConcurrencyConflict("The booking is still being made; read it again in a few seconds.")
    mail_token(deps, user)  # the recruiter opted in and the grant works, before anything is asked for
    revision = "k" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return notify(deps, booking, name, revision, user.user_id)
