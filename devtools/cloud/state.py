"""The local cloud's world: tenants, app registrations, users and mailboxes, events, grants, switches.

One ``World`` per running cloud, guarded by one re-entrant lock. Every module of
the cloud (identity, graph, subscriptions, control) reads and writes it through
the methods here; routes never keep state of their own.

Seeded from ``fixtures/directory.json`` (tenants, apps, users, mailbox settings,
calendar sharing) and ``fixtures/calendars.json`` (events per mailbox).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

S = TypeVar("S")


# The service's setting that moves its clock (shared/config.py). The cloud honours the same variable, so
# one setting moves the whole local stack to another date: the tests pin January and July with it.
CLOCK_OFFSET_SETTING = "CLOCK_OFFSET_SECONDS"


@functools.lru_cache(maxsize=8)
def _offset(raw: str) -> timedelta:
    try:
        seconds = float(raw) if raw.strip() else 0.0
    except ValueError:
        raise ValueError(f"{CLOCK_OFFSET_SETTING} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"{CLOCK_OFFSET_SETTING} must be a finite number of seconds")
    return timedelta(seconds=seconds)


def utcnow() -> datetime:
    """The cloud's wall clock: the machine's, moved by ``CLOCK_OFFSET_SECONDS`` when that is set.

    Calendar time (the fixtures' "this week", event timestamps, subscription lifetimes through
    ``World.now``) follows it. Token lifetimes (``iat``/``exp``, codes, sign-in cookies) and the TLS
    certificates stay on the machine's clock, which is the one MSAL and TLS check them against.
    """
    return datetime.now(UTC) + _offset(os.environ.get(CLOCK_OFFSET_SETTING, ""))


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class AppRegistration:
    """A multi-tenant app registered in its home tenant."""

    client_id: str
    display_name: str
    secrets: list[str]  # valid client secrets (plaintext here: this is the identity provider)
    redirect_uris: list[str]
    # Application permissions (roles) the app asks for, e.g. "Calendars.ReadWrite".
    required_roles: list[str]
    # Delegated permissions configured on the registration (what a ``/.default`` request means),
    # short Graph names plus OIDC scopes, e.g. ["openid", "User.Read", "Calendars.ReadWrite"].
    delegated_scopes: list[str] = field(default_factory=list)


@dataclass
class Tenant:
    tenant_id: str
    domain: str  # e.g. "contoso.example"
    display_name: str
    # client_id -> roles an admin granted (app-only consent). Absent: never consented.
    app_consents: dict[str, set[str]] = field(default_factory=dict)
    # client_id -> delegated scopes consented tenant-wide by an admin, if any.
    delegated_consents: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class User:
    """A directory user; shared mailboxes are users with ``kind == "sharedMailbox"``."""

    tenant_id: str
    id: str
    user_principal_name: str
    display_name: str
    mail: str
    given_name: str = ""
    surname: str = ""
    job_title: str | None = None
    kind: str = "user"  # "user" | "sharedMailbox"
    password: str = "Passw0rd!"  # for the click-through sign-in page
    mailbox_settings: dict[str, Any] = field(default_factory=dict)  # Graph mailboxSettings JSON
    # Per-user delegated consent: client_id -> scopes the user consented to.
    delegated_consents: dict[str, set[str]] = field(default_factory=dict)
    # user ids that may see subject/location of this user's normal events (calendar shared with them,
    # or calendar settings let them view details).
    shares_details_with: set[str] = field(default_factory=set)
    mailbox_on_premises: bool = False
    # Full Access mailbox permission (Exchange's Add-MailboxPermission): ids of users and of mail-enabled
    # security groups whose members may open this mailbox (the shared mailboxes grant it to a group).
    full_access: set[str] = field(default_factory=set)
    # May grant tenant-wide admin consent (a Global/Privileged Role/Cloud Application Administrator).
    is_admin: bool = False
    # Exchange's Send As permission (Add-RecipientPermission): ids of users and of mail-enabled security groups
    # who may send mail as this mailbox (graph/mail.py). Nobody holds it in the fixtures.
    send_as: set[str] = field(default_factory=set)


@dataclass
class Group:
    """A directory group; only what mailbox delegation needs: mail-enabled security groups and their members."""

    tenant_id: str
    id: str
    display_name: str
    mail: str | None = None
    description: str | None = None
    mail_enabled: bool = True
    security_enabled: bool = True
    members: set[str] = field(default_factory=set)  # user ids (direct members)


@dataclass(frozen=True)
class OnlineMeeting:
    """A Teams meeting attached to an event: Graph's onlineMeetingInfo."""

    join_url: str
    conference_id: str | None = None
    toll_number: str | None = None
    toll_free_numbers: tuple[str, ...] = ()
    quick_dial: str | None = None
    phones: tuple[tuple[str, str], ...] = ()  # (number, phone type)


@dataclass
class Attendee:
    address: str
    name: str = ""
    type: str = "required"  # required | optional | resource
    response: str = "none"  # none | accepted | tentativelyAccepted | declined | organizer | notResponded
    response_time: datetime | None = None
    proposed_start: datetime | None = None
    proposed_end: datetime | None = None


@dataclass
class Event:
    """An event in one calendar of one mailbox (the primary calendar unless ``calendar_id`` is set). Times are UTC."""

    id: str
    mailbox_id: str  # user id of the owning mailbox
    subject: str
    start: datetime
    end: datetime
    is_all_day: bool = False
    show_as: str = "busy"  # free | tentative | busy | oof | workingElsewhere | unknown
    sensitivity: str = "normal"  # normal | personal | private | confidential
    location: str = ""
    body: str = ""
    body_content_type: str = "html"
    organizer_address: str = ""
    organizer_name: str = ""
    attendees: list[Attendee] = field(default_factory=list)
    is_cancelled: bool = False
    is_online_meeting: bool = False
    online_meeting_provider: str = "unknown"
    online_meeting: OnlineMeeting | None = None
    # A meeting detached from the event (a PATCH dropped it) that still exists in Teams: attaching a
    # meeting again brings this one back, with the same join URL.
    detached_meeting: OnlineMeeting | None = None
    transaction_id: str | None = None
    # "String {guid} Name x" -> value
    extended_properties: dict[str, str] = field(default_factory=dict)
    # Graph patternedRecurrence JSON for series masters, else None.
    recurrence: dict[str, Any] | None = None
    original_start_time_zone: str = "UTC"
    original_end_time_zone: str = "UTC"
    categories: list[str] = field(default_factory=list)
    created: datetime = field(default_factory=utcnow)
    last_modified: datetime = field(default_factory=utcnow)
    change_key: str = field(default_factory=new_id)
    created_by_client_id: str | None = None
    # Shared by the organizer's event and every attendee copy of it (Graph's iCalUId).
    ical_uid: str = field(default_factory=lambda: "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper())
    # On an attendee's copy: id of the organizer's event it mirrors. None on the organizer's own event.
    organizer_event_id: str | None = None
    response_requested: bool = True
    reminder_minutes_before_start: int = 15
    is_reminder_on: bool = True
    allow_new_time_proposals: bool = True
    hide_attendees: bool = False
    # Graph location fields beyond displayName, as sent: address, coordinates, locationType, locationUri,
    # locationEmailAddress, uniqueId, uniqueIdType.
    location_details: dict[str, Any] = field(default_factory=dict)
    # Secondary calendar of the mailbox holding the event; None: the primary (default) calendar.
    calendar_id: str | None = None

    @property
    def join_url(self) -> str | None:
        return self.online_meeting.join_url if self.online_meeting is not None else None


@dataclass(frozen=True)
class MailAddress:
    """Graph's recipient/emailAddress: an address and an optional display name."""

    address: str
    name: str = ""


@dataclass(frozen=True)
class FileAttachment:
    """A fileAttachment sent inline with a message (contentBytes decoded)."""

    name: str
    content_type: str
    content: bytes
    is_inline: bool = False


@dataclass
class Message:
    """A message in one folder of one mailbox (graph/mail_store.py). Times are UTC.

    ``folder`` is a well-known folder name: ``sentitems``, ``inbox``, or ``outbox`` for a message the
    mailbox submitted that Exchange holds back under its sending limits until ``sent`` (see the
    mail-limits switch).
    """

    id: str
    mailbox_id: str
    folder: str
    subject: str
    body: str
    body_content_type: str  # html | text
    sender: MailAddress
    to: list[MailAddress] = field(default_factory=list)
    cc: list[MailAddress] = field(default_factory=list)
    bcc: list[MailAddress] = field(default_factory=list)
    reply_to: list[MailAddress] = field(default_factory=list)
    conversation_id: str = field(default_factory=new_id)
    internet_message_id: str = ""
    sent: datetime = field(default_factory=utcnow)
    received: datetime = field(default_factory=utcnow)
    created: datetime = field(default_factory=utcnow)
    last_modified: datetime = field(default_factory=utcnow)
    change_key: str = field(default_factory=new_id)
    # "String {guid} Name x" -> value (kept on the item they were set on; never copied to recipients)
    extended_properties: dict[str, str] = field(default_factory=dict)
    attachments: list[FileAttachment] = field(default_factory=list)
    importance: str = "normal"
    is_read: bool = True
    # The client that submitted it (None: a person, through the controls).
    created_by_client_id: str | None = None
    # Whether the sender asked for a copy in Sent Items (an outbox message remembers it until released).
    save_to_sent_items: bool = True


@dataclass
class RefreshTokenGrant:
    token: str
    tenant_id: str
    user_id: str
    client_id: str
    scopes: set[str]
    issued_at: datetime
    revoked: bool = False
    # AADSTS code the token endpoint answers for a revoked grant: 50173 (credentials changed or
    # sessions revoked), 70008 / 700082 (expired through inactivity).
    revoked_code: int = 50173


@dataclass
class Switches:
    """Failure switches, settable per test through the control API."""

    # mailbox user ids blocked by an application access policy (403 "Access to OData is disabled.")
    access_policy_blocked: set[str] = field(default_factory=set)
    # next N Graph requests (optionally only for one mailbox) answer 429 with Retry-After.
    # Shape (graph/switches.py): {mailbox user id or "*": {"remaining": N, "retry_after": seconds}}
    throttle: dict[str, Any] = field(default_factory=dict)
    # enforce Outlook's four-concurrent-requests-per-mailbox limit
    enforce_mailbox_concurrency: bool = True
    # seconds added to every Graph request (optionally per path prefix)
    latency_seconds: float = 0.0
    # next N Graph requests answer this 5xx status.
    # Shape (graph/switches.py): {mailbox user id or "*": {"remaining": N, "status": 503}}
    faults: dict[str, Any] = field(default_factory=dict)
    # next N PATCHes that move an event drop its online meeting (optionally only for one mailbox).
    # Shape (graph/switches.py): {mailbox user id or "*": {"remaining": N, "delete": 0 | 1}}
    meeting_drops: dict[str, Any] = field(default_factory=dict)
    # next N POSTs are carried out but answered with this 5xx (the answer lost after the write).
    # Shape (graph/switches.py): {"*": {"remaining": N, "status": 504}}
    lost_answers: dict[str, Any] = field(default_factory=dict)
    # access tokens issued from now on expire after this many seconds (None: 3600)
    access_token_lifetime: int | None = None
    # ---- change notifications (devtools/cloud/notify/); defaults are Graph's documented values
    # seconds each subscription validation request may take ("within 10 seconds")
    validation_timeout_seconds: float = 10.0
    # seconds each notification POST may take before it counts as failed ("3-second timeout")
    notification_timeout_seconds: float = 3.0
    # waits between delivery attempts of a failed notification; the last value repeats
    notification_retry_seconds: tuple[float, ...] = (15.0, 60.0, 300.0, 900.0)
    # a notification that still fails this long after it was queued is discarded ("up to 4 hours")
    notification_retry_window_seconds: float = 4 * 3600.0
    # pending notifications for one URL are gathered this long, then sent in one POST
    notification_batch_delay_seconds: float = 0.2
    # reauthorizationRequired is sent this long before a subscription expires, then repeated
    reauthorization_before_expiry_seconds: float = 3600.0
    reauthorization_repeat_seconds: float = 900.0
    # after a reauthorizationRequired, change notifications keep flowing this long, then pause
    reauthorization_grace_seconds: float = 600.0
    # active subscriptions allowed per mailbox across all apps
    subscriptions_per_mailbox: int = 1000
    # ---- mail (graph/mail_store.py)
    # Exchange Online's sending limits, off unless set: {"per_minute": 30, "recipients_per_day": 10000}.
    mail_limits: dict[str, int] = field(default_factory=dict)
    # next N sendMail requests of a mailbox answer 403 ErrorSendAsDenied.
    # Shape (graph/switches.py): {mailbox user id or "*": {"remaining": N}}
    send_as_denied: dict[str, Any] = field(default_factory=dict)


ChangeListener = Callable[[str, str, str, str], None]
"""(tenant_id, mailbox_user_id, change_type, event_id) with change_type in created|updated|deleted."""


class EventTable(dict[str, Event]):
    """The world's events by id, with an index by mailbox that every change to the table keeps: a
    getSchedule of 20 people reads their 20 mailboxes, not every event of every tenant (the cloud
    serves concurrent requests on one thread, so its CPU per request is every other caller's latency).
    An event's ``mailbox_id`` never changes once stored; within a mailbox, events keep the table's order."""

    def __init__(self, events: Mapping[str, Event] | Iterable[tuple[str, Event]] = ()) -> None:
        super().__init__()
        self._by_mailbox: dict[str, dict[str, Event]] = {}
        self.update(events)

    def of_mailbox(self, mailbox_id: str) -> list[Event]:
        """The events of one mailbox, every calendar of it, in the table's order."""
        return list(self._by_mailbox.get(mailbox_id, {}).values())

    def __setitem__(self, key: str, event: Event) -> None:
        old = super().get(key)
        super().__setitem__(key, event)
        if old is None or old.mailbox_id == event.mailbox_id:
            self._by_mailbox.setdefault(event.mailbox_id, {})[key] = event
            return
        # An id stored again for another mailbox (never done by Graph's paths): it keeps its place.
        self._unindex(key, old)
        mailbox = event.mailbox_id
        self._by_mailbox[mailbox] = {k: e for k, e in self.items() if e.mailbox_id == mailbox}

    def __delitem__(self, key: str) -> None:
        old = self[key]
        super().__delitem__(key)
        self._unindex(key, old)

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self:
            return super().pop(key, *default)  # raises KeyError unless given a default
        old = self[key]
        del self[key]
        return old

    def popitem(self) -> tuple[str, Event]:
        key, old = super().popitem()
        self._unindex(key, old)
        return key, old

    def setdefault(self, key: str, default: Event) -> Event:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Event) -> None:
        for key, event in dict(*args, **kwargs).items():
            self[key] = event

    def __ior__(self, other: Any) -> EventTable:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self._by_mailbox.clear()

    def _unindex(self, key: str, event: Event) -> None:
        bucket = self._by_mailbox.get(event.mailbox_id)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self._by_mailbox[event.mailbox_id]


class World:
    """All state of the local cloud. Use ``with world.lock:`` around compound updates."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.apps: dict[str, AppRegistration] = {}
        self.users: dict[str, User] = {}  # by user id (globally unique)
        self.groups: dict[str, Group] = {}  # by group id (globally unique)
        self._events = EventTable()  # by event id, and by mailbox
        self.messages: dict[str, Message] = {}  # by message id
        self.refresh_tokens: dict[str, RefreshTokenGrant] = {}
        self.switches = Switches()
        self.extra: dict[str, Any] = {}  # per-module state (codes, subscriptions, delta tokens ...)
        # The cloud's clock runs this far ahead of the wall clock (see ``now``); tests move it instead of sleeping.
        self.clock_offset = timedelta(0)
        self._change_listeners: list[ChangeListener] = []
        self._reset_listeners: list[Callable[[], None]] = []

    @property
    def events(self) -> EventTable:
        return self._events

    @events.setter
    def events(self, events: Mapping[str, Event]) -> None:
        """A plain mapping (a world file's, a fresh world's) becomes a table with its index."""
        self._events = events if isinstance(events, EventTable) else EventTable(events)

    # ---- clock ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The cloud's current time: the wall clock plus ``clock_offset``.

        Notification delivery (retries, the retry window) and subscription lifetimes run on this clock,
        so a test moves it forward (``devtools.cloud.notify.advance_clock``) instead of waiting.
        """
        return utcnow() + self.clock_offset

    # ---- directory -------------------------------------------------------------------------
    def tenant_by_id_or_domain(self, value: str) -> Tenant | None:
        value = value.lower()
        for tenant in self.tenants.values():
            if tenant.tenant_id == value or tenant.domain.lower() == value:
                return tenant
        return None

    def find_user(self, tenant_id: str, id_or_upn: str) -> User | None:
        """Resolve a user id or UPN (case-insensitive) within one tenant only. A slash may come as ``%2F``
        (graph/routing.py keeps an encoded slash inside its path segment)."""
        key = id_or_upn.lower().replace("%2f", "/")
        with self.lock:
            user = self.users.get(key)
            if user is not None and user.tenant_id == tenant_id:
                return user
            for user in self.users.values():
                if user.tenant_id == tenant_id and (
                    user.user_principal_name.lower() == key or user.mail.lower() == key
                ):
                    return user
        return None

    def tenant_users(self, tenant_id: str) -> list[User]:
        with self.lock:
            return [u for u in self.users.values() if u.tenant_id == tenant_id]

    def mailbox_events(self, mailbox_id: str) -> list[Event]:
        with self.lock:
            return self.events.of_mailbox(mailbox_id)

    # ---- per-module state -------------------------------------------------------------------------
    def module_state(self, slot: str, kind: type[S]) -> S:
        """The ``kind`` object kept in ``extra[slot]``, created on first use (and anew after a reset)."""
        with self.lock:
            current = self.extra.get(slot)
            if not isinstance(current, kind):
                current = kind()
                self.extra[slot] = current
            return current

    # ---- change notifications -----------------------------------------------------------------
    def add_change_listener(self, listener: ChangeListener) -> None:
        self._change_listeners.append(listener)

    def emit_change(self, tenant_id: str, mailbox_id: str, change_type: str, event_id: str) -> None:
        """Called by every code path that creates, changes or deletes an event."""
        for listener in list(self._change_listeners):
            listener(tenant_id, mailbox_id, change_type, event_id)

    # ---- reset ----------------------------------------------------------------------------------
    def add_reset_listener(self, listener: Callable[[], None]) -> None:
        """Called after ``reset_from``: modules drop caches or queues derived from the old state."""
        self._reset_listeners.append(listener)

    def reset_from(self, fresh: World, *, keep_extra: frozenset[str] = frozenset()) -> None:
        """Take over ``fresh``'s directory, events, grants, switches and per-module state in place.

        Routes hold a reference to this object, so a reset must mutate rather than replace it.
        Change and reset listeners stay registered; ``extra`` keys in ``keep_extra`` survive.
        """
        with self.lock:
            kept = {k: v for k, v in self.extra.items() if k in keep_extra}
            self.tenants = fresh.tenants
            self.apps = fresh.apps
            self.users = fresh.users
            self.groups = fresh.groups
            self.clock_offset = fresh.clock_offset
            self.events = fresh.events
            self.messages = fresh.messages
            self.refresh_tokens = fresh.refresh_tokens
            self.switches = fresh.switches
            self.extra = {**fresh.extra, **kept}
        for listener in list(self._reset_listeners):
            listener()
