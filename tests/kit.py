"""The shared test kit: one FakeClock, hand-written fakes of the ports (with the same ETag and
single-use semantics as the adapters), and builders for a consented tenant and a signed-in user,
both over fakes and end to end against the local stack.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.adapters.crypto import KEY_BYTES, KEY_VERSION_PATTERN, AesGcmCipher
from shared.config import Settings
from shared.errors import (
    AdminConsentRequired,
    ConcurrencyConflict,
    DeltaExpired,
    GraphRequestFailed,
    InvalidFlowState,
    NotFound,
    ReauthRequired,
    SigninDenied,
    TokenIntegrityError,
    UpstreamUnavailable,
)
from shared.models import (
    AccessToken,
    Booking,
    BookingStatus,
    BusyChange,
    BusyDelta,
    CachedBlock,
    CachedPerson,
    ConsentStatus,
    CreatedSubscription,
    DeltaChange,
    DeltaRound,
    DirectoryUser,
    EmailRecord,
    EmailStatus,
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
    ScheduleStatus,
    Session,
    SigninResult,
    SigninStart,
    Subscription,
    SubscriptionSecret,
    Tenant,
    User,
)

if TYPE_CHECKING:
    from shared.bootstrap import Container


def stack_now() -> datetime:
    """Now on the clock of the service and the local cloud: the machine's, moved when a run pins a date.

    ``--today`` / ``CALENDAR_TEST_TODAY`` (tests/conftest.py) sets ``CLOCK_OFFSET_SECONDS``, which both
    honour; the local cloud's ``utcnow`` is that clock. Tests that place anything relative to "now"
    (next week's Monday, a minimum notice) read it here, never ``datetime.now``.
    """
    from devtools.cloud.state import utcnow

    return utcnow()


def stack_offset() -> timedelta:
    """How far the stack's clock runs from the machine's (zero unless the run pins a date)."""
    return timedelta(milliseconds=round((stack_now() - datetime.now(UTC)).total_seconds() * 1000))


def stack_today() -> date:
    """Today's date in UTC on the stack's clock (see ``stack_now``)."""
    return stack_now().date()


class StaticKeySource:
    """A fixed set of in-memory keys: for tests, never for the deployed service."""

    def __init__(self, keys: dict[str, bytes], *, current: str) -> None:
        if current not in keys:
            raise ValueError("current must name one of the keys.")
        for version, key in keys.items():
            if not KEY_VERSION_PATTERN.fullmatch(version) or len(key) != KEY_BYTES:
                raise ValueError("Each key needs a version of [A-Za-z0-9_-] and exactly 32 bytes.")
        self._keys = dict(keys)
        self._current = current

    def current(self) -> tuple[str, bytes]:
        return self._current, self._keys[self._current]

    def get(self, version: str) -> bytes:
        try:
            return self._keys[version]
        except KeyError:
            raise TokenIntegrityError(
                f"Stored token is under unknown key version {version!r}.", reason="unknown_key_version"
            ) from None

    def add(self, version: str, key: bytes, *, make_current: bool = True) -> None:
        if not KEY_VERSION_PATTERN.fullmatch(version) or len(key) != KEY_BYTES:
            raise ValueError("Each key needs a version of [A-Za-z0-9_-] and exactly 32 bytes.")
        self._keys[version] = key
        if make_current:
            self._current = version


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


class _Records:
    """Records keyed by a tuple, each with an ETag that changes on every write."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, ...], Any] = {}

    def get(self, key: tuple[str, ...]) -> Any:
        if key not in self.items:
            raise NotFound("not found")
        return self.items[key]

    def create(self, key: tuple[str, ...], record: Any) -> Any:
        if key in self.items:
            raise ConcurrencyConflict("exists")
        stored = replace(record, etag=uuid.uuid4().hex)
        self.items[key] = stored
        return stored

    def update(self, key: tuple[str, ...], record: Any) -> Any:
        current = self.get(key)
        if record.etag != current.etag:
            raise ConcurrencyConflict("stale etag")
        stored = replace(record, etag=uuid.uuid4().hex)
        self.items[key] = stored
        return stored

    def delete(self, key: tuple[str, ...]) -> None:
        self.items.pop(key, None)


class FakeTenants(_Records):
    def get_tenant(self, tenant_id: str) -> Tenant:
        return self.get((tenant_id,))  # type: ignore[no-any-return]

    def create_tenant(self, tenant: Tenant) -> Tenant:
        return self.create((tenant.tenant_id,), tenant)  # type: ignore[no-any-return]

    def update_tenant(self, tenant: Tenant) -> Tenant:
        return self.update((tenant.tenant_id,), tenant)  # type: ignore[no-any-return]

    def delete_tenant(self, tenant_id: str) -> None:
        self.delete((tenant_id,))

    def list_tenants(self) -> list[Tenant]:
        return list(self.items.values())


class FakeUsers(_Records):
    def get_user(self, tenant_id: str, user_id: str) -> User:
        return self.get((tenant_id, user_id))  # type: ignore[no-any-return]

    def create_user(self, user: User) -> User:
        return self.create((user.tenant_id, user.user_id), user)  # type: ignore[no-any-return]

    def update_user(self, user: User) -> User:
        return self.update((user.tenant_id, user.user_id), user)  # type: ignore[no-any-return]

    def delete_user(self, tenant_id: str, user_id: str) -> None:
        self.delete((tenant_id, user_id))

    def list_users(self, tenant_id: str) -> list[User]:
        return [u for (t, _), u in self.items.items() if t == tenant_id]


class FakeSessions(_Records):
    def create_session(self, session: Session) -> Session:
        return self.create((session.session_hash,), session)  # type: ignore[no-any-return]

    def get_session(self, session_hash: str) -> Session:
        return self.get((session_hash,))  # type: ignore[no-any-return]

    def update_session(self, session: Session) -> Session:
        return self.update((session.session_hash,), session)  # type: ignore[no-any-return]

    def delete_session(self, session_hash: str) -> None:
        self.delete((session_hash,))

    def delete_user_sessions(self, tenant_id: str, user_id: str) -> None:
        for key, s in list(self.items.items()):
            if (s.tenant_id, s.user_id) == (tenant_id, user_id):
                del self.items[key]

    def purge_expired_sessions(self, before: datetime) -> int:
        expired = [key for key, s in self.items.items() if s.expires_at <= before]
        for key in expired:
            del self.items[key]
        return len(expired)


class FakeBookings(_Records):
    """Bookings with the event index and slot claims of the table adapter."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: dict[tuple[str, str, datetime], str] = {}
        self.range_queries = 0

    def get_booking(self, tenant_id: str, booking_id: str) -> Booking:
        return self.get((tenant_id, booking_id))  # type: ignore[no-any-return]

    def create_booking(self, booking: Booking) -> Booking:
        return self.create((booking.tenant_id, booking.booking_id), booking)  # type: ignore[no-any-return]

    def update_booking(self, booking: Booking) -> Booking:
        return self.update((booking.tenant_id, booking.booking_id), booking)  # type: ignore[no-any-return]

    def delete_booking(self, tenant_id: str, booking_id: str) -> None:
        self.delete((tenant_id, booking_id))

    def list_bookings(self, tenant_id: str) -> list[Booking]:
        return [b for (t, _), b in self.items.items() if t == tenant_id]

    def list_bookings_between(self, tenant_id: str, start: datetime, end: datetime) -> list[Booking]:
        self.range_queries += 1
        return [b for b in self.list_bookings(tenant_id) if b.start < end and b.end > start]

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
        def cursor(b: Booking) -> str:
            return f"{b.start.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}~{b.booking_id}"

        found = sorted(
            (
                b
                for b in self.list_bookings_between(tenant_id, start, end)
                if b.status not in (BookingStatus.PENDING, BookingStatus.FAILED)
                and (attendee is None or attendee.lower() in {a.lower() for a in b.attendees})
                and (after is None or cursor(b) > after)
            ),
            key=cursor,
        )
        return found[:limit], (cursor(found[limit - 1]) if len(found) > limit else None)

    def list_pending_bookings(self, tenant_id: str) -> list[Booking]:
        return [b for b in self.list_bookings(tenant_id) if b.status is BookingStatus.PENDING]

    def list_pending_bookings_in(self, tenant_id: str, mailbox: str) -> list[Booking]:
        return [b for b in self.list_pending_bookings(tenant_id) if b.mailbox.lower() == mailbox.strip().lower()]

    def find_booking_by_event(self, tenant_id: str, event_id: str) -> Booking:
        for booking in self.list_bookings(tenant_id):
            if booking.event_id == event_id:
                return booking
        raise NotFound("no booking holds that event")

    def claim_slots(self, tenant_id: str, mailbox: str, booking_id: str, cells: Sequence[datetime]) -> None:
        keys = [(tenant_id, mailbox.lower(), cell) for cell in cells]
        if any(self.claims.get(k, booking_id) != booking_id for k in keys):
            raise ConcurrencyConflict("another booking holds the slot")
        for k in keys:
            self.claims[k] = booking_id

    def release_slots(self, tenant_id: str, mailbox: str, booking_id: str, cells: Sequence[datetime]) -> None:
        for cell in cells:
            key = (tenant_id, mailbox.lower(), cell)
            if self.claims.get(key) == booking_id:
                del self.claims[key]


class FakeSubscriptions(_Records):
    """Subscriptions (key: tenant, id) and mailbox sync records (key: "sync", tenant, lower mailbox)."""

    def __init__(self) -> None:
        super().__init__()
        self.secret_reads = 0
        self.dropped: dict[str, Counter[str]] = {}
        self.down = False  # dropped-counter writes fail as when table storage is unreachable

    def get_subscription(self, tenant_id: str, subscription_id: str) -> Subscription:
        return self.get((tenant_id, subscription_id))  # type: ignore[no-any-return]

    def create_subscription(self, subscription: Subscription) -> Subscription:
        return self.create((subscription.tenant_id, subscription.subscription_id), subscription)  # type: ignore[no-any-return]

    def update_subscription(self, subscription: Subscription) -> Subscription:
        return self.update((subscription.tenant_id, subscription.subscription_id), subscription)  # type: ignore[no-any-return]

    def delete_subscription(self, tenant_id: str, subscription_id: str) -> None:
        self.delete((tenant_id, subscription_id))

    def list_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        return [s for k, s in self.items.items() if isinstance(s, Subscription) and tenant_id in (None, s.tenant_id)]

    def find_subscription(self, subscription_id: str) -> Subscription:
        for sub in self.list_subscriptions():
            if sub.subscription_id == subscription_id:
                return sub
        raise NotFound("no such subscription")

    def find_secret(self, subscription_id: str) -> SubscriptionSecret:
        self.secret_reads += 1
        sub = self.find_subscription(subscription_id)
        return SubscriptionSecret(
            sub.tenant_id, sub.subscription_id, sub.client_state_hash, sub.mailbox, sub.mailbox_id
        )

    def get_mailbox_sync(self, tenant_id: str, mailbox: str) -> MailboxSync:
        return self.get(("sync", tenant_id, mailbox.lower()))  # type: ignore[no-any-return]

    def create_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        return self.create(("sync", sync.tenant_id, sync.mailbox.lower()), sync)  # type: ignore[no-any-return]

    def update_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        return self.update(("sync", sync.tenant_id, sync.mailbox.lower()), sync)  # type: ignore[no-any-return]

    def list_mailbox_syncs(self, tenant_id: str | None = None) -> list[MailboxSync]:
        return [s for s in self.items.values() if isinstance(s, MailboxSync) and tenant_id in (None, s.tenant_id)]

    def add_dropped(self, scope: str, counts: Mapping[str, int]) -> None:
        if self.down:
            raise UpstreamUnavailable("table storage is down")
        self.dropped.setdefault(scope, Counter()).update(counts)

    def get_dropped(self, scope: str) -> dict[str, int]:
        return dict(self.dropped.get(scope, {}))


class FakeBusyCache:
    """The busy cache's store in memory; ``down`` makes every call fail as unreachable storage does."""

    def __init__(self) -> None:
        self.people = _Records()
        self.blocks: dict[tuple[str, str], dict[str, CachedBlock]] = {}
        self.epochs: dict[str, str] = {}
        self.down = False
        self.reads = 0

    def _check(self) -> None:
        if self.down:
            raise UpstreamUnavailable("storage is down")

    def read_person(
        self, tenant_id: str, person: str, start: datetime, end: datetime
    ) -> tuple[CachedPerson, tuple[CachedBlock, ...]]:
        self._check()
        self.reads += 1
        record = self.people.get((tenant_id, person))
        found = [b for b in self.blocks.get((tenant_id, person), {}).values() if b.start < end and b.end > start]
        return record, tuple(sorted(found, key=lambda b: (b.start, b.end, b.key)))

    def get_person(self, tenant_id: str, person: str) -> CachedPerson:
        self._check()
        return self.people.get((tenant_id, person))  # type: ignore[no-any-return]

    def list_people(self, tenant_id: str | None = None) -> list[CachedPerson]:
        self._check()
        return [r for (t, _p), r in self.people.items.items() if tenant_id is None or t == tenant_id]

    def create_person(self, record: CachedPerson) -> CachedPerson:
        self._check()
        return self.people.create((record.tenant_id, record.person), record)  # type: ignore[no-any-return]

    def update_person(self, record: CachedPerson) -> CachedPerson:
        self._check()
        return self.people.update((record.tenant_id, record.person), record)  # type: ignore[no-any-return]

    def delete_person(self, tenant_id: str, person: str) -> None:
        self._check()
        self.people.delete((tenant_id, person))
        self.blocks.pop((tenant_id, person), None)

    def apply_changes(
        self, tenant_id: str, person: str, upserts: Sequence[CachedBlock], removals: Sequence[str]
    ) -> None:
        self._check()
        kept = self.blocks.setdefault((tenant_id, person), {})
        for key in removals:
            kept.pop(key, None)
        for block in upserts:
            kept[block.key] = block

    def replace_blocks(self, tenant_id: str, person: str, blocks: Sequence[CachedBlock]) -> None:
        self._check()
        self.blocks[(tenant_id, person)] = {b.key: b for b in blocks}

    def get_epoch(self, tenant_id: str) -> str:
        self._check()
        return self.epochs.get(tenant_id, "")

    def bump_epoch(self, tenant_id: str) -> str:
        self._check()
        self.epochs[tenant_id] = uuid.uuid4().hex
        return self.epochs[tenant_id]


class FakeQueue:
    """The notification queue; ``down`` makes every send fail as an unreachable storage account does."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.delays: list[timedelta | None] = []  # the initial invisibility each message was sent with
        self.poison: list[str] = []
        self.poison_expiry: dict[str, datetime | None] = {}  # poison text -> its expiry (absent: none)
        self.leased: set[str] = set()  # poison messages received and not yet visible again
        self.down = False

    def send(self, message: str, *, delay: timedelta | None = None) -> None:
        if self.down:
            raise UpstreamUnavailable("queue storage is down")
        self.messages.append(message)
        self.delays.append(delay)

    def poison_count(self) -> int:
        return len(self.poison)

    def receive_poison(self, *, max_messages: int, lease: timedelta) -> list[QueuedMessage]:
        if self.down:
            raise UpstreamUnavailable("queue storage is down")
        # The lease hides what was received from the next call; ``leased.clear()`` ends every lease.
        taken = [m for m in self.poison if m not in self.leased][:max_messages]
        self.leased |= set(taken)
        return [QueuedMessage(str(i), "receipt", text, self.poison_expiry.get(text)) for i, text in enumerate(taken)]

    def delete_poison(self, message: QueuedMessage) -> None:
        if message.text in self.poison:
            self.poison.remove(message.text)

    def release_poison(self, message: QueuedMessage) -> None:
        self.leased.discard(message.text)

    def keep_poison(self, message: QueuedMessage) -> None:
        self.poison_expiry[message.text] = None
        self.leased.discard(message.text)


class FakeCaches:
    """Token caches; ``lose_races`` makes every save fail as if another writer got there first."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}
        self.lose_races = False
        self.saves = 0

    def load_cache(self, tenant_id: str, owner: str) -> str | None:
        return self.items.get((tenant_id, owner))

    def save_cache(self, tenant_id: str, owner: str, serialized: str) -> None:
        self.saves += 1
        if self.lose_races:
            raise ConcurrencyConflict("another writer saved this cache first")
        self.items[(tenant_id, owner)] = serialized

    def delete_cache(self, tenant_id: str, owner: str) -> None:
        self.items.pop((tenant_id, owner), None)


class FakeFlows:
    """Used flow states with their expiry, as the table adapter keeps them."""

    def __init__(self, clock: FakeClock) -> None:
        self.items: dict[tuple[FlowKind, str], datetime] = {}
        self.clock = clock

    def consume_state(self, kind: FlowKind, state_hash: str, expires_at: datetime) -> None:
        if (kind, state_hash) in self.items:
            raise InvalidFlowState("already used")
        self.items[(kind, state_hash)] = expires_at

    def purge_expired_states(self, before: datetime) -> int:
        expired = [key for key, expires_at in self.items.items() if expires_at <= before]
        for key in expired:
            del self.items[key]
        return len(expired)


TENANT_A = "aaaaaaaa-0000-0000-0000-00000000000a"
TENANT_B = "bbbbbbbb-0000-0000-0000-00000000000b"
ALL_ROLES = ("Calendars.ReadWrite", "MailboxSettings.Read", "User.Read.All")


@dataclass
class FakeIdentity:
    """Plays the identity platform: which tenants consented with which roles, which users may refresh."""

    tenants: dict[str, str] = field(
        default_factory=lambda: {
            "contoso.example": TENANT_A,
            TENANT_A: TENANT_A,
            "fabrikam.example": TENANT_B,
            TENANT_B: TENANT_B,
        }
    )
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tenant id -> granted roles
    revoked_users: set[str] = field(default_factory=set)
    signin_as: SigninResult | None = None
    calls: list[str] = field(default_factory=list)
    refresh_user_caches: bool = False  # every user token comes with a changed cache (a refresh)
    # Refusals remembered per tenant until a time, as MSAL's HTTP cache keeps a 400 for 60 seconds.
    remembered_refusals: dict[str, datetime] = field(default_factory=dict)
    clock: FakeClock | None = None
    # What each sign-in start asked Microsoft for: login_hint and prompt.
    started: list[dict[str, str | None]] = field(default_factory=list)
    # The claims challenge each user-token request passed on (None: none).
    claims_challenges: list[str | None] = field(default_factory=list)
    # Tenants whose tenant-wide delegated consent is gone: a refresh answers AADSTS65001.
    withdrawn_delegated: set[str] = field(default_factory=set)
    # How many times each user's token was replaced after a refusal (the token's suffix).
    user_generation: dict[str, int] = field(default_factory=dict)

    def start_signin(
        self, *, scopes: list[str], redirect_uri: str, login_hint: str | None = None, prompt: str | None = None
    ) -> SigninStart:
        self.started.append({"login_hint": login_hint, "prompt": prompt})
        state = uuid.uuid4().hex
        flow = {"state": state, "scope": scopes, "redirect_uri": redirect_uri, "code_verifier": "v" * 43}
        return SigninStart(auth_uri=f"https://login.example/authorize?state={state}", state=state, flow=flow)

    def complete_signin(self, flow: dict[str, Any], auth_response: dict[str, str]) -> SigninResult:
        if "error" in auth_response:
            raise SigninDenied("denied", reason=auth_response["error"])
        if auth_response.get("state") != flow["state"]:
            raise InvalidFlowState("state mismatch")
        assert self.signin_as is not None
        return self.signin_as

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
        self.calls.append(f"user:{user_id}" + (":refresh" if refused is not None else ""))
        self.claims_challenges.append(claims_challenge)
        if user_id in self.revoked_users or not serialized_cache:
            raise ReauthRequired("revoked", reason="AADSTS50173")
        if tenant_id in self.withdrawn_delegated and refused is not None:
            raise ReauthRequired("consent withdrawn", reason="AADSTS65001")
        refreshed = f'{{"user": "{user_id}", "refresh": {len(self.calls)}}}' if self.refresh_user_caches else None
        generation = self.user_generation.get(user_id, 0) + (1 if refused is not None else 0)
        self.user_generation[user_id] = generation
        suffix = f"-{generation}" if generation else ""
        return AccessToken(
            token=f"user-token-{user_id}{suffix}",
            tenant_id=tenant_id,
            scopes=tuple(scopes),
            serialized_cache=refreshed,
            user_id=user_id,
        )

    def acquire_app_token(
        self,
        *,
        tenant_id: str,
        serialized_cache: str | None,
        fresh: bool = False,
        refused: str | None = None,
        claims_challenge: str | None = None,
    ) -> AccessToken:
        self.calls.append(f"app:{tenant_id}" + (":fresh" if fresh else "") + (":renew" if refused else ""))
        now = self.clock.now() if self.clock else None
        if fresh:
            self.remembered_refusals.pop(tenant_id, None)
        remembered = self.remembered_refusals.get(tenant_id)
        if tenant_id not in self.roles or (now is not None and remembered is not None and now < remembered):
            if now is not None and remembered is None:
                self.remembered_refusals[tenant_id] = now + timedelta(seconds=60)
            raise AdminConsentRequired("no consent", reason="AADSTS700016")
        return AccessToken(
            token=f"app-token-{tenant_id}",
            tenant_id=tenant_id,
            roles=self.roles[tenant_id],
            serialized_cache='{"app": "cache"}',
        )

    def resolve_tenant(self, tenant: str) -> str:
        if tenant not in self.tenants:
            raise NotFound("unknown tenant")
        return self.tenants[tenant]

    def admin_consent_url(self, *, tenant: str, state: str, redirect_uri: str) -> str:
        return f"https://login.example/{tenant}/v2.0/adminconsent?state={state}"


@dataclass
class FakeGraph:
    users: dict[str, dict[str, DirectoryUser]] = field(default_factory=dict)  # tenant -> ref -> user
    failures: dict[str, GraphRequestFailed] = field(default_factory=dict)  # mailbox -> failure
    schedules: dict[str, dict[str, Schedule]] = field(default_factory=dict)  # tenant -> address -> schedule
    schedule_calls: list[tuple[tuple[str, ...], datetime, datetime]] = field(default_factory=list)
    schedule_deadlines: list[float] = field(default_factory=list)  # the deadline of each call, in order
    live_subscriptions: dict[str, CreatedSubscription] = field(default_factory=dict)
    client_states: dict[str, str] = field(default_factory=dict)
    subscription_calls: list[str] = field(default_factory=list)
    granted_minutes: int = 10080
    clock: FakeClock = field(default_factory=FakeClock)
    mailbox_events: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # lower mailbox -> event id -> ObservedEvent
    pending_delta: dict[str, list[DeltaChange]] = field(default_factory=dict)
    expired_delta_links: set[str] = field(default_factory=set)
    delta_calls: list[str | None] = field(default_factory=list)
    # tenant -> address -> what the mailbox is; anyone else with a schedule or a directory entry is a user
    purposes: dict[str, dict[str, MailboxPurpose]] = field(default_factory=dict)
    purpose_calls: list[tuple[str, ...]] = field(default_factory=list)
    purpose_failure: Exception | None = None  # raised by the next mailbox_purposes call (then cleared)
    # The busy cache's reads: lower mailbox -> key -> block (what a full delta round answers), changes a
    # later round answers (then cleared), and each mailbox's working hours.
    busy_blocks: dict[str, dict[str, CachedBlock]] = field(default_factory=dict)
    pending_busy: dict[str, list[BusyChange]] = field(default_factory=dict)
    hours: dict[str, MailboxHours] = field(default_factory=dict)
    busy_calls: list[tuple[str, str | None]] = field(default_factory=list)  # (mailbox, delta link or None)

    def get_user(self, token: AccessToken, user: str) -> DirectoryUser:
        found = self.users.get(token.tenant_id, {}).get(user.lower())
        if found is None:
            raise NotFound("no such user")
        return found

    def list_users(self, token: AccessToken, *, top: int) -> list[DirectoryUser]:
        return list(self.users.get(token.tenant_id, {}).values())[:top]

    def mailbox_purposes(self, token: AccessToken, addresses: Sequence[str]) -> dict[str, MailboxPurpose]:
        self.purpose_calls.append(tuple(addresses))
        if self.purpose_failure is not None:
            failure, self.purpose_failure = self.purpose_failure, None
            raise failure
        tenant = token.tenant_id
        answers: dict[str, MailboxPurpose] = {}
        for address in (a.lower() for a in addresses):
            given = self.purposes.get(tenant, {}).get(address)
            if given is not None:
                answers[address] = given
            elif address in self.schedules.get(tenant, {}) or address in self.users.get(tenant, {}):
                answers[address] = MailboxPurpose.USER
            else:
                answers[address] = MailboxPurpose.NOT_IN_TENANT
        return answers

    def probe_calendar(self, token: AccessToken, mailbox: str | None) -> None:
        key = (mailbox or "me").lower()
        if key in self.failures:
            raise self.failures[key]

    # ---- subscriptions and delta, as Graph keeps them ----------------------------------------------
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
        self.subscription_calls.append("create")
        created = CreatedSubscription(f"sub-{uuid.uuid4().hex[:12]}", resource, min(expires_at, self.max_expiry(token)))
        self.live_subscriptions[created.subscription_id] = created
        self.client_states[created.subscription_id] = client_state
        return created

    def max_expiry(self, token: AccessToken) -> datetime:
        return self.clock.now() + timedelta(minutes=self.granted_minutes)

    def renew_subscriptions(
        self, token: AccessToken, renewals: Sequence[tuple[str, datetime]]
    ) -> dict[str, CreatedSubscription | Exception]:
        self.subscription_calls.append(f"renew:{len(renewals)}")
        answers: dict[str, CreatedSubscription | Exception] = {}
        for sub_id, expires_at in renewals:
            known = self.live_subscriptions.get(sub_id)
            if known is None:
                answers[sub_id] = NotFound("gone")
                continue
            renewed = replace(known, expires_at=min(expires_at, self.max_expiry(token)))
            self.live_subscriptions[sub_id] = renewed
            answers[sub_id] = renewed
        return answers

    def reauthorize_subscription(self, token: AccessToken, subscription_id: str) -> None:
        if subscription_id not in self.live_subscriptions:
            raise NotFound("gone")

    def delete_subscription(self, token: AccessToken, subscription_id: str) -> None:
        self.subscription_calls.append("delete")
        self.live_subscriptions.pop(subscription_id, None)

    def calendar_delta(
        self, token: AccessToken, mailbox: str, *, delta_link: str | None, start: datetime, end: datetime
    ) -> DeltaRound:
        self.delta_calls.append(delta_link)
        if mailbox.lower() in self.failures:
            raise self.failures[mailbox.lower()]
        if delta_link is not None and delta_link in self.expired_delta_links:
            raise DeltaExpired("gone", status=410, reason="other")
        events = self.mailbox_events.get(mailbox.lower(), {})
        if delta_link is None:
            changes = tuple(DeltaChange(e) for e in events)
        else:
            changes = tuple(self.pending_delta.pop(mailbox.lower(), ()))
        return DeltaRound(changes=changes, delta_link=f"https://graph.example/delta?token={uuid.uuid4().hex}")

    def busy_delta(
        self, token: AccessToken, mailbox: str, *, delta_link: str | None, start: datetime, end: datetime
    ) -> BusyDelta:
        key = mailbox.lower()
        self.busy_calls.append((key, delta_link))
        if key in self.failures:
            raise self.failures[key]
        if delta_link is not None and delta_link in self.expired_delta_links:
            raise DeltaExpired("gone", status=410, reason="other")
        if delta_link is None:
            changes = tuple(BusyChange(k, b) for k, b in self.busy_blocks.get(key, {}).items())
        else:
            changes = tuple(self.pending_busy.pop(key, ()))
        return BusyDelta(changes=changes, delta_link=f"https://graph.example/delta?token={uuid.uuid4().hex}")

    def mailbox_hours(self, token: AccessToken, mailbox: str) -> MailboxHours:
        key = mailbox.lower()
        if key in self.failures:
            raise self.failures[key]
        found = self.hours.get(key)
        if found is None:
            known = self.schedules.get(token.tenant_id, {}).get(key)
            found = MailboxHours(
                known.working_hours if known else None, known.mailbox_time_zone if known else None, source=f"h:{key}"
            )
            self.hours[key] = found
        return found

    def mailbox_hours_from(self, source: str) -> MailboxHours:
        for found in self.hours.values():
            if found.source == source:
                return found
        raise ValueError("unknown kept hours")

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
        """Each address's schedule from ``schedules`` (tenant -> address), clipped to the window;
        anyone else is unknown, as getSchedule reports an address it cannot resolve. ``on_turn`` is
        called once, as the one request's turn."""
        self.schedule_calls.append((tuple(emails), start, end))
        self.schedule_deadlines.append(deadline)
        if "me" in self.failures:
            raise self.failures["me"]
        if on_turn is not None:
            on_turn()
        known = self.schedules.get(token.tenant_id, {})
        answers = []
        for email in emails:
            found = known.get(email.lower())
            if found is None:
                answers.append(Schedule(email=email, status=ScheduleStatus.UNREADABLE, reason="unknown"))
            else:
                busy = tuple(b for b in found.busy if b.end > start and b.start < end)
                answers.append(replace(found, email=email, busy=busy))
        return answers


@dataclass
class FakeEvents:
    """Graph events in memory: transactionId dedupe, our property, Teams meetings that a move may drop,
    and refusals per mailbox (``refuse``: address -> error raised for any call to it)."""

    events: dict[str, ObservedEvent] = field(default_factory=dict)
    transactions: dict[tuple[str, str], str] = field(default_factory=dict)
    refuse: dict[str, Exception] = field(default_factory=dict)
    drop_meeting_on_move: int = 0
    calls: list[str] = field(default_factory=list)
    cancelled_with: dict[str, str] = field(default_factory=dict)
    # (call, mailbox, "app" | "recruiter"): whose permission each call used
    permissions: list[tuple[str, str, str]] = field(default_factory=list)

    def _check(self, token: AccessToken, mailbox: str, call: str) -> None:
        self.calls.append(call)
        self.permissions.append((call, mailbox.lower(), "app" if token.roles else "recruiter"))
        if mailbox.lower() in self.refuse:
            raise self.refuse[mailbox.lower()]

    def _find(self, mailbox: str, event_id: str) -> ObservedEvent:
        event = self.events.get(event_id)
        if event is None or event.mailbox != mailbox.lower():
            raise NotFound("no such event")
        return event

    def add(self, event: ObservedEvent) -> ObservedEvent:
        """An event someone made in Outlook (no property of ours unless given)."""
        self.events[event.event_id] = event
        return event

    def create_event(
        self, token: AccessToken, mailbox: str, draft: EventDraft, *, calendar_id: str | None = None
    ) -> ObservedEvent:
        self._check(token, mailbox, "create")
        key = (mailbox.lower(), draft.transaction_id or uuid.uuid4().hex)
        if key in self.transactions:
            return replace(self.events[self.transactions[key]], booking_id=None)
        assert draft.start is not None and draft.end is not None
        event = ObservedEvent(
            event_id=f"ev-{uuid.uuid4().hex[:12]}",
            mailbox=mailbox.lower(),
            start=draft.start,
            end=draft.end,
            subject=draft.subject or "",
            booking_id=draft.booking_id,
            ical_uid=f"uid-{uuid.uuid4().hex[:8]}",
            is_online_meeting=bool(draft.online_meeting),
            join_url=f"https://teams.example/{uuid.uuid4().hex[:8]}" if draft.online_meeting else None,
            location=draft.location,
            organizer=mailbox.lower(),
            attendees=tuple(draft.attendees or ()),
            change_key="1",
        )
        self.events[event.event_id] = event
        self.transactions[key] = event.event_id
        return replace(event, booking_id=None)  # a create's answer has no extended properties

    def get_event(self, token: AccessToken, mailbox: str, event_id: str) -> ObservedEvent:
        self._check(token, mailbox, "get")
        return self._find(mailbox, event_id)

    def find_event_by_booking(
        self, token: AccessToken, mailbox: str, booking_id: str, *, calendar_id: str | None = None
    ) -> ObservedEvent | None:
        self._check(token, mailbox, "find")
        return next(
            (e for e in self.events.values() if e.mailbox == mailbox.lower() and e.booking_id == booking_id), None
        )

    def update_event(self, token: AccessToken, mailbox: str, event_id: str, draft: EventDraft) -> None:
        self._check(token, mailbox, "update")
        event = self._find(mailbox, event_id)
        moved = (draft.start or event.start, draft.end or event.end) != (event.start, event.end)
        changes: dict[str, Any] = {"change_key": str(int(event.change_key or "0") + 1)}
        for name in ("subject", "start", "end", "attendees", "location"):
            if getattr(draft, name) is not None:
                changes[name] = getattr(draft, name)
        if moved and self.drop_meeting_on_move and event.is_online_meeting:
            self.drop_meeting_on_move -= 1
            self.detached = event.join_url
            changes.update(is_online_meeting=False, join_url=None)
        if draft.online_meeting and not event.is_online_meeting:
            changes.update(
                is_online_meeting=True, join_url=getattr(self, "detached", None) or "https://teams.example/new"
            )
        self.events[event_id] = replace(event, **changes)

    def cancel_event(self, token: AccessToken, mailbox: str, event_id: str, comment: str) -> None:
        self._check(token, mailbox, "cancel")
        event = self._find(mailbox, event_id)
        self.events[event_id] = replace(event, is_cancelled=True)
        self.cancelled_with[event_id] = comment

    def delete_event(self, token: AccessToken, mailbox: str, event_id: str) -> None:
        self._check(token, mailbox, "delete")
        self._find(mailbox, event_id)
        del self.events[event_id]


class FakeTemplates(_Records):
    def get_template(self, tenant_id: str, name: str) -> EmailTemplate:
        return self.get((tenant_id, name))  # type: ignore[no-any-return]

    def save_template(self, template: EmailTemplate) -> EmailTemplate:
        stored = replace(template, etag=uuid.uuid4().hex)
        self.items[(template.tenant_id, template.name)] = stored
        return stored


class FakeEmailLedger(_Records):
    def create_email(self, record: EmailRecord) -> EmailRecord:
        return self.create((record.tenant_id, record.key), record)  # type: ignore[no-any-return]

    def get_email(self, tenant_id: str, key: str) -> EmailRecord:
        return self.get((tenant_id, key))  # type: ignore[no-any-return]

    def update_email(self, record: EmailRecord) -> EmailRecord:
        return self.update((record.tenant_id, record.key), record)  # type: ignore[no-any-return]

    def list_booking_emails(self, tenant_id: str, booking_id: str) -> list[EmailRecord]:
        return [r for (t, _k), r in self.items.items() if t == tenant_id and r.booking_id == booking_id]

    def list_unsent(self, *, limit: int) -> list[EmailRecord]:
        unsent = [r for r in self.items.values() if r.status in (EmailStatus.QUEUED, EmailStatus.SENDING)]
        return unsent[:limit]


class FakePacing(_Records):
    def get_pace(self, tenant_id: str, sender_id: str) -> Pace:
        try:
            return self.get((tenant_id, sender_id))  # type: ignore[no-any-return]
        except NotFound:
            return Pace(tenant_id=tenant_id, sender_id=sender_id)

    def save_pace(self, pace: Pace) -> Pace:
        key = (pace.tenant_id, pace.sender_id)
        if pace.etag is None:
            return self.create(key, pace)  # type: ignore[no-any-return]
        return self.update(key, pace)  # type: ignore[no-any-return]


@dataclass
class FakeMail:
    """Plays the recruiter's mailboxes: what sendMail took (by token's user), and the Inbox's replies."""

    sent: list[tuple[str | None, OutgoingMail]] = field(default_factory=list)
    replies: list[MailItem] = field(default_factory=list)
    # What the next sendMail calls do instead of sending: an exception to raise, after sending when
    # ``send_then_fail`` (the answer lost after Exchange took the message).
    failures: list[Exception] = field(default_factory=list)
    send_then_fail: bool = False
    lookups: int = 0

    def send_mail(self, token: AccessToken, mail: OutgoingMail) -> None:
        if self.failures:
            failure = self.failures.pop(0)
            if self.send_then_fail:
                self.sent.append((token.user_id, mail))
            raise failure
        self.sent.append((token.user_id, mail))

    def find_sent(self, token: AccessToken, key: str) -> MailItem | None:
        self.lookups += 1
        for user, mail in self.sent:
            if user == token.user_id and mail.key == key:
                return MailItem(
                    message_id=f"m-{key}",
                    conversation_id=f"c-{key}",
                    subject=mail.subject,
                    sender=f"{user}@contoso.example",
                    to=tuple(a for a, _n in mail.to),
                    at=datetime(2026, 1, 1, tzinfo=UTC),
                    preview=mail.html[:50],
                    key=key,
                )
        return None

    def conversation(self, token: AccessToken, conversation_id: str) -> list[MailItem]:
        return [r for r in self.replies if r.conversation_id == conversation_id]


class FakeDeps:
    """Everything the core needs, in memory."""

    def __init__(self, **settings: Any) -> None:
        self.settings = Settings(
            client_id="client",
            client_secret="secret",
            public_base_url="https://svc.example",
            allowed_return_urls=("https://app.example/after-login",),
            **settings,
        )
        self.clock = FakeClock()
        self.cipher = AesGcmCipher(StaticKeySource({"k1": bytes(range(32))}, current="k1"))
        self.tenants = FakeTenants()
        self.users = FakeUsers()
        self.sessions = FakeSessions()
        self.bookings = FakeBookings()
        self.subscriptions = FakeSubscriptions()
        self.busy = FakeBusyCache()
        self.notification_queue = FakeQueue()
        self.token_caches = FakeCaches()
        self.flows = FakeFlows(self.clock)
        self.identity = FakeIdentity(clock=self.clock)
        self.graph = FakeGraph(clock=self.clock)
        self.events = FakeEvents()
        self.email_templates = FakeTemplates()
        self.emails = FakeEmailLedger()
        self.email_pacing = FakePacing()
        self.mail = FakeMail()


# ---- builders ------------------------------------------------------------------------------------
USER = SigninResult(
    tenant_id=TENANT_A,
    user_id="u1",
    username="rita@contoso.example",
    display_name="Rita",
    scopes=("Calendars.ReadWrite", "User.Read"),
    is_tenant_admin=False,
    serialized_cache='{"user": "cache"}',
)
ADMIN = replace(USER, user_id="admin1", is_tenant_admin=True)


def consented(deps: FakeDeps, tenant_id: str = TENANT_A) -> Tenant:
    """A tenant whose admin granted every role the service needs."""
    deps.identity.roles[tenant_id] = ALL_ROLES
    return deps.tenants.create_tenant(
        Tenant(
            tenant_id=tenant_id,
            consent_status=ConsentStatus.CONSENTED,
            granted_roles=ALL_ROLES,
            consented_at=deps.clock.now(),
            checked_at=deps.clock.now(),
        )
    )


def sign_in(deps: FakeDeps, result: SigninResult = USER, **start_kwargs: Any) -> str:
    """Sign ``result`` in through the core's own flow; returns the session credential."""
    from shared.identity.signin import complete_signin, start_signin

    start = start_signin(deps, **start_kwargs)
    state = start.redirect_url.split("state=")[1]
    deps.identity.signin_as = result
    return complete_signin(deps, {"state": state, "code": "c"}, start.binding).session_credential


def install(deps: FakeDeps) -> Container:
    """A composition root over the fakes, installed for handlers; ``set_container(None)`` removes it."""
    from shared.bootstrap import Container, set_container

    container = Container(
        deps.settings,
        clock=deps.clock,
        tenants=deps.tenants,
        users=deps.users,
        sessions=deps.sessions,
        bookings=deps.bookings,
        subscriptions=deps.subscriptions,
        busy=deps.busy,
        notification_queue=deps.notification_queue,
        token_caches=deps.token_caches,
        flows=deps.flows,
        identity=deps.identity,
        graph=deps.graph,
        events=deps.events,
        email_templates=deps.email_templates,
        emails=deps.emails,
        email_pacing=deps.email_pacing,
        mail=deps.mail,
    )
    set_container(container)
    return container


# ---- handlers called directly ------------------------------------------------------------------
def request(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
) -> func.HttpRequest:
    return func.HttpRequest(
        method, url, body=body, headers=headers or {}, params=params or {}, route_params=route_params or {}
    )


def error_of(response: func.HttpResponse) -> dict[str, Any]:
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())["error"]  # type: ignore[no-any-return]


# ---- end to end (the local stack of tests/e2e) ----------------------------------------------------
FUNCTION_KEY = "e2e-function-key-" + uuid.uuid4().hex
KEY = {"x-functions-key": FUNCTION_KEY}
CONTOSO = "9ede9f80-1655-48eb-ac0c-abec2d7295a7"
FABRIKAM = "d6c66e2f-e5ea-4654-9449-d8311928491c"
CONTOSO_ADMIN = "adele.vance@contoso.example"
RECRUITER = "megan.bowen@contoso.example"
FABRIKAM_ADMIN = "kai.nakamura@fabrikam.example"
FABRIKAM_RECRUITER = "sara.davis@fabrikam.example"
INTERVIEWS_MAILBOX = "interviews@contoso.example"
SYNC_MAILBOX = "sync@contoso.example"


def consent(stack: Any, admin: str = CONTOSO_ADMIN, domain: str = "contoso.example", **auto: Any) -> Any:
    """A browser in which ``admin`` granted admin consent for ``domain``; its last page is ``last_page``."""
    from devtools.cloud import controls

    controls.set_auto_sign_in(stack.world, admin, **auto)
    browser = stack.browser()
    browser.last_page = browser.navigate(f"/api/consent/start?tenant={domain}")
    return browser


def browser_sign_in(stack: Any, user: str = RECRUITER, path: str = "/api/auth/login") -> Any:
    """A browser in which ``user`` signed in (a session cookie, unless sign-in failed: see ``last_page``)."""
    from devtools.cloud import controls

    controls.set_auto_sign_in(stack.world, user)
    browser = stack.browser()
    browser.last_page = browser.navigate(path)
    return browser


def interview_slot(days: int = 21, hour: int = 21) -> tuple[datetime, datetime]:
    """An hour on the first Tuesday at least ``days`` ahead on the stack's clock (clear of the fixtures'
    Monday meetings), starting at ``hour`` UTC."""
    day = stack_today() + timedelta(days=days)
    while day.weekday() != 1:
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return start, start + timedelta(hours=1)


def booking_headers() -> dict[str, str]:
    """The function key and a new Idempotency-Key."""
    return {**KEY, "Idempotency-Key": f"key-{uuid.uuid4()}"}


def recruiter_with_interviews_mailbox(stack: Any, *, sync: bool = False) -> Any:
    """Contoso consented, its admin having set the Interviews (and, with ``sync``, the Sync) mailbox, and
    the recruiter's browser signed in."""
    consent(stack)
    admin = browser_sign_in(stack, CONTOSO_ADMIN)
    mailboxes = {"interviews_mailbox": INTERVIEWS_MAILBOX, **({"sync_mailbox": SYNC_MAILBOX} if sync else {})}
    saved = admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json=mailboxes)
    assert saved.status_code == 200, saved.text
    return browser_sign_in(stack, RECRUITER)


def our_events(stack: Any, mailbox: str) -> list[Any]:
    """The events in ``mailbox`` at the local cloud that carry the service's extended property."""
    from devtools.cloud.graph import controls as graph_controls

    user = graph_controls.resolve_user(stack.world, mailbox)
    return [e for e in stack.world.mailbox_events(user.id) if e.extended_properties]
