"""What every store shares: the table names, key checks and escapes, UTC datetimes, ETags, the record codec
that maps frozen dataclasses to entities, and the chunking limits of one entity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.errors import ServiceError

_STORAGE_UNAVAILABLE = "The service is busy or briefly unavailable; retry in a moment."
_STORAGE_FAILED = "The service could not complete the request; retry later."
_STORAGE_MISCONFIGURED = "The service is misconfigured; an operator must check its settings."
TENANTS = "tenants"
USERS = "users"
TOKEN_CACHES = "tokencaches"  # noqa: S105 - a table name, not a secret
BOOKINGS = "bookings"
SLOT_CLAIMS = "slotclaims"
SUBSCRIPTIONS = "subscriptions"
SUBSCRIPTIONS_BY_ID = "subscriptionsbyid"
MAILBOX_SYNC = "mailboxsync"
WEBHOOK_DROPS = "webhookdrops"
BUSY_CACHE = "busycache"
FLOWS = "flows"
SESSIONS = "sessions"
SESSIONS_BY_USER = "sessionsbyuser"
EMAIL_TEMPLATES = "emailtemplates"
EMAILS = "emails"
EMAILS_DUE = "emailsdue"
EMAIL_PACING = "emailpacing"
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
        BUSY_CACHE,
        FLOWS,
        SESSIONS,
        SESSIONS_BY_USER,
        EMAIL_TEMPLATES,
        EMAILS,
        EMAILS_DUE,
        EMAIL_PACING,
    )
)


# String properties are UTF-16 on the service and capped at 64 KiB, so 30,000 ASCII characters
# (60,000 bytes) per property. 15 chunks (900,000 bytes) leave room under the 1 MiB entity limit.
CHUNK_CHARS = 30_000
MAX_CHUNKS = 15
_TABLE_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9]*)?")
# Characters Table Storage forbids in PartitionKey and RowKey.
_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


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


def replace_if_unchanged(table: TableClient, entity: typing.Mapping[str, Any], etag: str) -> dict[str, Any]:
    """Replace the row only while its ETag is still ``etag`` (every store's update is conditional); the new
    row's metadata. The facade's ``translating`` turns a lost race into ConcurrencyConflict."""
    return table.update_entity(entity, UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified)


def partition_rows(table: TableClient, tenant_id: str | None) -> Iterable[TableEntity]:
    """The rows of the tenant's partition, or of every tenant (``None``)."""
    if tenant_id is None:
        return table.list_entities()
    return table.query_entities("PartitionKey eq @pk", parameters={"pk": _key(tenant_id, name="tenant_id")})


def expired_rows(table: TableClient, before: datetime, select: list[str]) -> list[TableEntity]:
    """The rows of ``table`` whose ``expires_at`` is at or before ``before`` (only the ``select`` columns)."""
    rows = table.query_entities(
        "expires_at le @before", parameters={"before": _to_utc(before, name="before")}, select=select
    )
    return list(rows)


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


def _require_etag(etag: str | None, what: str) -> str:
    if not etag:
        raise ValueError(f"Updating a {what} needs the ETag it was read with; read it first.")
    return etag
