"""Azure Table Storage repositories for every store port, behind one ``TableStorage`` facade.

Tables (each name prefixed with ``Settings.table_prefix``) and their keys:

    tenants            PK tenant id          RK "tenant"
    users              PK tenant id          RK user id (oid)
    tokencaches        PK tenant id          RK owner (user oid or "app")       ciphertext in chunks
    bookings           PK tenant id          RK booking id                      responses, history as JSON
                       PK tenant id          RK "~event~" + sha256(event id)    index: {booking_id}
    slotclaims         PK "{tenant}|{mailbox}" RK cell start "YYYYmmddTHHMMZ"   {booking_id}; one row per grid cell
    subscriptions      PK tenant id          RK subscription id                 health; sha256(clientState)
    subscriptionsbyid  PK subscription id    RK "subscription"                  index: tenant, clientState hash, mailbox
    mailboxsync        PK tenant id          RK sha256(lower mailbox)           claim, subscription, delta (encrypted)
    webhookdrops       PK "drops"            RK tenant id or "unattributed"     dropped-notification counters
    flows              PK flow kind          RK sha256(state) hex               used state until expiry; no raw state
    sessions           PK session hash       RK "session"
    sessionsbyuser     PK "{tenant}|{user}"  RK session hash                    index for delete_user_sessions

One tenant's data shares a partition key, so per-tenant lists are single-partition
queries. Tenants get a partition each rather than one fixed partition: listing them is a
scan of a table that holds nothing else either way, while a fixed partition would funnel
every tenant's writes through one partition's throughput limit for no gain.
Change notifications name only a subscription id, and tenant claims in them cannot be
trusted, so ``subscriptionsbyid`` is a second table keyed by subscription id: two point
reads, no cross-partition scan. Index rows are written before and deleted after the row
they point at, so an index row may dangle (the lookup then says NotFound) but a row is
never unreachable. Sessions are keyed by their hash for a point read per request;
``sessionsbyuser`` lists a user's sessions in one partition so they can all be deleted.

Every SDK call goes through ``TableStorage.translating``, the one place azure-core errors
become ``shared.errors``. Updates send the ETag the record was read with
(``MatchConditions.IfNotModified``). Datetimes are stored as UTC ``Edm.DateTime``,
tuples as JSON strings, enums by value. Secrets are stored only as ``TokenCipher``
ciphertext bound to (tenant id, record id), so a value copied to another row fails to decrypt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import threading
import types
import typing
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableEntity, TableServiceClient, TableTransactionError, UpdateMode

from shared.adapters.storage_http import storage_transport
from shared.config import Settings
from shared.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    InvalidFlowState,
    NotFound,
    ServiceError,
    UpstreamError,
    UpstreamUnavailable,
)
from shared.models import (
    AttendeeResponse,
    Booking,
    BookingStatus,
    FlowKind,
    HistoryEntry,
    MailboxSync,
    ObservedAttendee,
    Session,
    Subscription,
    SubscriptionSecret,
    Tenant,
    User,
)
from shared.ports import Clock, TokenCipher

if typing.TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

_STORAGE_UNAVAILABLE = "The service is busy or briefly unavailable; retry in a moment."
_STORAGE_FAILED = "The service could not complete the request; retry later."
_STORAGE_MISCONFIGURED = "The service is misconfigured; an operator must check its settings."

TENANTS = "tenants"
USERS = "users"
TOKEN_CACHES = "tokencaches"  # noqa: S105 - a table name, not a secret
BOOKINGS = "bookings"
EVENT_INDEX_PREFIX = "~event~"  # index rows in the bookings table sort after every booking id
START_INDEX_PREFIX = "~start~"  # + UTC start + "~" + booking id: the tenant's bookings in start order
WHO_INDEX_PREFIX = "~who~"  # + sha256(attendee)[:32] + "~" + UTC start + "~" + booking id: one attendee's
LISTED_MARKER = "~listed"  # the partition's bookings all have their list rows
PENDING_INDEX_PREFIX = "~pending~"  # + sha256(mailbox)[:32] + "~" + booking id: a booking made pending there
# A booking longer than this (only an event stretched in Outlook can be) is listed only from its start on.
LIST_LOOKBACK = timedelta(days=14)
SLOT_CLAIMS = "slotclaims"
SUBSCRIPTIONS = "subscriptions"
SUBSCRIPTIONS_BY_ID = "subscriptionsbyid"
MAILBOX_SYNC = "mailboxsync"
WEBHOOK_DROPS = "webhookdrops"
FLOWS = "flows"
SESSIONS = "sessions"
SESSIONS_BY_USER = "sessionsbyuser"
_LONGEST_TABLE = max(
    len(t)
    for t in (
        TENANTS,
        USERS,
        TOKEN_CACHES,
        BOOKINGS,
        SLOT_CLAIMS,
        SUBSCRIPTIONS,
        SUBSCRIPTIONS_BY_ID,
        MAILBOX_SYNC,
        WEBHOOK_DROPS,
        FLOWS,
        SESSIONS,
        SESSIONS_BY_USER,
    )
)

# String properties are UTF-16 on the service and capped at 64 KiB, so 30,000 ASCII characters
# (60,000 bytes) per property. 15 chunks (900,000 bytes) leave room under the 1 MiB entity limit.
CHUNK_CHARS = 30_000
MAX_CHUNKS = 15

_TABLE_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9]*)?")
# Characters Table Storage forbids in PartitionKey and RowKey.
_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")

# Tables known to exist, per account endpoint: created once per process, on first use.
_created_lock = threading.Lock()
_created_tables: set[tuple[str, str]] = set()


class RecordTooLarge(ServiceError):
    """A record would exceed Table Storage's entity size limit."""

    code = "record_too_large"


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _key(value: str, *, name: str) -> str:
    if not value or _FORBIDDEN_KEY_CHARS.search(value) or len(value) > 512:
        raise ValueError(f"{name} must be 1-512 characters without '/', '\\', '#', '?' or control characters.")
    return value


# What a key cannot hold, and '%' itself so that the encoding stays one-to-one.
_KEY_ESCAPES = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")


def claim_key_part(value: str) -> str:
    """``value`` as a key part: each character a key cannot hold (and '%') as %XX of its UTF-8 bytes.

    An email address may hold '/', '#', '?' or '%' in its local part. Everything else is kept as it is,
    so the keys of ordinary addresses are the ones they always had; only an address holding '%' gets
    a new key (its claims under the old key are no longer seen, and are left behind by a release)."""
    return _KEY_ESCAPES.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8")), value)


def _to_utc(value: datetime, *, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime.")
    return value.astimezone(UTC)


def _from_stored_datetime(value: datetime) -> datetime:
    # The SDK returns its own datetime subclass; hand the core a plain aware UTC datetime.
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(utc.date(), utc.time(), tzinfo=UTC)


def _etag(metadata: typing.Mapping[str, Any]) -> str:
    return str(metadata["etag"])


def state_hash(state: str) -> str:
    """The row key of a flow: the OAuth state itself is never stored."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


_M = TypeVar("_M")


class _Codec(Generic[_M]):
    """Maps a frozen dataclass of plain fields to a Table entity and back, by its type hints."""

    def __init__(self, model: type[_M], *, partition: str, row: str | None, row_constant: str = "") -> None:
        self._model = model
        self._partition = partition
        self._row = row
        self._row_constant = row_constant
        hints = typing.get_type_hints(model)
        self._fields: dict[str, Any] = {}
        for f in dataclasses.fields(model):  # type: ignore[arg-type]
            if f.name in ("etag", partition, row):
                continue
            self._fields[f.name] = self._base_type(hints[f.name])

    @staticmethod
    def _base_type(hint: Any) -> Any:
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            return args[0]
        return typing.get_origin(hint) or hint

    def to_entity(self, record: _M, **extra: Any) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": _key(getattr(record, self._partition), name=self._partition),
            "RowKey": _key(getattr(record, self._row), name=self._row) if self._row else self._row_constant,
        }
        for name, kind in self._fields.items():
            value = getattr(record, name)
            if value is None:
                continue
            if kind is datetime:
                value = _to_utc(value, name=name)
            elif kind is tuple:
                value = json.dumps(list(value))
            elif isinstance(value, Enum):
                value = value.value
            entity[name] = value
        entity.update(extra)
        return entity

    def from_entity(self, entity: TableEntity, **extra: Any) -> _M:
        values: dict[str, Any] = {self._partition: entity["PartitionKey"]}
        if self._row:
            values[self._row] = entity["RowKey"]
        for name, kind in self._fields.items():
            if name in extra or name not in entity:
                continue
            value = entity[name]
            if kind is datetime:
                value = _from_stored_datetime(value)
            elif kind is tuple:
                value = tuple(json.loads(value))
            elif isinstance(kind, type) and issubclass(kind, Enum):
                value = kind(value)
            values[name] = value
        values.update(extra)
        if any(f.name == "etag" for f in dataclasses.fields(self._model)):  # type: ignore[arg-type]
            values["etag"] = _etag(entity.metadata)
        return self._model(**values)


class TableStorage:
    """The Table Storage account: hands out the stores and answers the health probe.

    No I/O at construction; each table is created on its first use in the process.
    """

    def __init__(
        self,
        connection_string: str,
        *,
        cipher: TokenCipher,
        table_prefix: str = "",
        clock: Clock | None = None,
        timeout_seconds: float = 10.0,
        retry_total: int = 3,
        table_service_uri: str | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        """From a connection string, or (when it is empty) from ``table_service_uri`` with a token credential."""
        if not _TABLE_PREFIX.fullmatch(table_prefix) or len(table_prefix) + _LONGEST_TABLE > 63:
            raise ConfigurationError(
                f"TABLE_PREFIX must be letters and digits starting with a letter, at most {63 - _LONGEST_TABLE} long.",
                setting="TABLE_PREFIX",
            )
        transport = storage_transport(connection_timeout=timeout_seconds, read_timeout=timeout_seconds)
        try:
            if connection_string:
                self._service = TableServiceClient.from_connection_string(
                    connection_string, retry_total=retry_total, transport=transport
                )
            elif table_service_uri and credential is not None:
                self._service = TableServiceClient(
                    endpoint=table_service_uri, credential=credential, retry_total=retry_total, transport=transport
                )
            else:
                raise ConfigurationError(
                    "Set AzureWebJobsStorage, or AzureWebJobsStorage__tableServiceUri with an identity.",
                    setting="AzureWebJobsStorage",
                )
        except ValueError as err:
            raise ConfigurationError(
                "AzureWebJobsStorage is not a valid storage connection string.", setting="AzureWebJobsStorage"
            ) from err
        parsed = urlparse(self._service.url)
        # Only scheme, host and path: a SAS or account key must never reach a message.
        self._endpoint = f"{parsed.scheme}://{parsed.netloc}{parsed.path}".rstrip("/")
        self._prefix = table_prefix
        self._clients: dict[str, TableClient] = {}
        self._clients_lock = threading.Lock()
        clock = clock or _SystemClock()
        self.tenants = TableTenantStore(self)
        self.users = TableUserStore(self)
        self.token_caches = TableTokenCacheStore(self, cipher=cipher)
        self.flows = TableFlowStore(self, cipher=cipher, clock=clock)
        self.sessions = TableSessionStore(self)
        self.bookings = TableBookingStore(self)
        self.subscriptions = TableSubscriptionStore(self, cipher=cipher)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        cipher: TokenCipher,
        clock: Clock | None = None,
        credential: TokenCredential | None = None,
    ) -> TableStorage:
        """``credential`` is used only when the settings give no connection string (identity-based storage)."""
        return cls(
            settings.storage_connection,
            cipher=cipher,
            table_prefix=settings.table_prefix,
            clock=clock,
            timeout_seconds=settings.http_timeout_seconds,
            table_service_uri=settings.storage_table_uri,
            credential=credential,
        )

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def table_name(self, name: str) -> str:
        return self._prefix + name

    def table(self, name: str) -> TableClient:
        """The client for one of our tables, creating the table on its first use in this process."""
        full = self.table_name(name)
        client = self._clients.get(full)
        if client is not None:
            return client
        with self._clients_lock:
            client = self._clients.get(full)
            if client is None:
                marker = (self._endpoint, full)
                with _created_lock:
                    known = marker in _created_tables
                if not known:
                    with self.translating(f"creating table {full}"):
                        self._service.create_table_if_not_exists(full)
                    with _created_lock:
                        _created_tables.add(marker)
                client = self._service.get_table_client(full)
                self._clients[full] = client
        return client

    @contextmanager
    def translating(self, action: str) -> Iterator[None]:
        """The one choke point where azure-core errors become ``shared.errors``. What a client may be told
        names nothing of storage; the action, table and endpoint go to the log through ``internal``."""
        try:
            yield
        except ResourceNotFoundError as err:
            raise NotFound("Not found.", internal=f"not found while {action}") from err
        except (ResourceExistsError, ResourceModifiedError) as err:
            raise ConcurrencyConflict(
                "The record was changed by another request; retry.", internal=f"conflict while {action}"
            ) from err
        except ClientAuthenticationError as err:
            raise ConfigurationError(
                _STORAGE_MISCONFIGURED,
                setting="AzureWebJobsStorage",
                internal=f"Table Storage at {self._endpoint} refused our credentials while {action}",
            ) from err
        except (ServiceRequestError, ServiceResponseError) as err:
            raise UpstreamUnavailable(
                _STORAGE_UNAVAILABLE,
                internal=f"Table Storage at {self._endpoint} is unreachable ({type(err).__name__}) while {action}",
            ) from err
        except HttpResponseError as err:
            status = err.status_code or 0
            where = f"(HTTP {status}) while {action}"
            if status in (409, 412):
                raise ConcurrencyConflict(
                    "The record was changed by another request; retry.", internal=f"conflict {where}"
                ) from err
            if status == 413:
                raise RecordTooLarge("The record is too large to store.", internal=f"too large {where}") from err
            if status == 503 or status == 500 or status == 429:
                raise UpstreamUnavailable(_STORAGE_UNAVAILABLE, internal=f"Table Storage busy {where}") from err
            raise UpstreamError(_STORAGE_FAILED, internal=f"Table Storage failed {where}") from err

    def check(self) -> bool:
        """``StorageHealth``: one cheap listing call without retries.

        Returns True when storage answers; raises UpstreamUnavailable (or ConfigurationError
        for refused credentials) with a message that names the endpoint, never the key.
        """
        try:
            with self.translating("checking health"):
                pages = self._service.list_tables(results_per_page=1, retry_total=0).by_page()
                list(next(pages, []))
        except ServiceError as err:
            logger.warning("Table Storage health check failed: %s", err.describe())
            if isinstance(err, (UpstreamUnavailable, ConfigurationError)):
                raise
            raise UpstreamUnavailable(err.message) from err
        return True


class TableTenantStore:
    """``TenantStore``: PK tenant id, one row per tenant."""

    _ROW = "tenant"

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(Tenant, partition="tenant_id", row=None, row_constant=self._ROW)

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self._s.translating(f"reading tenant {tenant_id}"):
            entity = self._s.table(TENANTS).get_entity(_key(tenant_id, name="tenant_id"), self._ROW)
        return self._codec.from_entity(entity)

    def create_tenant(self, tenant: Tenant) -> Tenant:
        with self._s.translating(f"creating tenant {tenant.tenant_id}"):
            meta = self._s.table(TENANTS).create_entity(self._codec.to_entity(tenant))
        return dataclasses.replace(tenant, etag=_etag(meta))

    def update_tenant(self, tenant: Tenant) -> Tenant:
        etag = _require_etag(tenant.etag, "tenant")
        with self._s.translating(f"updating tenant {tenant.tenant_id}"):
            meta = self._s.table(TENANTS).update_entity(
                self._codec.to_entity(tenant),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(tenant, etag=_etag(meta))

    def delete_tenant(self, tenant_id: str) -> None:
        with self._s.translating(f"deleting tenant {tenant_id}"):
            self._s.table(TENANTS).delete_entity(_key(tenant_id, name="tenant_id"), self._ROW)

    def list_tenants(self) -> list[Tenant]:
        with self._s.translating("listing tenants"):
            return [self._codec.from_entity(e) for e in self._s.table(TENANTS).list_entities()]


class TableUserStore:
    """``UserStore``: PK tenant id, RK user object id."""

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(User, partition="tenant_id", row="user_id")

    def get_user(self, tenant_id: str, user_id: str) -> User:
        with self._s.translating(f"reading user {user_id} of tenant {tenant_id}"):
            entity = self._s.table(USERS).get_entity(_key(tenant_id, name="tenant_id"), _key(user_id, name="user_id"))
        return self._codec.from_entity(entity)

    def create_user(self, user: User) -> User:
        with self._s.translating(f"creating user {user.user_id} of tenant {user.tenant_id}"):
            meta = self._s.table(USERS).create_entity(self._codec.to_entity(user))
        return dataclasses.replace(user, etag=_etag(meta))

    def update_user(self, user: User) -> User:
        etag = _require_etag(user.etag, "user")
        with self._s.translating(f"updating user {user.user_id} of tenant {user.tenant_id}"):
            meta = self._s.table(USERS).update_entity(
                self._codec.to_entity(user),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(user, etag=_etag(meta))

    def delete_user(self, tenant_id: str, user_id: str) -> None:
        with self._s.translating(f"deleting user {user_id} of tenant {tenant_id}"):
            self._s.table(USERS).delete_entity(_key(tenant_id, name="tenant_id"), _key(user_id, name="user_id"))

    def list_users(self, tenant_id: str) -> list[User]:
        with self._s.translating(f"listing users of tenant {tenant_id}"):
            rows = self._s.table(USERS).query_entities(
                "PartitionKey eq @pk", parameters={"pk": _key(tenant_id, name="tenant_id")}
            )
            return [self._codec.from_entity(e) for e in rows]


class TableTokenCacheStore:
    """``TokenCacheStore``: PK tenant id, RK owner; the encrypted cache split across string properties.

    Every save encrypts afresh under the current key, which is how rotation re-encrypts.
    Concurrent saves of one cache are last-writer-wins: an MSAL cache cannot be merged.
    """

    def __init__(self, storage: TableStorage, *, cipher: TokenCipher) -> None:
        self._s = storage
        self._cipher = cipher

    @staticmethod
    def record_id(owner: str) -> str:
        return f"tokencache/{owner}"

    def load_cache(self, tenant_id: str, owner: str) -> str | None:
        try:
            with self._s.translating(f"reading the token cache of {owner} in tenant {tenant_id}"):
                entity = self._s.table(TOKEN_CACHES).get_entity(
                    _key(tenant_id, name="tenant_id"), _key(owner, name="owner")
                )
        except NotFound:
            return None
        count = int(entity.get("chunks", 0))
        ciphertext = "".join(str(entity[f"c{i}"]) for i in range(count) if f"c{i}" in entity)
        plaintext = self._cipher.decrypt(ciphertext, tenant_id=tenant_id, record_id=self.record_id(owner))
        return plaintext.decode("utf-8")

    def save_cache(self, tenant_id: str, owner: str, serialized: str) -> None:
        plaintext = serialized.encode("utf-8")
        ciphertext = self._cipher.encrypt(plaintext, tenant_id=tenant_id, record_id=self.record_id(owner))
        chunks = [ciphertext[i : i + CHUNK_CHARS] for i in range(0, len(ciphertext), CHUNK_CHARS)]
        if len(chunks) > MAX_CHUNKS:
            raise RecordTooLarge(
                f"The token cache of {owner} in tenant {tenant_id} is {len(plaintext)} bytes; "
                f"a Table Storage record holds at most about {MAX_CHUNKS * CHUNK_CHARS * 3 // 4} bytes of it."
            )
        entity: dict[str, Any] = {
            "PartitionKey": _key(tenant_id, name="tenant_id"),
            "RowKey": _key(owner, name="owner"),
            "chunks": len(chunks),
        }
        entity.update({f"c{i}": chunk for i, chunk in enumerate(chunks)})
        with self._s.translating(f"saving the token cache of {owner} in tenant {tenant_id}"):
            # REPLACE drops chunks left over from a larger earlier cache.
            self._s.table(TOKEN_CACHES).upsert_entity(entity, UpdateMode.REPLACE)

    def delete_cache(self, tenant_id: str, owner: str) -> None:
        with self._s.translating(f"deleting the token cache of {owner} in tenant {tenant_id}"):
            self._s.table(TOKEN_CACHES).delete_entity(_key(tenant_id, name="tenant_id"), _key(owner, name="owner"))


class TableFlowStore:
    """``FlowStore``: PK flow kind, RK sha256(state); one small row per accepted callback.

    The row exists only from the callback until the flow's expiry: a second callback with the same
    state finds it and is refused. Rows left by earlier versions (encrypted pending flows) carry an
    ``expires_at`` too, so the same purge removes them.
    """

    def __init__(self, storage: TableStorage, *, cipher: TokenCipher, clock: Clock) -> None:
        self._s = storage
        self._cipher = cipher
        self._clock = clock

    def consume_state(self, kind: FlowKind, state_hash: str, expires_at: datetime) -> None:
        entity = {
            "PartitionKey": kind.value,
            "RowKey": _key(state_hash, name="state_hash"),
            "expires_at": _to_utc(expires_at, name="expires_at"),
            "taken": True,
        }
        try:
            with self._s.translating(f"recording a used {kind.value} state"):
                self._s.table(FLOWS).create_entity(entity)
        except ConcurrencyConflict:
            raise InvalidFlowState("This link was already used; start again.") from None

    def purge_expired_states(self, before: datetime) -> int:
        removed = 0
        with self._s.translating("purging expired flow states"):
            table = self._s.table(FLOWS)
            rows = table.query_entities(
                "expires_at le @before",
                parameters={"before": _to_utc(before, name="before")},
                select=["PartitionKey", "RowKey"],
            )
            for row in list(rows):
                table.delete_entity(str(row["PartitionKey"]), str(row["RowKey"]))
                removed += 1
        return removed


class TableSessionStore:
    """``SessionStore``: PK session hash; ``sessionsbyuser`` (PK "tenant|user", RK hash) lists a user's sessions."""

    _ROW = "session"

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(Session, partition="session_hash", row=None, row_constant=self._ROW)

    @staticmethod
    def _user_partition(tenant_id: str, user_id: str) -> str:
        if "|" in tenant_id or "|" in user_id:
            raise ValueError("tenant_id and user_id must not contain '|'.")
        return _key(f"{tenant_id}|{user_id}", name="tenant_id|user_id")

    def create_session(self, session: Session) -> Session:
        index = {
            "PartitionKey": self._user_partition(session.tenant_id, session.user_id),
            "RowKey": _key(session.session_hash, name="session_hash"),
        }
        with self._s.translating(f"creating a session for user {session.user_id}"):
            # Index first: a crash in between leaves a dangling index row, never an undeletable session.
            self._s.table(SESSIONS_BY_USER).upsert_entity(index, UpdateMode.REPLACE)
            meta = self._s.table(SESSIONS).create_entity(self._codec.to_entity(session))
        return dataclasses.replace(session, etag=_etag(meta))

    def get_session(self, session_hash: str) -> Session:
        with self._s.translating("reading a session"):
            entity = self._s.table(SESSIONS).get_entity(_key(session_hash, name="session_hash"), self._ROW)
        return self._codec.from_entity(entity)

    def update_session(self, session: Session) -> Session:
        etag = _require_etag(session.etag, "session")
        with self._s.translating("updating a session"):
            meta = self._s.table(SESSIONS).update_entity(
                self._codec.to_entity(session),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(session, etag=_etag(meta))

    def delete_session(self, session_hash: str) -> None:
        try:
            session = self.get_session(session_hash)
        except NotFound:
            return
        with self._s.translating("deleting a session"):
            self._s.table(SESSIONS).delete_entity(session_hash, self._ROW)
            self._s.table(SESSIONS_BY_USER).delete_entity(
                self._user_partition(session.tenant_id, session.user_id), session_hash
            )

    def purge_expired_sessions(self, before: datetime) -> int:
        removed = 0
        with self._s.translating("purging expired sessions"):
            table = self._s.table(SESSIONS)
            rows = table.query_entities(
                "expires_at le @before",
                parameters={"before": _to_utc(before, name="before")},
                select=["PartitionKey", "tenant_id", "user_id"],
            )
            for row in list(rows):
                session_hash = str(row["PartitionKey"])
                table.delete_entity(session_hash, self._ROW)
                # Index rows after the row they point at: a crash leaves a dangling index row only.
                if row.get("tenant_id") and row.get("user_id"):
                    self._s.table(SESSIONS_BY_USER).delete_entity(
                        self._user_partition(str(row["tenant_id"]), str(row["user_id"])), session_hash
                    )
                removed += 1
        return removed

    def delete_user_sessions(self, tenant_id: str, user_id: str) -> None:
        partition = self._user_partition(tenant_id, user_id)
        with self._s.translating(f"deleting the sessions of user {user_id}"):
            index = self._s.table(SESSIONS_BY_USER)
            hashes = [
                str(e["RowKey"]) for e in index.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            ]
            for session_hash in hashes:
                self._s.table(SESSIONS).delete_entity(session_hash, self._ROW)
                index.delete_entity(partition, session_hash)


_listed_partitions: set[tuple[str, str, str]] = set()  # (endpoint, table, tenant partition) known to carry list rows


class TableBookingStore:
    """``BookingStore``: PK tenant id, RK booking id; index rows in the same partition (RK "~event~" and the
    sha256 of the Graph event id) find a booking by its event, written in one transaction with the booking;
    ``slotclaims`` (PK "tenant|mailbox", RK the cell's UTC start "YYYYmmddTHHMMZ") holds one row per
    claimed grid cell of an interviewer, created in one table
    transaction per interviewer so two bookings racing for a slot cannot both get it.

    Attendee responses and history are JSON in their own properties (each under the 64 KiB limit:
    the core keeps the history bounded)."""

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(Booking, partition="tenant_id", row="booking_id")

    # ---- records ---------------------------------------------------------------------------------
    def _to_entity(self, booking: Booking) -> dict[str, Any]:
        entity = self._codec.to_entity(dataclasses.replace(booking, responses=(), history=()))
        entity["responses"] = json.dumps([_attendee_json(a) for a in booking.responses])
        entity["history"] = json.dumps(
            [
                {"at": h.at.astimezone(UTC).isoformat(), "actor": h.actor, "action": h.action, "detail": h.detail}
                for h in booking.history
            ]
        )
        return entity

    def _from_entity(self, entity: TableEntity) -> Booking:
        responses = tuple(_attendee_from_json(a) for a in json.loads(str(entity.get("responses") or "[]")))
        history = tuple(
            HistoryEntry(
                at=datetime.fromisoformat(h["at"]), actor=h["actor"], action=h["action"], detail=h.get("detail", "")
            )
            for h in json.loads(str(entity.get("history") or "[]"))
        )
        return self._codec.from_entity(entity, responses=responses, history=history)

    @staticmethod
    def _index_row(tenant_id: str, event_id: str) -> tuple[str, str]:
        return _key(tenant_id, name="tenant_id"), EVENT_INDEX_PREFIX + state_hash(event_id)

    def _index(self, booking: Booking) -> dict[str, Any] | None:
        if booking.event_id is None:
            return None
        partition, row = self._index_row(booking.tenant_id, booking.event_id)
        return {"PartitionKey": partition, "RowKey": row, "booking_id": booking.booking_id}

    @staticmethod
    def _cursor(booking: Booking) -> str:
        return f"{_to_utc(booking.start, name='start').strftime('%Y%m%dT%H%M%SZ')}~{booking.booking_id}"

    @staticmethod
    def _who(attendee: str) -> str:
        return f"{WHO_INDEX_PREFIX}{hashlib.sha256(attendee.lower().encode('utf-8')).hexdigest()[:32]}~"

    def _list_rows(self, booking: Booking) -> list[dict[str, Any]]:
        """The rows that list the booking: by start, and by start for each attendee. Pending and refused
        bookings are not listed. The booking row stays the truth: a row left behind by a move is skipped
        (and deleted) by the list that meets it."""
        if booking.status in (BookingStatus.PENDING, BookingStatus.FAILED):
            return []
        partition = _key(booking.tenant_id, name="tenant_id")
        cursor = self._cursor(booking)
        end = _to_utc(booking.end, name="end")
        prefixes = [START_INDEX_PREFIX, *sorted({self._who(a) for a in booking.attendees})]
        return [
            {"PartitionKey": partition, "RowKey": prefix + cursor, "booking_id": booking.booking_id, "end": end}
            for prefix in prefixes
        ]

    @staticmethod
    def _pending_prefix(tenant_id: str, mailbox: str) -> tuple[str, str]:
        digest = hashlib.sha256(mailbox.strip().lower().encode("utf-8")).hexdigest()[:32]
        return _key(tenant_id, name="tenant_id"), f"{PENDING_INDEX_PREFIX}{digest}~"

    def _pending_row(self, booking: Booking) -> list[dict[str, Any]]:
        """A pending booking's row under its mailbox, written with it: the notification worker finds the
        bookings still being made in a mailbox with one small range query. It is not removed when the
        booking is booked (that write stays one transaction of upserts); the reader that meets it then
        deletes it."""
        if booking.status is not BookingStatus.PENDING:
            return []
        partition, prefix = self._pending_prefix(booking.tenant_id, booking.mailbox)
        return [{"PartitionKey": partition, "RowKey": prefix + booking.booking_id, "booking_id": booking.booking_id}]

    def _written(self, booking: Booking, primary: tuple[str, dict[str, Any], dict[str, Any]]) -> list[Any]:
        """One transaction: the booking row, its event index, the rows that list it and, while it is pending,
        its row under its mailbox (all one partition)."""
        index = self._index(booking)
        upserts = [*([index] if index is not None else []), *self._list_rows(booking), *self._pending_row(booking)]
        return [*(("upsert", row, {"mode": UpdateMode.REPLACE}) for row in upserts), primary]

    def get_booking(self, tenant_id: str, booking_id: str) -> Booking:
        with self._s.translating(f"reading booking {booking_id} of tenant {tenant_id}"):
            entity = self._s.table(BOOKINGS).get_entity(
                _key(tenant_id, name="tenant_id"), _key(booking_id, name="booking_id")
            )
        return self._from_entity(entity)

    def create_booking(self, booking: Booking) -> Booking:
        with self._s.translating(f"creating booking {booking.booking_id} of tenant {booking.tenant_id}"):
            table = self._s.table(BOOKINGS)
            operations = self._written(booking, ("create", self._to_entity(booking), {}))
            if len(operations) == 1:
                meta = table.create_entity(self._to_entity(booking))
                return dataclasses.replace(booking, etag=_etag(meta))
            try:
                results = table.submit_transaction(operations)
            except TableTransactionError as err:
                raise ConcurrencyConflict(f"Booking {booking.booking_id} exists.") from err
        return dataclasses.replace(booking, etag=_etag(results[-1]))

    def update_booking(self, booking: Booking) -> Booking:
        etag = _require_etag(booking.etag, "booking")
        with self._s.translating(f"updating booking {booking.booking_id} of tenant {booking.tenant_id}"):
            table = self._s.table(BOOKINGS)
            entity = self._to_entity(booking)
            conditional = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
            operations = self._written(booking, ("update", entity, conditional))
            if len(operations) == 1:
                meta = table.update_entity(
                    entity, UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
                return dataclasses.replace(booking, etag=_etag(meta))
            # The booking and its index rows share the tenant's partition: one atomic round trip.
            try:
                results = table.submit_transaction(operations)
            except TableTransactionError as err:
                raise ConcurrencyConflict(f"Booking {booking.booking_id} changed since it was read.") from err
        return dataclasses.replace(booking, etag=_etag(results[-1]))

    def delete_booking(self, tenant_id: str, booking_id: str) -> None:
        try:
            booking = self.get_booking(tenant_id, booking_id)
        except NotFound:
            return
        with self._s.translating(f"deleting booking {booking_id} of tenant {tenant_id}"):
            self._s.table(BOOKINGS).delete_entity(
                _key(tenant_id, name="tenant_id"), _key(booking_id, name="booking_id")
            )
            if booking.event_id is not None:
                self._s.table(BOOKINGS).delete_entity(*self._index_row(tenant_id, booking.event_id))
            for row in [*self._list_rows(booking), *self._pending_row(booking)]:
                with contextlib.suppress(ResourceNotFoundError):
                    self._s.table(BOOKINGS).delete_entity(row["PartitionKey"], row["RowKey"])

    def list_bookings(self, tenant_id: str) -> list[Booking]:
        with self._s.translating(f"listing bookings of tenant {tenant_id}"):
            rows = self._s.table(BOOKINGS).query_entities(
                "PartitionKey eq @pk and RowKey lt @index",
                parameters={"pk": _key(tenant_id, name="tenant_id"), "index": EVENT_INDEX_PREFIX},
            )
            return [self._from_entity(e) for e in rows]

    def _overlapping(self, tenant_id: str, start: datetime, end: datetime) -> Iterator[TableEntity]:
        query = "PartitionKey eq @pk and start lt @hi and end gt @lo"
        parameters: dict[str, Any] = {
            "pk": _key(tenant_id, name="tenant_id"),
            "lo": _to_utc(start, name="start"),
            "hi": _to_utc(end, name="end"),
        }
        yield from self._s.table(BOOKINGS).query_entities(query, parameters=parameters)

    def _ensure_listed(self, tenant_id: str) -> None:
        """Bookings stored before the list rows existed get them once per tenant (a marker row says so)."""
        partition = _key(tenant_id, name="tenant_id")
        marker = (self._s.endpoint, self._s.table_name(BOOKINGS), partition)
        if marker in _listed_partitions:
            return
        table = self._s.table(BOOKINGS)
        try:
            table.get_entity(partition, LISTED_MARKER)
        except ResourceNotFoundError:
            for booking in self.list_bookings(tenant_id):
                for row in self._list_rows(booking):
                    table.upsert_entity(row, mode=UpdateMode.REPLACE)
            table.upsert_entity({"PartitionKey": partition, "RowKey": LISTED_MARKER})
        _listed_partitions.add(marker)

    def list_bookings_between(self, tenant_id: str, start: datetime, end: datetime) -> list[Booking]:
        with self._s.translating(f"listing bookings of tenant {tenant_id} in a range"):
            return [self._from_entity(e) for e in self._overlapping(tenant_id, start, end)]

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
        prefix = self._who(attendee) if attendee is not None else START_INDEX_PREFIX
        lo = _to_utc(start, name="start")
        query = "PartitionKey eq @pk and RowKey ge @first and RowKey lt @last and end gt @lo"
        parameters: dict[str, Any] = {
            "pk": _key(tenant_id, name="tenant_id"),
            "first": prefix + (lo - LIST_LOOKBACK).strftime("%Y%m%dT%H%M%SZ"),
            "last": prefix + _to_utc(end, name="end").strftime("%Y%m%dT%H%M%SZ"),
            "lo": lo,
        }
        if after is not None:
            parameters["first"] = prefix + _key(after, name="after") + "~"  # sorts right after that row
        found: list[Booking] = []
        table = self._s.table(BOOKINGS)
        with self._s.translating(f"listing bookings of tenant {tenant_id} in a range"):
            self._ensure_listed(tenant_id)
            pages = table.query_entities(query, parameters=parameters, results_per_page=limit, select=["RowKey"])
            rows = iter(str(r["RowKey"]) for r in pages)
            while True:
                batch = [row for _, row in zip(range(limit - len(found)), rows, strict=False)]
                if not batch:
                    return found, None
                for row, booking in zip(batch, self._listed(tenant_id, batch), strict=True):
                    if booking is not None:
                        found.append(booking)
                        if len(found) == limit:
                            return found, row.removeprefix(prefix)

    def _listed(self, tenant_id: str, rows: list[str]) -> list[Booking | None]:
        """The bookings the list rows name, read at once; None for a row a move or a change of attendees
        left behind (deleted now) or whose booking is gone."""

        def read(row: str) -> Booking | None:
            booking_id = row.rsplit("~", 1)[1]
            try:
                booking = self.get_booking(tenant_id, booking_id)
            except NotFound:
                booking = None
            if booking is None or row not in {r["RowKey"] for r in self._list_rows(booking)}:
                with contextlib.suppress(ResourceNotFoundError):
                    self._s.table(BOOKINGS).delete_entity(_key(tenant_id, name="tenant_id"), row)
                return None
            return booking

        with ThreadPoolExecutor(max_workers=min(8, len(rows))) as pool:
            return list(pool.map(read, rows))

    def list_pending_bookings(self, tenant_id: str) -> list[Booking]:
        with self._s.translating(f"listing pending bookings of tenant {tenant_id}"):
            rows = self._s.table(BOOKINGS).query_entities(
                "PartitionKey eq @pk and status eq @status",
                parameters={"pk": _key(tenant_id, name="tenant_id"), "status": BookingStatus.PENDING.value},
            )
            return [self._from_entity(e) for e in rows]

    def list_pending_bookings_in(self, tenant_id: str, mailbox: str) -> list[Booking]:
        partition, prefix = self._pending_prefix(tenant_id, mailbox)
        table = self._s.table(BOOKINGS)
        found: list[Booking] = []
        with self._s.translating(f"listing pending bookings of a mailbox of tenant {tenant_id}"):
            rows = table.query_entities(
                "PartitionKey eq @pk and RowKey ge @first and RowKey lt @last",
                parameters={"pk": partition, "first": prefix, "last": prefix + "~"},
                select=["RowKey", "booking_id"],
            )
            for row in rows:
                try:
                    booking = self.get_booking(tenant_id, str(row["booking_id"]))
                except NotFound:
                    booking = None
                if booking is not None and booking.status is BookingStatus.PENDING:
                    found.append(booking)
                    continue
                with contextlib.suppress(ResourceNotFoundError):  # booked or forgotten since: a leftover
                    table.delete_entity(partition, str(row["RowKey"]))
        return found

    def find_booking_by_event(self, tenant_id: str, event_id: str) -> Booking:
        with self._s.translating(f"looking up the booking of an event in tenant {tenant_id}"):
            row = self._s.table(BOOKINGS).get_entity(*self._index_row(tenant_id, event_id))
        booking = self.get_booking(tenant_id, str(row["booking_id"]))
        if booking.event_id != event_id:  # a dangling index row from an earlier event of that booking
            raise NotFound("No booking holds that event.")
        return booking

    # ---- slot claims -------------------------------------------------------------------------------
    @staticmethod
    def _claim_partition(tenant_id: str, mailbox: str) -> str:
        """``tenant|mailbox``; the mailbox with what a key cannot hold percent-encoded (see ``claim_key_part``).

        A tenant id is a GUID (no '|'), so the first '|' separates the two whatever the address holds."""
        if "|" in tenant_id:
            raise ValueError("tenant_id must not contain '|'.")
        return _key(f"{tenant_id}|{claim_key_part(mailbox.lower())}", name="tenant_id|mailbox")

    @staticmethod
    def _cell(moment: datetime) -> str:
        return _to_utc(moment, name="cell").strftime("%Y%m%dT%H%MZ")

    def _held(self, partition: str, cells: list[str]) -> dict[str, str]:
        rows = self._s.table(SLOT_CLAIMS).query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi",
            parameters={"pk": partition, "lo": min(cells), "hi": max(cells)},
            select=["RowKey", "booking_id"],
        )
        wanted = set(cells)
        return {str(r["RowKey"]): str(r["booking_id"]) for r in rows if str(r["RowKey"]) in wanted}

    def claim_slots(self, tenant_id: str, mailbox: str, booking_id: str, cells: Sequence[datetime]) -> None:
        if not cells:
            return
        partition = self._claim_partition(tenant_id, mailbox)
        keys = sorted({self._cell(c) for c in cells})
        if len(keys) > 100:
            raise ValueError("A table transaction holds at most 100 cells.")
        with self._s.translating(f"claiming {len(keys)} slot cells of {mailbox}"):
            table = self._s.table(SLOT_CLAIMS)
            try:
                # Optimistic first: one transaction creating every cell (the usual case, one round trip).
                table.submit_transaction(
                    [("create", {"PartitionKey": partition, "RowKey": k, "booking_id": booking_id}) for k in keys]
                )
                return
            except TableTransactionError:
                pass  # some cell exists: ours from an earlier attempt, or another booking's
            held = self._held(partition, keys)
            if any(owner != booking_id for owner in held.values()):
                raise ConcurrencyConflict(f"Another booking holds time of {mailbox}.")
            operations: list[Any] = [
                ("create", {"PartitionKey": partition, "RowKey": key, "booking_id": booking_id})
                for key in keys
                if key not in held
            ]
            if not operations:
                return
            try:
                table.submit_transaction(operations)
            except TableTransactionError as err:
                # All or nothing: another booking created one of the cells first.
                raise ConcurrencyConflict(f"Another booking holds time of {mailbox}.") from err

    def release_slots(self, tenant_id: str, mailbox: str, booking_id: str, cells: Sequence[datetime]) -> None:
        if not cells:
            return
        partition = self._claim_partition(tenant_id, mailbox)
        keys = sorted({self._cell(c) for c in cells})
        with self._s.translating(f"releasing slot cells of {mailbox}"):
            table = self._s.table(SLOT_CLAIMS)
            for key, owner in self._held(partition, keys).items():
                if owner == booking_id:
                    table.delete_entity(partition, key)


def _attendee_json(a: ObservedAttendee) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value is not None else None

    return {
        "email": a.email,
        "type": a.type,
        "response": a.response.value,
        "responded_at": stamp(a.responded_at),
        "proposed_start": stamp(a.proposed_start),
        "proposed_end": stamp(a.proposed_end),
    }


def _attendee_from_json(raw: dict[str, Any]) -> ObservedAttendee:
    def stamp(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    return ObservedAttendee(
        email=raw["email"],
        type=raw.get("type", "required"),
        response=AttendeeResponse(raw.get("response", "none")),
        responded_at=stamp(raw.get("responded_at")),
        proposed_start=stamp(raw.get("proposed_start")),
        proposed_end=stamp(raw.get("proposed_end")),
    )


class TableSubscriptionStore:
    """``SubscriptionStore``: subscriptions (PK tenant id, RK subscription id), the ``subscriptionsbyid``
    index (PK subscription id) that also carries the tenant and the clientState hash so the webhook
    checks a notification with one point read, and ``mailboxsync`` (PK tenant id, RK sha256 of the
    lower-cased mailbox): one row per subscribed mailbox, whose conditional insert and ETag updates
    settle which writer creates that mailbox's subscription; its delta link is stored encrypted."""

    _INDEX_ROW = "subscription"

    def __init__(self, storage: TableStorage, *, cipher: TokenCipher) -> None:
        self._s = storage
        self._cipher = cipher
        self._codec = _Codec(Subscription, partition="tenant_id", row="subscription_id")
        self._sync_codec = _Codec(MailboxSync, partition="tenant_id", row=None)

    @staticmethod
    def mailbox_key(mailbox: str) -> str:
        return hashlib.sha256(mailbox.strip().lower().encode("utf-8")).hexdigest()

    @staticmethod
    def record_id(mailbox_key: str, field_name: str) -> str:
        # The field is part of the binding, so a ciphertext cannot be moved to another row or field.
        return f"mailboxsync/{mailbox_key}/{field_name}"

    # ---- subscriptions -------------------------------------------------------------------------
    def get_subscription(self, tenant_id: str, subscription_id: str) -> Subscription:
        with self._s.translating(f"reading subscription {subscription_id} of tenant {tenant_id}"):
            entity = self._s.table(SUBSCRIPTIONS).get_entity(
                _key(tenant_id, name="tenant_id"), _key(subscription_id, name="subscription_id")
            )
        return self._codec.from_entity(entity)

    def create_subscription(self, subscription: Subscription) -> Subscription:
        entity = self._codec.to_entity(subscription)
        index = {
            "PartitionKey": entity["RowKey"],
            "RowKey": self._INDEX_ROW,
            "tenant_id": entity["PartitionKey"],
            "client_state_hash": subscription.client_state_hash,
            "mailbox": subscription.mailbox,
            "mailbox_id": subscription.mailbox_id or "",
        }
        with self._s.translating(f"creating subscription {subscription.subscription_id}"):
            # Index first, so a stored subscription is always findable by id.
            self._s.table(SUBSCRIPTIONS_BY_ID).upsert_entity(index, UpdateMode.REPLACE)
            meta = self._s.table(SUBSCRIPTIONS).create_entity(entity)
        return dataclasses.replace(subscription, etag=_etag(meta))

    def update_subscription(self, subscription: Subscription) -> Subscription:
        etag = _require_etag(subscription.etag, "subscription")
        with self._s.translating(f"updating subscription {subscription.subscription_id}"):
            meta = self._s.table(SUBSCRIPTIONS).update_entity(
                self._codec.to_entity(subscription),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(subscription, etag=_etag(meta))

    def delete_subscription(self, tenant_id: str, subscription_id: str) -> None:
        with self._s.translating(f"deleting subscription {subscription_id}"):
            self._s.table(SUBSCRIPTIONS).delete_entity(
                _key(tenant_id, name="tenant_id"), _key(subscription_id, name="subscription_id")
            )
            index = self._s.table(SUBSCRIPTIONS_BY_ID)
            try:
                row = index.get_entity(subscription_id, self._INDEX_ROW)
            except ResourceNotFoundError:
                return
            # Leave the index alone if it names another tenant: that row is not ours to remove.
            if row.get("tenant_id") == tenant_id:
                index.delete_entity(subscription_id, self._INDEX_ROW)

    def list_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        with self._s.translating("listing subscriptions"):
            table = self._s.table(SUBSCRIPTIONS)
            if tenant_id is None:
                rows = table.list_entities()
            else:
                rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": _key(tenant_id, name="tenant_id")})
            return [self._codec.from_entity(e) for e in rows]

    def find_subscription(self, subscription_id: str) -> Subscription:
        secret = self.find_secret(subscription_id)
        return self.get_subscription(secret.tenant_id, subscription_id)

    def find_secret(self, subscription_id: str) -> SubscriptionSecret:
        with self._s.translating(f"looking up subscription {subscription_id}"):
            row = self._s.table(SUBSCRIPTIONS_BY_ID).get_entity(
                _key(subscription_id, name="subscription_id"), self._INDEX_ROW
            )
        if not row.get("client_state_hash"):
            raise NotFound(f"Subscription {subscription_id} has no clientState on record.")
        return SubscriptionSecret(
            tenant_id=str(row["tenant_id"]),
            subscription_id=subscription_id,
            client_state_hash=str(row["client_state_hash"]),
            mailbox=str(row.get("mailbox") or ""),
            mailbox_id=str(row["mailbox_id"]) if row.get("mailbox_id") else None,
        )

    # ---- mailbox sync records ------------------------------------------------------------------
    def _sync_entity(self, sync: MailboxSync) -> dict[str, Any]:
        key = self.mailbox_key(sync.mailbox)
        entity = self._sync_codec.to_entity(dataclasses.replace(sync, delta_link=None))
        entity["RowKey"] = key
        if sync.delta_link is not None:
            entity["delta_link"] = self._cipher.encrypt(
                sync.delta_link.encode("utf-8"), tenant_id=sync.tenant_id, record_id=self.record_id(key, "delta_link")
            )
        return entity

    def _sync_from_entity(self, entity: TableEntity) -> MailboxSync:
        tenant_id, key = str(entity["PartitionKey"]), str(entity["RowKey"])
        delta_link: str | None = None
        if entity.get("delta_link"):
            delta_link = self._cipher.decrypt(
                str(entity["delta_link"]), tenant_id=tenant_id, record_id=self.record_id(key, "delta_link")
            ).decode("utf-8")
        return self._sync_codec.from_entity(entity, delta_link=delta_link)

    def get_mailbox_sync(self, tenant_id: str, mailbox: str) -> MailboxSync:
        with self._s.translating(f"reading the sync record of a mailbox of tenant {tenant_id}"):
            entity = self._s.table(MAILBOX_SYNC).get_entity(
                _key(tenant_id, name="tenant_id"), self.mailbox_key(mailbox)
            )
        return self._sync_from_entity(entity)

    def create_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        with self._s.translating(f"creating the sync record of a mailbox of tenant {sync.tenant_id}"):
            meta = self._s.table(MAILBOX_SYNC).create_entity(self._sync_entity(sync))
        return dataclasses.replace(sync, etag=_etag(meta))

    def update_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        etag = _require_etag(sync.etag, "mailbox sync record")
        with self._s.translating(f"updating the sync record of a mailbox of tenant {sync.tenant_id}"):
            meta = self._s.table(MAILBOX_SYNC).update_entity(
                self._sync_entity(sync), UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        return dataclasses.replace(sync, etag=_etag(meta))

    def list_mailbox_syncs(self, tenant_id: str | None = None) -> list[MailboxSync]:
        with self._s.translating("listing mailbox sync records"):
            table = self._s.table(MAILBOX_SYNC)
            if tenant_id is None:
                rows = table.list_entities()
            else:
                rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": _key(tenant_id, name="tenant_id")})
            return [self._sync_from_entity(e) for e in rows]

    # ---- dropped-notification counters -----------------------------------------------------------
    _DROPS_PARTITION = "drops"
    _DROP_REASON = re.compile(r"[a-z_]{1,64}")
    _DROP_ATTEMPTS = 5

    def add_dropped(self, scope: str, counts: typing.Mapping[str, int]) -> None:
        adds = {k: int(v) for k, v in counts.items() if v and self._DROP_REASON.fullmatch(k)}
        if not adds:
            return
        table_name = WEBHOOK_DROPS
        row_key = _key(scope, name="scope")
        for _ in range(self._DROP_ATTEMPTS):
            with self._s.translating("reading the dropped-notification counters"):
                try:
                    entity: TableEntity | None = self._s.table(table_name).get_entity(self._DROPS_PARTITION, row_key)
                except ResourceNotFoundError:
                    entity = None
            merged = {k: int(v) for k, v in (entity or {}).items() if self._DROP_REASON.fullmatch(k)}
            for reason, n in adds.items():
                merged[reason] = merged.get(reason, 0) + n
            row = {"PartitionKey": self._DROPS_PARTITION, "RowKey": row_key, **merged}
            try:
                with self._s.translating("writing the dropped-notification counters"):
                    if entity is None:
                        self._s.table(table_name).create_entity(row)
                    else:
                        self._s.table(table_name).update_entity(
                            row,
                            UpdateMode.REPLACE,
                            etag=_etag(entity.metadata),
                            match_condition=MatchConditions.IfNotModified,
                        )
                return
            except ConcurrencyConflict:
                continue  # another worker flushed at the same moment: read again and add
        raise ConcurrencyConflict("Other writers kept updating the dropped-notification counters.")

    def get_dropped(self, scope: str) -> dict[str, int]:
        with self._s.translating("reading the dropped-notification counters"):
            try:
                entity = self._s.table(WEBHOOK_DROPS).get_entity(self._DROPS_PARTITION, _key(scope, name="scope"))
            except ResourceNotFoundError:
                return {}
        return {k: int(v) for k, v in entity.items() if self._DROP_REASON.fullmatch(k)}


def _require_etag(etag: str | None, what: str) -> str:
    if not etag:
        raise ValueError(f"Updating a {what} needs the ETag it was read with; read it first.")
    return etag
