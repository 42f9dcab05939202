"""The ledger of candidate email: one row per message key (PK tenant id, RK ``{booking}.{template}.{revision}``),
and ``emailsdue`` (PK "due", RK ``{tenant}|{key}``): an index row for every message not yet sent or failed, so the
email timer finds what waits without scanning the ledger. The index row is written before the ledger row and
deleted after the row is sent or failed (a dangling index row is dropped when the timer meets it).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from shared.adapters.tables._base import EMAILS, EMAILS_DUE, _Codec, _etag, _key, _require_etag
from shared.errors import NotFound
from shared.models import EmailRecord, EmailStatus

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage

DUE_PARTITION = "due"
UNSENT = (EmailStatus.QUEUED, EmailStatus.SENDING)


def _due_row(tenant_id: str, key: str) -> str:
    return _key(f"{tenant_id}|{key}", name="key")


class TableEmailLedger:
    """``EmailLedger`` over the ``emails`` and ``emailsdue`` tables."""

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(EmailRecord, partition="tenant_id", row="key")

    def _index(self, record: EmailRecord) -> None:
        with self._s.translating(f"indexing email {record.key} of tenant {record.tenant_id}"):
            self._s.table(EMAILS_DUE).upsert_entity(
                {
                    "PartitionKey": DUE_PARTITION,
                    "RowKey": _due_row(record.tenant_id, record.key),
                    "tenant_id": record.tenant_id,
                    "key": record.key,
                },
                UpdateMode.REPLACE,
            )

    def _unindex(self, tenant_id: str, key: str) -> None:
        with self._s.translating(f"unindexing email {key} of tenant {tenant_id}"):
            self._s.table(EMAILS_DUE).delete_entity(DUE_PARTITION, _due_row(tenant_id, key))

    def create_email(self, record: EmailRecord) -> EmailRecord:
        if record.status in UNSENT:
            self._index(record)
        with self._s.translating(f"creating email {record.key} of tenant {record.tenant_id}"):
            meta = self._s.table(EMAILS).create_entity(self._codec.to_entity(record))
        return dataclasses.replace(record, etag=_etag(meta))

    def get_email(self, tenant_id: str, key: str) -> EmailRecord:
        with self._s.translating(f"reading email {key} of tenant {tenant_id}"):
            entity = self._s.table(EMAILS).get_entity(_key(tenant_id, name="tenant_id"), _key(key, name="key"))
        return self._codec.from_entity(entity)

    def update_email(self, record: EmailRecord) -> EmailRecord:
        etag = _require_etag(record.etag, "email")
        if record.status in UNSENT:
            self._index(record)
        with self._s.translating(f"updating email {record.key} of tenant {record.tenant_id}"):
            meta = self._s.table(EMAILS).update_entity(
                self._codec.to_entity(record),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        if record.status not in UNSENT:
            self._unindex(record.tenant_id, record.key)
        return dataclasses.replace(record, etag=_etag(meta))

    def list_booking_emails(self, tenant_id: str, booking_id: str) -> list[EmailRecord]:
        prefix = _key(booking_id, name="booking_id") + "."
        with self._s.translating(f"listing the emails of booking {booking_id}"):
            rows = self._s.table(EMAILS).query_entities(
                "PartitionKey eq @pk and RowKey ge @first and RowKey lt @last",
                parameters={"pk": _key(tenant_id, name="tenant_id"), "first": prefix, "last": booking_id + "/"},
            )
            return [self._codec.from_entity(e) for e in rows]

    def list_unsent(self, *, limit: int) -> list[EmailRecord]:
        found: list[EmailRecord] = []
        with self._s.translating("listing unsent emails"):
            pages = self._s.table(EMAILS_DUE).query_entities(
                "PartitionKey eq @pk", parameters={"pk": DUE_PARTITION}, results_per_page=limit
            )
            index = [(str(e["tenant_id"]), str(e["key"])) for e in next(pages.by_page(), [])]
        for tenant_id, key in index[:limit]:
            try:
                record = self.get_email(tenant_id, key)
            except NotFound:
                self._unindex(tenant_id, key)  # the row was never written (its request died first)
                continue
            if record.status in UNSENT:
                found.append(record)
            else:
                self._unindex(tenant_id, key)
        return found
