"""Frozen dataclasses the core works with. Raw Graph JSON never travels past the adapter that parsed it.

Timestamps are timezone-aware UTC ``datetime`` values. ``etag`` is the storage
ETag the record was read with (``None`` for a record not yet stored); updates
send it back so two writers cannot silently overwrite each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo
from enum import StrEnum
from typing import Any


class ConsentStatus(StrEnum):
    CONSENTED = "consented"
    PARTIAL = "partial"
    NEEDS_ATTENTION = "needs_attention"  # an app-only token could not be had since consent


class TokenHealth(StrEnum):
    OK = "ok"
    REAUTH_REQUIRED = "reauth_required"


class FlowKind(StrEnum):
    SIGNIN = "signin"
    CONSENT = "consent"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    consent_status: ConsentStatus
    granted_roles: tuple[str, ...] = ()
    missing_roles: tuple[str, ...] = ()
    consented_at: datetime | None = None  # when an app-only token first proved consent; never moves
    checked_at: datetime | None = None  # the last consent check of any kind
    verified_at: datetime | None = None  # the last time Microsoft was asked afresh and confirmed consent
    interviews_mailbox: str | None = None
    sync_mailbox: str | None = None
    attention_reason: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class User:
    tenant_id: str
    user_id: str  # the Entra object id (oid)
    username: str  # preferred_username / UPN
    display_name: str = ""
    granted_scopes: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    token_health: TokenHealth = TokenHealth.OK
    signed_in_at: datetime | None = None
    is_tenant_admin: bool = False  # from the ID token's directory roles (wids)
    etag: str | None = None


@dataclass(frozen=True)
class PendingFlow:
    """A sign-in or consent flow between redirect and callback, keyed by its ``state``.

    ``data`` holds the MSAL flow (PKCE verifier, nonce) and our own context; it is
    stored encrypted and the state itself only as a hash.
    """

    kind: FlowKind
    state: str = field(repr=False)
    data: dict[str, Any] = field(repr=False)
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    """A signed-in user's session. Only the hash of the credential is stored."""

    session_hash: str
    tenant_id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    revoked: bool = False
    etag: str | None = None


class BookingStatus(StrEnum):
    PENDING = "pending"  # the idempotency claim is stored; the event may or may not exist yet
    BOOKED = "booked"
    DRIFTED = "drifted"  # someone moved or edited the event in Outlook: it no longer matches the booking
    CANCELLED = "cancelled"
    FAILED = "failed"  # refused before anything reached Graph; kept only to answer retries of its key


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to a booking: ``actor`` is a user id, an attendee's address or "outlook"."""

    at: datetime
    actor: str
    action: str  # created, recovered, moved, updated, cancelled, deleted, responded, drifted, meeting_restored
    detail: str = ""


@dataclass(frozen=True)
class Subscription:
    """One Graph change-notification subscription on ``/users/{mailbox}/events``, with its health.

    Only the SHA-256 of the clientState is kept: the secret is 32 random bytes, so its hash needs no
    key, and the webhook compares hashes in constant time without decrypting anything."""

    tenant_id: str
    subscription_id: str
    resource: str
    mailbox: str
    expires_at: datetime
    client_state_hash: str = field(default="", repr=False)
    mailbox_id: str | None = None  # the mailbox's Graph user id, as notifications name it (None if unknown)
    created_at: datetime | None = None
    last_renewed_at: datetime | None = None
    last_notification_at: datetime | None = None
    last_error: str | None = None  # a short description for operators; never a secret
    last_error_at: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class MailboxSync:
    """The per-mailbox sync record: which subscription serves it, the claim that settles who creates
    one, and the ``calendarView/delta`` link (a bearer-like secret: stored encrypted)."""

    tenant_id: str
    mailbox: str
    subscription_id: str | None = None
    expires_at: datetime | None = None
    claimed_until: datetime | None = None  # a creator's lease: others keep off until it passes
    delta_link: str | None = field(default=None, repr=False)
    delta_started_at: datetime | None = None  # when the current delta window was opened
    last_delta_at: datetime | None = None
    last_error: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class SubscriptionSecret:
    """What the webhook needs to accept a notification: the owning tenant and the clientState hash."""

    tenant_id: str
    subscription_id: str
    client_state_hash: str = field(repr=False)
    mailbox: str = ""  # the subscribed mailbox's address ("" on records written before it was kept here)
    mailbox_id: str | None = None  # its Graph user id, the name Graph's notifications give it


@dataclass(frozen=True)
class QueuedMessage:
    """A message received from a queue: its text and what deleting or rewriting it needs."""

    message_id: str
    receipt: str = field(repr=False)
    text: str = field(repr=False)
    expires_at: datetime | None = None


@dataclass(frozen=True)
class CreatedSubscription:
    """What Graph answered to a create or renew (its expiry is kept, not the one asked for)."""

    subscription_id: str
    resource: str
    expires_at: datetime


@dataclass(frozen=True)
class DeltaChange:
    event_id: str
    removed: bool = False


@dataclass(frozen=True)
class DeltaRound:
    """One ``calendarView/delta`` round followed to its end: what changed and the next delta link."""

    changes: tuple[DeltaChange, ...]
    delta_link: str = field(repr=False)


@dataclass(frozen=True)
class SigninStart:
    """Where to send the browser, and the flow to keep server-side until the callback."""

    auth_uri: str
    state: str = field(repr=False)
    flow: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class SigninResult:
    tenant_id: str
    user_id: str
    username: str
    display_name: str
    scopes: tuple[str, ...]
    is_tenant_admin: bool
    serialized_cache: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AccessToken:
    """A Graph access token and what the token itself says about its grant."""

    token: str = field(repr=False)
    tenant_id: str
    scopes: tuple[str, ...] = ()  # delegated
    roles: tuple[str, ...] = ()  # application
    serialized_cache: str | None = field(default=None, repr=False)  # set only when the cache changed
    user_id: str | None = None  # delegated: the signed-in user's object id (whose mailbox /me is)


@dataclass(frozen=True)
class DirectoryUser:
    user_id: str
    user_principal_name: str
    display_name: str
    mail: str | None = None


# ---- availability ---------------------------------------------------------------------------------
class FreeBusyStatus(StrEnum):
    """Graph's freeBusyStatus values as getSchedule reports them."""

    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OOF = "oof"
    WORKING_ELSEWHERE = "workingElsewhere"
    UNKNOWN = "unknown"


class ScheduleStatus(StrEnum):
    OK = "ok"
    UNREADABLE = "unreadable"


class MailboxPurpose(StrEnum):
    """What a mailbox is, from mailboxSettings ``userPurpose`` ("Differentiates a mailbox for a single user
    from a shared mailbox and equipment mailbox in Exchange Online": user, linked, shared, room, equipment,
    others), plus what the lookup itself found: nobody in the tenant, a mailbox Graph will not open for the
    app (an application access policy, on premises), or no answer (Graph failed: unknown for now)."""

    USER = "user"
    LINKED = "linked"
    SHARED = "shared"
    ROOM = "room"
    EQUIPMENT = "equipment"
    OTHERS = "others"
    NOT_IN_TENANT = "not_in_tenant"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BusyBlock:
    """One scheduleItem: an aware UTC interval with its free/busy status. ``subject`` and
    ``location`` are set only where Graph showed them to the signed-in user."""

    start: datetime
    end: datetime
    status: FreeBusyStatus
    subject: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class WorkingHours:
    """A mailbox's working hours: local wall-clock ``start``/``end`` on ``days`` (lower-case English
    day names) in ``time_zone`` (a tzinfo: IANA, mapped from Windows, or built from a custom zone).
    ``end`` at or before ``start`` means the hours run past local midnight."""

    days: tuple[str, ...]
    start: time
    end: time
    time_zone: tzinfo = field(compare=False)
    time_zone_name: str  # IANA name, or the custom zone's own name


@dataclass(frozen=True)
class Schedule:
    """What Graph told us about one person over the queried window."""

    email: str
    status: ScheduleStatus = ScheduleStatus.OK
    reason: str | None = None  # for unreadable: unknown, on_premises, access_policy, throttled, timeout, ...
    mailbox_time_zone: str | None = None  # the mailbox's zone as Graph names it (often a Windows name)
    working_hours: WorkingHours | None = None
    busy: tuple[BusyBlock, ...] = ()


# ---- the warm busy cache (shared.cache) --------------------------------------------------------------
@dataclass(frozen=True)
class CachedBlock:
    """One busy interval of an interviewer as the cache keeps it: no subject, body, location or attendees.
    ``key`` is the SHA-256 of the Graph event (or occurrence) id, never the id itself."""

    key: str
    start: datetime  # aware UTC
    end: datetime
    status: FreeBusyStatus
    all_day: bool = False
    private: bool = False


@dataclass(frozen=True)
class BusyChange:
    """One ``calendarView/delta`` entry: the block as it now is, or None when it no longer counts
    (removed, cancelled, free, or out of the view)."""

    key: str
    block: CachedBlock | None


@dataclass(frozen=True)
class BusyDelta:
    """One delta round followed from its first page to the deltaLink."""

    changes: tuple[BusyChange, ...]
    delta_link: str = field(repr=False)


@dataclass(frozen=True)
class MailboxHours:
    """A mailbox's working hours and zone as getSchedule would report them. ``source`` is the Graph
    adapter's own compact form of them, kept by the cache and read back by the adapter alone."""

    working_hours: WorkingHours | None
    time_zone: str | None
    source: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class CachedPerson:
    """The cache's record of one interviewer of a tenant (``person``: the lower-cased address).

    Warm when ``synced_at`` (the start of the last delta round that completed) is within the freshness
    bound and no change notification came after it (``notified_at``)."""

    tenant_id: str
    person: str
    added_at: datetime
    last_asked_at: datetime
    delta_link: str | None = field(default=None, repr=False)  # a bearer-like secret: stored encrypted
    window_start: datetime | None = None
    window_end: datetime | None = None
    synced_at: datetime | None = None
    full_sync_at: datetime | None = None
    notified_at: datetime | None = None
    hours: MailboxHours | None = None
    last_error: str | None = None  # a short reason (no secret) while the mailbox cannot be synced
    resyncs_gone: int = 0  # full resyncs because Graph answered 410 to the delta link
    resyncs_missed: int = 0  # full resyncs because of a missed or subscriptionRemoved lifecycle event
    etag: str | None = None


# ---- events as Graph shows them (booking and sync) ----------------------------------------------
class AttendeeResponse(StrEnum):
    """Graph's responseStatus.response values."""

    NONE = "none"
    ORGANIZER = "organizer"
    TENTATIVE = "tentativelyAccepted"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    NOT_RESPONDED = "notResponded"


@dataclass(frozen=True)
class ObservedAttendee:
    email: str
    type: str = "required"  # required, optional, resource
    response: AttendeeResponse = AttendeeResponse.NONE
    responded_at: datetime | None = None
    proposed_start: datetime | None = None  # a counter-proposal, when the attendee made one
    proposed_end: datetime | None = None


@dataclass(frozen=True)
class ObservedEvent:
    """An event read back from Graph (only the fields booking and sync need); times aware UTC.
    ``booking_id`` comes from our single-value extended property: None means not our event."""

    event_id: str
    mailbox: str
    start: datetime
    end: datetime
    subject: str = ""
    booking_id: str | None = None
    ical_uid: str | None = None
    is_cancelled: bool = False
    is_online_meeting: bool = False
    join_url: str | None = None
    location: str | None = None
    organizer: str | None = None
    attendees: tuple[ObservedAttendee, ...] = ()
    last_modified: datetime | None = None
    change_key: str | None = None


@dataclass(frozen=True)
class Booking:
    """An interview this service booked. ``booking_id`` is derived from the tenant and the idempotency key,
    and the event carries it in our extended property. ``attendees`` lists every address invited (what
    availability's caps count); ``responses`` what Outlook last showed of each of them."""

    tenant_id: str
    booking_id: str
    mailbox: str  # the mailbox whose calendar holds the event (the organizer)
    start: datetime
    end: datetime
    subject: str
    status: BookingStatus = BookingStatus.PENDING
    transaction_id: str | None = None
    event_id: str | None = None
    attendees: tuple[str, ...] = ()
    created_by: str | None = None  # user id of the recruiter
    created_at: datetime | None = None
    ical_uid: str | None = None
    calendar: str = "interviews"  # "interviews" or an interviewer's address
    calendar_id: str | None = None  # a calendar other than the mailbox's primary one
    # Whose permission writes the event: the recruiter's own delegated token unless the write rule
    # (shared/booking/write_rule.py) allowed the app's; a record that does not say is the recruiter's.
    delegated: bool = True
    interviewers: tuple[str, ...] = ()
    optional_interviewers: tuple[str, ...] = ()
    candidate_email: str | None = None
    candidate_name: str | None = None
    location: str | None = None
    online_meeting: bool = True
    join_url: str | None = None
    responses: tuple[ObservedAttendee, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    idempotency_key_hash: str | None = None
    fingerprint: str | None = None
    # PENDING: a request is creating the event until then; FAILED: the refusal is kept until then; a
    # change (``change_id``) holds the booking until then.
    claimed_until: datetime | None = None
    # A PATCH holds a booked interview while it writes Graph: its id, and what Graph may show meanwhile.
    change_id: str | None = None
    change_start: datetime | None = None
    change_end: datetime | None = None
    change_subject: str | None = None
    observed_change_key: str | None = None  # the event version last applied from Outlook
    # Minutes east of UTC of the create request's times: every answer about the booking shows its times so.
    display_offset_minutes: int | None = None
    # The candidate gets the interview's emails (confirmation, reschedule, cancellation, reminder): shared/email.
    notify_candidate: bool = False
    refusal: str | None = None  # FAILED: the refused request's answer (JSON: code, message, details)
    updated_at: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class EventDraft:
    """What booking writes to Graph for one event (a create, or the fields of a PATCH that are set)."""

    subject: str | None = None
    body: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    attendees: tuple[ObservedAttendee, ...] | None = None  # ``response`` unused; names ride in ``names``
    names: tuple[tuple[str, str], ...] = ()  # (address, display name)
    location: str | None = None
    online_meeting: bool | None = None
    booking_id: str | None = None  # our extended property
    transaction_id: str | None = None


# ---- candidate email (shared/email) -----------------------------------------------------------------
@dataclass(frozen=True)
class EmailTemplate:
    """A tenant's template: a plain-text subject and an HTML body, both Jinja2 run in the sandbox."""

    tenant_id: str
    name: str
    subject: str
    html: str
    updated_at: datetime | None = None
    updated_by: str | None = None  # user id of the admin who saved it; None: the built-in default
    etag: str | None = None


class EmailStatus(StrEnum):
    QUEUED = "queued"  # waits for its time (pacing, Retry-After, a look in Sent Items after an unknown outcome)
    SENDING = "sending"  # an attempt holds it until ``lease_until``
    SENT = "sent"
    FAILED = "failed"  # will not be sent; ``error`` says why


@dataclass(frozen=True)
class EmailRecord:
    """One message we send, keyed by its message key ``{booking}.{template}.{revision}``: the value of the
    extended property the message carries, so Sent Items can tell whether an attempt reached Exchange.

    ``maybe_sent``: an attempt handed the message to Graph without learning the outcome, so the next
    attempt looks the key up in Sent Items before it sends anything.
    """

    tenant_id: str
    key: str
    booking_id: str
    template: str
    revision: str
    sender_id: str  # the recruiter (user id) whose mailbox sends it
    to: str  # the candidate's address
    status: EmailStatus = EmailStatus.QUEUED
    attempts: int = 0
    maybe_sent: bool = False
    not_before: datetime | None = None
    lease_until: datetime | None = None
    subject: str = ""  # as sent
    sent_at: datetime | None = None
    conversation_id: str | None = None
    error: str | None = None  # a stable code: reauth_required, send_as_denied, too_late, ...
    created_at: datetime | None = None
    updated_at: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class MailAttachment:
    name: str
    content_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class OutgoingMail:
    """What goes to Graph's sendMail: rendered and sanitized, carrying our message key."""

    key: str
    subject: str
    html: str = field(repr=False)
    to: tuple[tuple[str, str], ...] = ()  # (address, display name)
    attachments: tuple[MailAttachment, ...] = ()


@dataclass(frozen=True)
class MailItem:
    """A message of the recruiter's mailbox as the trail shows it (read when asked, never stored)."""

    message_id: str
    conversation_id: str
    subject: str
    sender: str
    to: tuple[str, ...]
    at: datetime  # sent (ours) or received (replies)
    preview: str
    key: str | None = None  # our message key, on messages we sent


@dataclass(frozen=True)
class Pace:
    """A recruiter's recent sends, shared by every instance: the send times of the last minute, and the
    recipients per hour bucket (bucket start, recipients) of the last day."""

    tenant_id: str
    sender_id: str
    recent: tuple[datetime, ...] = ()
    hourly: tuple[tuple[datetime, int], ...] = ()
    etag: str | None = None
