"""Ports: the small interfaces the core depends on. Adapters implement them; unit tests use fakes.

Store verbs follow the Azure SDK guidelines: ``get_x`` raises ``NotFound``,
``list_x`` returns empty, ``create_x`` raises ``ConcurrencyConflict`` when the
record exists, ``update_x`` sends the record's ETag and raises
``ConcurrencyConflict`` when it changed, ``delete_x`` succeeds when absent.
Create and update return the record with its new ETag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.config import Settings
from shared.models import (
    AccessToken,
    Booking,
    BusyDelta,
    CachedBlock,
    CachedPerson,
    CreatedSubscription,
    DeltaRound,
    DirectoryUser,
    EmailRecord,
    EmailTemplate,
    EventDraft,
    FlowKind,
    MailboxHours,
    MailboxPurpose,
    MailboxSync,
    MailItem,
    ObservedEvent,
    OutgoingMail,
    Pace,
    QueuedMessage,
    Schedule,
    Session,
    SigninResult,
    SigninStart,
    Subscription,
    SubscriptionSecret,
    Tenant,
    User,
)


class Clock(Protocol):
    def now(self) -> datetime: ...


class TokenCipher(Protocol):
    """Authenticated encryption bound to the record it protects."""

    def encrypt(self, plaintext: bytes, *, tenant_id: str, record_id: str) -> str: ...

    def decrypt(self, token: str, *, tenant_id: str, record_id: str) -> bytes:
        """Raises TokenIntegrityError when tampered, moved to another record or under an unknown key."""
        ...

    def is_current(self, token: str) -> bool:
        """Whether the ciphertext is under the current key version (else re-encrypt on next write)."""
        ...


class TenantStore(Protocol):
    def get_tenant(self, tenant_id: str) -> Tenant: ...
    def create_tenant(self, tenant: Tenant) -> Tenant: ...
    def update_tenant(self, tenant: Tenant) -> Tenant: ...
    def delete_tenant(self, tenant_id: str) -> None: ...
    def list_tenants(self) -> list[Tenant]: ...


class UserStore(Protocol):
    def get_user(self, tenant_id: str, user_id: str) -> User: ...
    def create_user(self, user: User) -> User: ...
    def update_user(self, user: User) -> User: ...
    def delete_user(self, tenant_id: str, user_id: str) -> None: ...
    def list_users(self, tenant_id: str) -> list[User]: ...


class TokenCacheStore(Protocol):
    """Serialized MSAL token caches, encrypted at rest.

    ``owner`` is a user's object id, or ``"app"`` for the tenant's app-only cache.
    """

    def load_cache(self, tenant_id: str, owner: str) -> str | None: ...
    def save_cache(self, tenant_id: str, owner: str, serialized: str) -> None: ...
    def delete_cache(self, tenant_id: str, owner: str) -> None: ...


class FlowStore(Protocol):
    """The states of browser flows whose callback was accepted: what makes a flow single use.

    The pending flows themselves travel sealed in the browser's cookie (``shared.identity.flows``).
    """

    def consume_state(self, kind: FlowKind, state_hash: str, expires_at: datetime) -> None:
        """Record the state as used until ``expires_at``. Raises InvalidFlowState when it already is."""
        ...

    def purge_expired_states(self, before: datetime) -> int:
        """Delete records whose flow expired before ``before``; returns how many."""
        ...


class SessionStore(Protocol):
    def create_session(self, session: Session) -> Session: ...
    def get_session(self, session_hash: str) -> Session: ...
    def update_session(self, session: Session) -> Session: ...
    def delete_session(self, session_hash: str) -> None: ...
    def delete_user_sessions(self, tenant_id: str, user_id: str) -> None: ...

    def purge_expired_sessions(self, before: datetime) -> int:
        """Delete sessions that expired before ``before`` (with their index rows); returns how many."""
        ...


class BookingStore(Protocol):
    """Bookings, an event-id index, and per-interviewer slot claims that settle races between instances."""

    def get_booking(self, tenant_id: str, booking_id: str) -> Booking: ...
    def create_booking(self, booking: Booking) -> Booking: ...
    def update_booking(self, booking: Booking) -> Booking:
        """Also keeps the event-id index pointing at the booking once it has an event."""
        ...

    def delete_booking(self, tenant_id: str, booking_id: str) -> None: ...
    def list_bookings(self, tenant_id: str) -> list[Booking]: ...

    def list_bookings_between(self, tenant_id: str, start: datetime, end: datetime) -> list[Booking]:
        """Bookings of the tenant that overlap [start, end), any status; filtered by storage."""
        ...

    def page_bookings(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        *,
        after: str | None,
        limit: int,
        attendee: str | None = None,
    ) -> tuple[list[Booking], str | None]:
        """Up to ``limit`` listed bookings (not pending or refused) overlapping [start, end), of
        ``attendee`` when given, in start order (then booking id) after the cursor ``after``; the cursor
        to continue after, or None when there are no more. A full page unless it is the last."""
        ...

    def find_booking_by_event(self, tenant_id: str, event_id: str) -> Booking:
        """The booking whose event has this Graph id. Raises NotFound."""
        ...

    def list_pending_bookings(self, tenant_id: str) -> list[Booking]:
        """The tenant's bookings still ``pending`` (a request is making them, or died doing so)."""
        ...

    def list_pending_bookings_in(self, tenant_id: str, mailbox: str) -> list[Booking]:
        """The tenant's bookings still ``pending`` whose event goes to ``mailbox``, through an index written
        with each pending booking (cheap: it holds only bookings being made; bookings made pending before
        that index existed are not listed)."""
        ...

    def claim_slots(self, tenant_id: str, mailbox: str, booking_id: str, cells: Sequence[datetime]) -> None:
        """Claim every grid cell for ``booking_id`` at once (cells it already holds are kept). Raises
        ConcurrencyConflict, naming nothing, when another booking holds any of them."""
        ...

    def release_slots(self, tenant_id: str, mailbox: str, booking_id: str, cells: Sequence[datetime]) -> None:
        """Release the cells this booking holds; cells held by another booking are left alone."""
        ...


class SubscriptionStore(Protocol):
    def get_subscription(self, tenant_id: str, subscription_id: str) -> Subscription: ...
    def create_subscription(self, subscription: Subscription) -> Subscription: ...
    def update_subscription(self, subscription: Subscription) -> Subscription: ...
    def delete_subscription(self, tenant_id: str, subscription_id: str) -> None: ...
    def list_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]: ...
    def find_subscription(self, subscription_id: str) -> Subscription:
        """Look a subscription up by id alone (change notifications carry no tenant we can trust)."""
        ...

    def find_secret(self, subscription_id: str) -> SubscriptionSecret:
        """The tenant and clientState hash of a subscription, by id alone, in one point read. Raises NotFound."""
        ...

    def get_mailbox_sync(self, tenant_id: str, mailbox: str) -> MailboxSync: ...
    def create_mailbox_sync(self, sync: MailboxSync) -> MailboxSync: ...
    def update_mailbox_sync(self, sync: MailboxSync) -> MailboxSync: ...
    def list_mailbox_syncs(self, tenant_id: str | None = None) -> list[MailboxSync]: ...
    def add_dropped(self, scope: str, counts: Mapping[str, int]) -> None:
        """Add to the dropped-notification counters of ``scope`` (a tenant id, or ``UNATTRIBUTED`` for
        notifications naming no subscription we know). Merged under the row's ETag; raises
        ConcurrencyConflict when other writers kept winning, UpstreamUnavailable when storage is down."""
        ...

    def get_dropped(self, scope: str) -> dict[str, int]:
        """The dropped-notification counters of ``scope`` (empty when none were recorded)."""
        ...


class BusyCacheStore(Protocol):
    """The warm busy cache: per interviewer of a tenant, one record and their busy blocks, in one
    partition so a window of one person is one range read; and a per-tenant epoch that every write
    moves, so a worker can tell in one point read whether what it remembers still holds."""

    def read_person(
        self, tenant_id: str, person: str, start: datetime, end: datetime
    ) -> tuple[CachedPerson, tuple[CachedBlock, ...]]:
        """The record and the blocks overlapping [start, end) in time order. Raises NotFound."""
        ...

    def get_person(self, tenant_id: str, person: str) -> CachedPerson: ...
    def list_people(self, tenant_id: str | None = None) -> list[CachedPerson]: ...
    def create_person(self, record: CachedPerson) -> CachedPerson:
        """Raises ConcurrencyConflict when the person is already kept."""
        ...

    def update_person(self, record: CachedPerson) -> CachedPerson:
        """Sends the record's ETag; raises ConcurrencyConflict when it changed."""
        ...

    def delete_person(self, tenant_id: str, person: str) -> None:
        """The record and every block; succeeds when absent."""
        ...

    def apply_changes(
        self, tenant_id: str, person: str, upserts: Sequence[CachedBlock], removals: Sequence[str]
    ) -> None:
        """Write blocks and remove blocks by key (a key not kept is nothing to remove)."""
        ...

    def replace_blocks(self, tenant_id: str, person: str, blocks: Sequence[CachedBlock]) -> None:
        """Make ``blocks`` the person's only blocks."""
        ...

    def get_epoch(self, tenant_id: str) -> str:
        """The tenant's cache epoch ("" when nothing was written yet)."""
        ...

    def bump_epoch(self, tenant_id: str) -> str: ...


class NotificationQueue(Protocol):
    """The storage queue between the webhook and the notification worker."""

    def send(self, message: str, *, delay: timedelta | None = None) -> None:
        """Persist one message, invisible for ``delay`` first (a delayed retry). Raises UpstreamUnavailable
        when the queue cannot be written."""
        ...

    def poison_count(self) -> int:
        """About how many messages sit in ``<queue>-poison`` (0 when it does not exist)."""
        ...

    def receive_poison(self, *, max_messages: int, lease: timedelta) -> list[QueuedMessage]:
        """Up to ``max_messages`` messages of ``<queue>-poison``, each hidden from other readers for
        ``lease`` (empty when the queue does not exist). Raises UpstreamUnavailable."""
        ...

    def delete_poison(self, message: QueuedMessage) -> None:
        """Remove a received poison message (nothing when it is already gone). Raises UpstreamUnavailable."""
        ...

    def release_poison(self, message: QueuedMessage) -> None:
        """End a received poison message's lease: visible again at once (nothing when it is gone).
        Raises UpstreamUnavailable."""
        ...

    def keep_poison(self, message: QueuedMessage) -> None:
        """Write the message to ``<queue>-poison`` again without an expiry and delete this copy (poison
        messages the Functions host writes expire after 7 days). Raises UpstreamUnavailable."""
        ...


class KeySource(Protocol):
    """Versioned 256-bit data keys for the TokenCipher (Key Vault secret or a local key file)."""

    def current(self) -> tuple[str, bytes]:
        """The version and key that new ciphertexts are written under."""
        ...

    def get(self, version: str) -> bytes:
        """The key of an earlier or current version. Raises TokenIntegrityError when unknown."""
        ...


class StorageHealth(Protocol):
    def check(self) -> bool:
        """A cheap reachability probe for the health endpoint.

        Returns True when storage answers; raises UpstreamUnavailable (ConfigurationError for
        refused credentials) with a message naming the endpoint when it does not.
        """
        ...


class Stores(Protocol):
    """Every store of the storage account."""

    @property
    def tenants(self) -> TenantStore: ...
    @property
    def users(self) -> UserStore: ...
    @property
    def token_caches(self) -> TokenCacheStore: ...
    @property
    def flows(self) -> FlowStore: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def bookings(self) -> BookingStore: ...
    @property
    def subscriptions(self) -> SubscriptionStore: ...
    @property
    def busy(self) -> BusyCacheStore: ...
    @property
    def email_templates(self) -> TemplateStore: ...
    @property
    def emails(self) -> EmailLedger: ...
    @property
    def email_pacing(self) -> PacingStore: ...


class Storage(StorageHealth, Stores, Protocol):
    """The storage account: every store, and the health probe."""


class ReachabilityProbe(Protocol):
    def reachable(self, url: str) -> str:
        """A short description of how the URL answered; raises UpstreamUnavailable when it did not."""
        ...


class IdentityProvider(Protocol):
    """Microsoft identity platform, through MSAL. Raises our errors, never MSAL's."""

    def start_signin(
        self, *, scopes: list[str], redirect_uri: str, login_hint: str | None = None, prompt: str | None = None
    ) -> SigninStart: ...

    def complete_signin(self, flow: dict[str, Any], auth_response: dict[str, str]) -> SigninResult:
        """Raises InvalidFlowState (state or nonce mismatch), SigninDenied (an error answer)."""
        ...

    def acquire_user_token(
        self,
        *,
        tenant_id: str,
        user_id: str,
        serialized_cache: str | None,
        scopes: list[str],
        refused: str | None = None,
        claims_challenge: str | None = None,
    ) -> AccessToken:
        """Raises ReauthRequired when the refresh token no longer works (or ``serialized_cache`` is None).

        While the access token derived from this cache is fresh, answered from the worker's memory.
        ``refused``: the access token Graph just refused; it is never answered again: the refresh
        token is redeemed (with ``claims_challenge``, the decoded claims of Graph's challenge), unless
        another request already replaced that token."""
        ...

    def acquire_app_token(
        self,
        *,
        tenant_id: str,
        serialized_cache: str | None,
        fresh: bool = False,
        refused: str | None = None,
        claims_challenge: str | None = None,
    ) -> AccessToken:
        """Raises AdminConsentRequired when the tenant gives the app no token.

        ``fresh``: ask the identity platform itself, ignoring any answer remembered for this worker
        (cached tokens, and error answers MSAL keeps for a while), as a consent verification must.
        ``refused``: the app-only token Graph just refused; a new one is asked for (unless another
        request already replaced it). ``serialized_cache`` None also asks the identity platform."""
        ...

    def resolve_tenant(self, tenant: str) -> str:
        """The tenant id (GUID) for a tenant id or verified domain; raises NotFound."""
        ...

    def admin_consent_url(self, *, tenant: str, state: str, redirect_uri: str) -> str: ...


class GraphGateway(Protocol):
    """Microsoft Graph calls the core needs. Raises NotFound or GraphRequestFailed."""

    def get_user(self, token: AccessToken, user: str) -> DirectoryUser: ...

    def list_users(self, token: AccessToken, *, top: int) -> list[DirectoryUser]: ...

    def mailbox_purposes(self, token: AccessToken, addresses: Sequence[str]) -> dict[str, MailboxPurpose]:
        """What each address's mailbox is (mailboxSettings ``userPurpose``), read with ``token``'s tenant's
        directory in one ``$batch`` per 20 addresses; keyed by the lower-cased address. Anyone the tenant
        does not hold is NOT_IN_TENANT; a mailbox Graph will not open for the app is UNREACHABLE; an
        address whose answer failed or never came is UNKNOWN. Never raises for a single address; raises
        GraphRequestFailed(reason="unauthorized") when Graph refuses the token itself."""
        ...

    def probe_calendar(self, token: AccessToken, mailbox: str | None) -> None:
        """Read a tiny calendar window of ``mailbox`` (None: the signed-in user's own)."""
        ...

    def get_schedules(
        self,
        token: AccessToken,
        emails: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        deadline: float,
        on_turn: Callable[[], None] | None = None,
    ) -> list[Schedule]:
        """Free/busy and working hours of each address over [start, end), through the signed-in
        user's ``/me/calendar/getSchedule``: chunks of at most 20 addresses and windows under 62 days,
        up to 4 requests in flight, retries within ``deadline`` (a ``time.monotonic()`` value).
        One result per address, in order. A person that could not be read comes back UNREADABLE
        with a reason (never as free). Raises GraphRequestFailed(reason="unauthorized") when Graph
        refuses the token itself. ``on_turn`` is called whenever one of the requests has its turn on
        the mailbox, just before it is sent (from the thread that sends it; often more than once): what
        the caller does beside these reads can wait for it, so that it does not hold back requests that
        could go at once."""
        ...

    def create_subscription(
        self,
        token: AccessToken,
        *,
        resource: str,
        notification_url: str,
        lifecycle_url: str,
        client_state: str,
        expires_at: datetime,
    ) -> CreatedSubscription:
        """POST /subscriptions (created, updated, deleted). Raises GraphRequestFailed (the handshake failed,
        the mailbox is blocked or over its quota)."""
        ...

    def renew_subscriptions(
        self, token: AccessToken, renewals: Sequence[tuple[str, datetime]]
    ) -> dict[str, CreatedSubscription | Exception]:
        """PATCH each subscription's expiry (through $batch when there are several). Per id: what Graph
        answered, or the error (NotFound when Graph no longer knows it)."""
        ...

    def reauthorize_subscription(self, token: AccessToken, subscription_id: str) -> None:
        """POST /subscriptions/{id}/reauthorize. Raises NotFound, GraphRequestFailed."""
        ...

    def delete_subscription(self, token: AccessToken, subscription_id: str) -> None:
        """DELETE /subscriptions/{id}; succeeds when Graph no longer knows it."""
        ...

    def calendar_delta(
        self, token: AccessToken, mailbox: str, *, delta_link: str | None, start: datetime, end: datetime
    ) -> DeltaRound:
        """One ``calendarView/delta`` round over the mailbox's primary calendar, following nextLinks to the
        deltaLink: from ``delta_link``, or a fresh sync of [start, end) when None. Raises DeltaExpired when
        Graph answers 410 (the app must sync afresh)."""
        ...

    def busy_delta(
        self, token: AccessToken, mailbox: str, *, delta_link: str | None, start: datetime, end: datetime
    ) -> BusyDelta:
        """One ``/users/{mailbox}/calendarView/delta`` round with an app token, every nextLink followed to
        the deltaLink, each entry reduced to a busy block (no subject, body, location or attendees) or a
        removal. Raises DeltaExpired on 410, NotFound when the tenant has no such mailbox,
        GraphRequestFailed, UpstreamUnavailable."""
        ...

    def mailbox_hours(self, token: AccessToken, mailbox: str) -> MailboxHours:
        """The mailbox's working hours and zone (mailboxSettings ``workingHours``), as getSchedule reports
        them. Raises NotFound, GraphRequestFailed, UpstreamUnavailable."""
        ...

    def mailbox_hours_from(self, source: str) -> MailboxHours:
        """``MailboxHours`` again from its ``source`` (as kept by the cache). Raises ValueError."""
        ...


class EventGateway(Protocol):
    """Graph event calls for booking and sync. ``mailbox`` is the address whose calendar holds the event;
    ``calendar_id`` None means its primary calendar. Raises NotFound or GraphRequestFailed."""

    def create_event(
        self, token: AccessToken, mailbox: str, draft: EventDraft, *, calendar_id: str | None = None
    ) -> ObservedEvent:
        """POST the event. Retried on faults only when the draft carries a transaction id. The answer
        holds the id, iCalUId and join URL (extended properties are not in a create's answer)."""
        ...

    def get_event(self, token: AccessToken, mailbox: str, event_id: str) -> ObservedEvent:
        """Only the fields booking and sync need, with our extended property. Raises NotFound when gone."""
        ...

    def find_event_by_booking(
        self, token: AccessToken, mailbox: str, booking_id: str, *, calendar_id: str | None = None
    ) -> ObservedEvent | None:
        """The event carrying our property with this booking id, if any."""
        ...

    def update_event(self, token: AccessToken, mailbox: str, event_id: str, draft: EventDraft) -> None: ...

    def cancel_event(self, token: AccessToken, mailbox: str, event_id: str, comment: str) -> None:
        """As organizer: attendees are told, with ``comment``."""
        ...

    def delete_event(self, token: AccessToken, mailbox: str, event_id: str) -> None: ...


class Dependencies(Stores, Protocol):
    """What the core services need; ``shared.bootstrap.Container`` provides it."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def cipher(self) -> TokenCipher: ...
    @property
    def notification_queue(self) -> NotificationQueue: ...
    @property
    def identity(self) -> IdentityProvider: ...
    @property
    def graph(self) -> GraphGateway: ...
    @property
    def events(self) -> EventGateway: ...


# ---- candidate email (shared/email) -----------------------------------------------------------------
class TemplateStore(Protocol):
    def get_template(self, tenant_id: str, name: str) -> EmailTemplate:
        """Raises NotFound when the tenant never saved this one (the default applies)."""
        ...

    def save_template(self, template: EmailTemplate) -> EmailTemplate:
        """Create or replace: an admin's save is the whole template (last writer wins)."""
        ...


class EmailLedger(Protocol):
    """One row per message key, and an index of the rows not yet sent or failed."""

    def create_email(self, record: EmailRecord) -> EmailRecord:
        """Raises ConcurrencyConflict when the key exists (another request asked for the same message)."""
        ...

    def get_email(self, tenant_id: str, key: str) -> EmailRecord: ...

    def update_email(self, record: EmailRecord) -> EmailRecord:
        """Under the record's ETag (ConcurrencyConflict when it changed); keeps the index of unsent rows."""
        ...

    def list_booking_emails(self, tenant_id: str, booking_id: str) -> list[EmailRecord]: ...

    def list_unsent(self, *, limit: int) -> list[EmailRecord]:
        """Queued and in-flight records of every tenant (through the index), at most ``limit``."""
        ...


class PacingStore(Protocol):
    def get_pace(self, tenant_id: str, sender_id: str) -> Pace:
        """An empty Pace (no ETag) when the recruiter has not sent anything yet."""
        ...

    def save_pace(self, pace: Pace) -> Pace:
        """Create (no ETag) or update under its ETag; raises ConcurrencyConflict when another instance won."""
        ...


class MailGateway(Protocol):
    """Graph mail calls with the recruiter's delegated token. Raise NotFound or GraphRequestFailed."""

    def send_mail(self, token: AccessToken, mail: OutgoingMail) -> None:
        """POST /me/sendMail, saved to Sent Items, carrying the message key. Never retried: an unknown outcome
        (a timeout, a 5xx) raises, and the caller looks the key up before it tries again."""
        ...

    def find_sent(self, token: AccessToken, key: str) -> MailItem | None:
        """Our message with this key in Sent Items (or still in the Outbox), if any."""
        ...

    def conversation(self, token: AccessToken, conversation_id: str) -> list[MailItem]:
        """The Inbox messages of one conversation (the replies), in no order: Graph refuses a conversationId
        filter together with $orderby."""
        ...


class EmailDependencies(Dependencies, Protocol):
    """What candidate email needs besides the kernel's dependencies."""

    @property
    def email_templates(self) -> TemplateStore: ...
    @property
    def emails(self) -> EmailLedger: ...
    @property
    def email_pacing(self) -> PacingStore: ...
    @property
    def mail(self) -> MailGateway: ...
