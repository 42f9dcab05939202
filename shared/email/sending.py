"""Sending candidate email exactly once, from the recruiter's own mailbox (delegated ``Mail.Send``).

Every message has a key, ``{booking}.{template}.{revision}``, and a row in the ledger under that key: asking
for the same message twice (50 identical requests, two overlapping timer runs) finds the row the first one
made. An attempt claims the row under its ETag (one claimant wins) with a lease, and marks it ``maybe_sent``
before it calls Graph: from then on nobody knows whether Exchange took the message until Graph says so. The
message carries the key in a single-value extended property, so an attempt that follows an unknown outcome (a
timeout, a 5xx, a worker that died mid-send and whose lease ran out) first looks for the key in Sent Items and
only sends when it is not there. ``sendMail`` itself is never retried blindly (Graph answers 202 with no
message id, and a POST without a transactionId is not idempotent).

How soon a sent message shows in Sent Items is not documented; the lookup waits ``LOOKUP_DELAY`` after the
unknown outcome, and also looks in the Outbox (where Exchange holds what it has not submitted yet).

A recruiter's sends are paced under Exchange's limits (shared/email/pacing.py); what does not fit waits in
the ledger with its time (``not_before``) and the email timer sends it then. A 429 waits Retry-After. A revoked
grant fails the message with ``reauth_required`` (recorded, shown in the trail and in the booking's history),
never silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shared.conflicts import retry_on_conflict
from shared.email.ics import build_ics, needs_ics
from shared.email.pacing import Limits, take_send
from shared.email.templates import Rendered, default_template, render
from shared.errors import (
    ConcurrencyConflict,
    FeatureNotEnabled,
    GraphRequestFailed,
    NotFound,
    PayloadTooLarge,
    ReauthRequired,
    ServiceError,
    UpstreamUnavailable,
)
from shared.identity.tokens import user_token, with_user_token
from shared.models import (
    AccessToken,
    Booking,
    BookingStatus,
    EmailRecord,
    EmailStatus,
    EmailTemplate,
    HistoryEntry,
    MailAttachment,
    OutgoingMail,
    User,
)
from shared.ports import EmailDependencies
from shared.urls import login_url

logger = logging.getLogger(__name__)

FEATURE = "automation"
MAIL_SCOPES = ["Mail.Read", "Mail.Send"]
LEASE = timedelta(minutes=2)  # an attempt holds a message this long; then another may take it over
LOOKUP_DELAY = timedelta(seconds=60)  # after an unknown outcome, before Sent Items is asked
RETRY_DELAY = timedelta(seconds=30)
MAX_ATTEMPTS = 8
HISTORY_LIMIT = 200  # the booking's own limit (shared/booking/records.py)
MAX_ATTACHMENTS = 3 * 1024 * 1024  # inline attachments; larger ones need an upload session (Mail.ReadWrite)


@dataclass(frozen=True)
class EmailOutcome:
    record: EmailRecord
    created: bool  # this request asked for it first


def message_key(booking_id: str, template: str, revision: str) -> str:
    return f"{booking_id}.{template}.{revision}"


def revision_of(moment: datetime) -> str:
    """A revision naming an interview time (a reschedule or reminder per time the interview has had)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def automation_login_url(deps: EmailDependencies) -> str:
    return f"{login_url(deps.settings)}?features={FEATURE}"


def mail_token(deps: EmailDependencies, user: User, *, refused: AccessToken | None = None) -> AccessToken:
    """The recruiter's delegated token for mail. Raises FeatureNotEnabled, ReauthRequired."""
    if FEATURE not in user.features:
        raise FeatureNotEnabled(
            "Email automation is not switched on for you: sign in again and accept the email permissions.",
            login_url=automation_login_url(deps),
        )
    return user_token(deps, user, scopes=MAIL_SCOPES, refused=refused)


def require_automation(deps: EmailDependencies, user: User) -> None:
    """Before anything is booked: the recruiter opted in and the grant still yields a mail token."""
    mail_token(deps, user)


# ---- asking for a message ---------------------------------------------------------------------------
def request_email(
    deps: EmailDependencies, booking: Booking, template: str, revision: str, sender_id: str
) -> EmailOutcome:
    """The ledger row of this message, made now unless a request for the same key made it first."""
    if not booking.candidate_email:
        raise NotFound("The booking has no candidate to email.")
    now = deps.clock.now()
    record = EmailRecord(
        tenant_id=booking.tenant_id,
        key=message_key(booking.booking_id, template, revision),
        booking_id=booking.booking_id,
        template=template,
        revision=revision,
        sender_id=sender_id,
        to=booking.candidate_email,
        status=EmailStatus.QUEUED,
        not_before=now,
        created_at=now,
        updated_at=now,
    )
    try:
        return EmailOutcome(deps.emails.create_email(record), created=True)
    except ConcurrencyConflict:
        return EmailOutcome(deps.emails.get_email(booking.tenant_id, record.key), created=False)


def notify(deps: EmailDependencies, booking: Booking, template: str, revision: str, sender_id: str) -> EmailRecord:
    """Ask for the message and try to send it now (it waits in the queue if it cannot go yet)."""
    outcome = request_email(deps, booking, template, revision, sender_id)
    return deliver(deps, booking.tenant_id, outcome.record.key)


# ---- one attempt ----------------------------------------------------------------------------------
def _due(record: EmailRecord, now: datetime) -> bool:
    if record.status is EmailStatus.QUEUED:
        return record.not_before is None or record.not_before <= now
    if record.status is EmailStatus.SENDING:
        return record.lease_until is None or record.lease_until <= now  # the attempt holding it died
    return False


def deliver(deps: EmailDependencies, tenant_id: str, key: str) -> EmailRecord:
    """Send the message if it is due and nobody else is on it; the record as it stands afterwards."""
    now = deps.clock.now()
    record = deps.emails.get_email(tenant_id, key)
    if not _due(record, now):
        return record
    try:
        claimed = deps.emails.update_email(
            replace(record, status=EmailStatus.SENDING, lease_until=now + LEASE, attempts=record.attempts + 1)
        )
    except ConcurrencyConflict:
        return deps.emails.get_email(tenant_id, key)  # another attempt took it
    try:
        return _attempt(deps, claimed, now)
    except ServiceError as err:
        # Storage or sign-in trouble around the attempt: the lease runs out and the timer tries again.
        logger.warning("email %s: attempt %d failed: %s", claimed.template, claimed.attempts, err.code)
        return claimed


def _finish(deps: EmailDependencies, record: EmailRecord, **changes: Any) -> EmailRecord:
    now = deps.clock.now()
    return deps.emails.update_email(replace(record, lease_until=None, updated_at=now, **changes))


def _fail(deps: EmailDependencies, record: EmailRecord, error: str, booking: Booking | None = None) -> EmailRecord:
    logger.warning("email %s of a booking failed: %s", record.template, error)
    failed = _finish(deps, record, status=EmailStatus.FAILED, error=error, maybe_sent=False)
    if booking is not None:
        _record_history(deps, booking, failed, "email_failed", f"{record.template}: {error}")
    return failed


def _wait(deps: EmailDependencies, record: EmailRecord, until: datetime, *, maybe_sent: bool) -> EmailRecord:
    if record.attempts >= MAX_ATTEMPTS:
        return _fail(deps, record, "gave_up")
    return _finish(deps, record, status=EmailStatus.QUEUED, not_before=until, maybe_sent=maybe_sent)


def _attempt(deps: EmailDependencies, record: EmailRecord, now: datetime) -> EmailRecord:
    """One attempt at a claimed email: the booking and the sender still allow it; an earlier attempt that may
    have sent it is looked for first; the recruiter's pace allows it now; then compose, mark and send."""
    ready = _ready_to_send(deps, record, now)
    if isinstance(ready, EmailRecord):
        return ready
    booking, sender, token = ready
    if record.maybe_sent:
        earlier = _sent_earlier(deps, record, booking, sender, token, now)
        if earlier is not None:
            return earlier
    settings = deps.settings
    limits = Limits(settings.email_per_minute, settings.email_recipients_per_day)
    wait = take_send(deps.email_pacing, record.tenant_id, record.sender_id, now=now, recipients=1, limits=limits)
    if wait is not None:
        return _wait(deps, record, wait, maybe_sent=record.maybe_sent)
    try:
        mail = compose(deps, booking, record, sender)
    except PayloadTooLarge:
        return _fail(deps, record, "attachments_too_large", booking)
    except Exception:  # a saved template that still fails on this booking's values: never a half-sent message
        logger.exception("email %s: the template could not be rendered", record.template)
        return _fail(deps, record, "template_failed", booking)
    # From here on Graph may take the message whatever we hear back: the next attempt looks before sending.
    marked = deps.emails.update_email(replace(record, maybe_sent=True, subject=mail.subject, updated_at=now))
    return _send(deps, marked, booking, sender, token, mail, now)


def _ready_to_send(
    deps: EmailDependencies, record: EmailRecord, now: datetime
) -> tuple[Booking, User, AccessToken] | EmailRecord:
    """The booking, the sender and their mail token; or the failed record when any of them rules it out."""
    try:
        booking = deps.bookings.get_booking(record.tenant_id, record.booking_id)
    except NotFound:
        return _fail(deps, record, "booking_gone")
    if record.template == "reminder" and booking.start <= now:
        return _fail(deps, record, "too_late", booking)
    if booking.status is BookingStatus.CANCELLED and record.template not in ("cancellation",):
        return _fail(deps, record, "booking_cancelled", booking)
    try:
        sender = deps.users.get_user(record.tenant_id, record.sender_id)
        token = mail_token(deps, sender)
    except NotFound:
        return _fail(deps, record, "sender_gone", booking)
    except (FeatureNotEnabled, ReauthRequired) as err:
        return _fail(deps, record, err.code, booking)
    return booking, sender, token


def _sent_earlier(
    deps: EmailDependencies, record: EmailRecord, booking: Booking, sender: User, token: AccessToken, now: datetime
) -> EmailRecord | None:
    """After an unknown outcome: the record as sent when Sent Items holds the message, as waiting when they
    cannot be read, as failed when the grant is gone; None when the message was not sent."""
    try:
        found = with_user_token(
            deps, sender, lambda t: deps.mail.find_sent(t, record.key), token=token, scopes=MAIL_SCOPES
        )
    except ReauthRequired as err:
        return _fail(deps, record, err.code, booking)
    except (GraphRequestFailed, UpstreamUnavailable) as err:
        logger.info("email %s: Sent Items could not be read (%s); trying later", record.template, err.code)
        return _wait(deps, record, now + RETRY_DELAY, maybe_sent=True)
    if found is None:
        return None
    logger.info("email %s: an earlier attempt had sent it; not sending again", record.template)
    return _sent(deps, record, booking, subject=found.subject, at=found.at, conversation=found.conversation_id)


def _send(
    deps: EmailDependencies,
    marked: EmailRecord,
    booking: Booking,
    sender: User,
    token: AccessToken,
    mail: OutgoingMail,
    now: datetime,
) -> EmailRecord:
    """Send the marked message; what Graph answers decides: sent, wait (Retry-After, or look again after an
    unknown outcome) or failed."""
    try:
        with_user_token(deps, sender, lambda t: deps.mail.send_mail(t, mail), token=token, scopes=MAIL_SCOPES)
    except ReauthRequired as err:
        return _fail(deps, marked, err.code, booking)
    except GraphRequestFailed as err:
        if err.status == 429:
            retry_after = err.retry_after if err.retry_after is not None else RETRY_DELAY.total_seconds()
            return _wait(deps, marked, now + timedelta(seconds=retry_after), maybe_sent=False)
        if err.status >= 500:
            return _wait(deps, marked, now + LOOKUP_DELAY, maybe_sent=True)
        if err.graph_code == "ErrorSendAsDenied":
            return _fail(deps, marked, "send_as_denied", booking)
        if err.status == 403:
            return _fail(deps, marked, "mail_send_refused", booking)
        return _fail(deps, marked, f"graph_{err.status}", booking)
    except UpstreamUnavailable:
        return _wait(deps, marked, now + LOOKUP_DELAY, maybe_sent=True)
    return _sent(deps, marked, booking, subject=mail.subject, at=now, conversation=None)


def _sent(
    deps: EmailDependencies,
    record: EmailRecord,
    booking: Booking,
    *,
    subject: str,
    at: datetime,
    conversation: str | None,
) -> EmailRecord:
    done = _finish(
        deps,
        record,
        status=EmailStatus.SENT,
        sent_at=at,
        subject=subject,
        conversation_id=conversation,
        maybe_sent=False,
        error=None,
    )
    _record_history(deps, booking, done, "email_sent", f"{record.template} to {record.to}")
    return done


def _record_history(deps: EmailDependencies, booking: Booking, record: EmailRecord, action: str, detail: str) -> None:
    entry = HistoryEntry(deps.clock.now(), record.sender_id, action, detail)

    def write() -> None:
        current = deps.bookings.get_booking(booking.tenant_id, booking.booking_id)
        if any(h.action == action and h.detail == detail and h.at == entry.at for h in current.history):
            return
        deps.bookings.update_booking(replace(current, history=(*current.history, entry)[-HISTORY_LIMIT:]))

    try:
        retry_on_conflict(write)
    except ServiceError as err:
        # The ledger holds the truth; the history line is for people reading the booking.
        logger.warning("booking %s: the email could not be added to its history: %s", booking.booking_id, err.code)


# ---- the message ----------------------------------------------------------------------------------
def _name_of(address: str) -> str:
    # The directory's display name is not read for this (one Graph call per person); the address says enough.
    local = address.split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part) or address


def variables(booking: Booking, sender: User) -> dict[str, Any]:
    """The template variables of a booking: times in the candidate's time zone (the UTC offset the booking
    request wrote its times in)."""
    offset = timedelta(minutes=booking.display_offset_minutes or 0)
    zone = timezone(offset)
    start, end = booking.start.astimezone(zone), booking.end.astimezone(zone)
    minutes = int(offset.total_seconds() // 60)
    label = (
        "UTC" if minutes == 0 else f"UTC{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    day = f"{start:%A} {start.day} {start:%B %Y}"
    people = (*booking.interviewers, *booking.optional_interviewers)
    return {
        "candidate": {
            "name": booking.candidate_name or booking.candidate_email or "",
            "email": booking.candidate_email,
        },
        "recruiter": {"name": sender.display_name or sender.username, "email": sender.username},
        "interviewers": [{"name": _name_of(a), "email": a} for a in people],
        "subject": booking.subject,
        "date": day,
        "start": f"{day} {start:%H:%M}",
        "end": f"{end.day} {end:%B %Y} {end:%H:%M}",
        "start_time": f"{start:%H:%M}",
        "end_time": f"{end:%H:%M}",
        "time_zone": label,
        "duration_minutes": int((booking.end - booking.start).total_seconds() // 60),
        "teams_link": booking.join_url or "",
        "location": booking.location or "",
    }


def compose_preview(booking: Booking, template: EmailTemplate, sender: User) -> Rendered:
    return render(template, variables(booking, sender))


def compose(deps: EmailDependencies, booking: Booking, record: EmailRecord, sender: User) -> OutgoingMail:
    try:
        template = deps.email_templates.get_template(booking.tenant_id, record.template)
    except NotFound:
        template = default_template(booking.tenant_id, record.template)
    rendered = render(template, variables(booking, sender))
    attachments: tuple[MailAttachment, ...] = ()
    if record.template == "confirmation" and needs_ics(booking):
        attachments = (
            build_ics(booking, organizer=sender.username, organizer_name=sender.display_name, now=deps.clock.now()),
        )
    if sum(len(a.content) for a in attachments) > MAX_ATTACHMENTS:
        raise PayloadTooLarge("Attachments over 3 MB are refused before sending.", limit_bytes=MAX_ATTACHMENTS)
    to = ((record.to, booking.candidate_name or ""),)
    return OutgoingMail(key=record.key, subject=rendered.subject, html=rendered.html, to=to, attachments=attachments)


# ---- the timer --------------------------------------------------------------------------------------
def queue_reminders(deps: EmailDependencies) -> int:
    """Ask for the reminder of every booked interview with email on that starts within the reminder lead
    time (one per time the interview has: a moved interview gets its own). Returns how many were new."""
    now = deps.clock.now()
    lead = timedelta(hours=deps.settings.email_reminder_hours)
    made = 0
    for tenant in deps.tenants.list_tenants():
        for booking in deps.bookings.list_bookings_between(tenant.tenant_id, now, now + lead):
            if (
                booking.status is not BookingStatus.BOOKED
                or not booking.notify_candidate
                or not booking.candidate_email
                or booking.start <= now
                or booking.start > now + lead
                or booking.created_by is None
            ):
                continue
            outcome = request_email(deps, booking, "reminder", revision_of(booking.start), booking.created_by)
            made += outcome.created
    return made


def send_due(deps: EmailDependencies, *, limit: int = 500) -> int:
    """Send what waits in the queue and is due (and take over attempts whose lease ran out). Returns how many
    were sent."""
    now = deps.clock.now()
    sent = 0
    for record in deps.emails.list_unsent(limit=limit):
        if not _due(record, now):
            continue
        try:
            after = deliver(deps, record.tenant_id, record.key)
        except ServiceError as err:  # this one waits for the next run; the others go on
            logger.warning("email %s could not be delivered now: %s", record.template, err.code)
            continue
        sent += after.status is EmailStatus.SENT
    return sent


def email_round(deps: EmailDependencies) -> tuple[int, int]:
    """The email timer: ask for the reminders now due, then send what waits. (reminders asked, messages sent)"""
    made = queue_reminders(deps)
    sent = send_due(deps)
    if made or sent:
        logger.info("email timer: %d reminders asked for, %d messages sent", made, sent)
    return made, sent
