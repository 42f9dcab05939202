"""The warm busy cache's table (``busycache``): per interviewer of a tenant one partition
(PK ``"{tenant}|{address}"``) holding their record (RK ``"~person"``: sync state, working hours, the
delta link encrypted) and one row per busy block (RK ``"b" + sha256(event id)``: start, end, status,
all-day and private flags; never a subject, body, location or attendee). A window of one person is one
partition query that returns the record with the blocks. PK ``"{tenant}|"`` RK ``"~epoch"`` is the
tenant's epoch, rewritten by every write so workers can tell whether what they remember still holds.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from shared.adapters.tables._base import (
    BUSY_CACHE,
    _etag,
    _from_stored_datetime,
    _key,
    _require_etag,
    _to_utc,
    claim_key_part,
)
from shared.errors import NotFound
from shared.models import CachedBlock, CachedPerson, FreeBusyStatus, MailboxHours
from shared.ports import TokenCipher

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage

PERSON_ROW = "~person"
EPOCH_ROW = "~epoch"
BLOCK_PREFIX = "b"
TRANSACTION_LIMIT = 100  # "up to 100 entities" per entity group transaction


class TableBusyCacheStore:
    """``BusyCacheStore`` over the ``busycache`` table."""

    def __init__(self, storage: TableStorage, *, cipher: TokenCipher) -> None:
        self._s = storage
        self._cipher = cipher

    @staticmethod
    def partition(tenant_id: str, person: str) -> str:
        return _key(f"{_key(tenant_id, name='tenant_id')}|{claim_key_part(person.strip().lower())}", name="person")

    # ---- records -----------------------------------------------------------------------------------
    def _record_id(self, partition: str) -> str:
        return f"busycache/{partition}/delta_link"

    def _to_entity(self, record: CachedPerson) -> dict[str, Any]:
        partition = self.partition(record.tenant_id, record.person)
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": PERSON_ROW,
            "tenant_id": record.tenant_id,
            "person": record.person,
            "added_at": _to_utc(record.added_at, name="added_at"),
            "last_asked_at": _to_utc(record.last_asked_at, name="last_asked_at"),
            "resyncs_gone": record.resyncs_gone,
            "resyncs_missed": record.resyncs_missed,
        }
        if record.delta_link:
            entity["delta_link"] = self._cipher.encrypt(
                record.delta_link.encode("utf-8"), tenant_id=record.tenant_id, record_id=self._record_id(partition)
            )
        for name in ("window_start", "window_end", "synced_at", "full_sync_at", "notified_at"):
            value = getattr(record, name)
            if value is not None:
                entity[name] = _to_utc(value, name=name)
        if record.hours is not None:
            entity["hours"] = record.hours.source
        if record.last_error:
            entity["last_error"] = record.last_error[:200]
        return entity

    def _from_entity(self, entity: TableEntity) -> CachedPerson:
        def when(name: str) -> datetime | None:
            value = entity.get(name)
            return _from_stored_datetime(value) if value is not None else None

        tenant_id = str(entity["tenant_id"])
        link = entity.get("delta_link")
        delta_link = (
            self._cipher.decrypt(
                str(link), tenant_id=tenant_id, record_id=self._record_id(str(entity["PartitionKey"]))
            ).decode("utf-8")
            if link
            else None
        )
        hours = entity.get("hours")
        return CachedPerson(
            tenant_id=tenant_id,
            person=str(entity["person"]),
            added_at=_from_stored_datetime(entity["added_at"]),
            last_asked_at=_from_stored_datetime(entity["last_asked_at"]),
            delta_link=delta_link,
            window_start=when("window_start"),
            window_end=when("window_end"),
            synced_at=when("synced_at"),
            full_sync_at=when("full_sync_at"),
            notified_at=when("notified_at"),
            # Only the kept form: the Graph adapter reads it back (GraphGateway.mailbox_hours_from).
            hours=MailboxHours(working_hours=None, time_zone=None, source=str(hours)) if hours is not None else None,
            last_error=entity.get("last_error"),
            resyncs_gone=int(entity.get("resyncs_gone") or 0),
            resyncs_missed=int(entity.get("resyncs_missed") or 0),
            etag=_etag(entity.metadata),
        )

    @staticmethod
    def _block_entity(partition: str, block: CachedBlock) -> dict[str, Any]:
        return {
            "PartitionKey": partition,
            "RowKey": BLOCK_PREFIX + _key(block.key, name="key"),
            "start": _to_utc(block.start, name="start"),
            "end": _to_utc(block.end, name="end"),
            "status": block.status.value,
            "all_day": block.all_day,
            "private": block.private,
        }

    @staticmethod
    def _block(entity: TableEntity) -> CachedBlock:
        return CachedBlock(
            key=str(entity["RowKey"])[len(BLOCK_PREFIX) :],
            start=_from_stored_datetime(entity["start"]),
            end=_from_stored_datetime(entity["end"]),
            status=FreeBusyStatus(str(entity["status"])),
            all_day=bool(entity.get("all_day")),
            private=bool(entity.get("private")),
        )

    def read_person(
        self, tenant_id: str, person: str, start: datetime, end: datetime
    ) -> tuple[CachedPerson, tuple[CachedBlock, ...]]:
        partition = self.partition(tenant_id, person)
        # The SDK substitutes @names only between spaces: no parenthesis may touch one.
        query = (
            "PartitionKey eq @pk and ( RowKey eq @record or "
            "( RowKey ge @lo and RowKey lt @hi and start lt @end and end gt @start ) )"
        )
        parameters = {
            "pk": partition,
            "record": PERSON_ROW,
            "lo": BLOCK_PREFIX,
            "hi": chr(ord(BLOCK_PREFIX) + 1),
            "start": _to_utc(start, name="start"),
            "end": _to_utc(end, name="end"),
        }
        record: CachedPerson | None = None
        blocks: list[CachedBlock] = []
        with self._s.translating("reading a person of the busy cache"):
            for entity in self._s.table(BUSY_CACHE).query_entities(query, parameters=parameters):
                if entity["RowKey"] == PERSON_ROW:
                    record = self._from_entity(entity)
                else:
                    blocks.append(self._block(entity))
        if record is None:
            raise NotFound("Not found.", internal="no busy cache record for this person")
        blocks.sort(key=lambda b: (b.start, b.end, b.key))
        return record, tuple(blocks)

    def get_person(self, tenant_id: str, person: str) -> CachedPerson:
        with self._s.translating("reading a busy cache record"):
            entity = self._s.table(BUSY_CACHE).get_entity(self.partition(tenant_id, person), PERSON_ROW)
        return self._from_entity(entity)

    def list_people(self, tenant_id: str | None = None) -> list[CachedPerson]:
        if tenant_id is None:
            query, parameters = "RowKey eq @record", {"record": PERSON_ROW}
        else:
            prefix = _key(tenant_id, name="tenant_id") + "|"
            query = "RowKey eq @record and PartitionKey gt @lo and PartitionKey lt @hi"
            parameters = {"record": PERSON_ROW, "lo": prefix, "hi": prefix[:-1] + chr(ord("|") + 1)}
        with self._s.translating("listing the busy cache's people"):
            rows = list(self._s.table(BUSY_CACHE).query_entities(query, parameters=parameters))
        return [self._from_entity(row) for row in rows]

    def create_person(self, record: CachedPerson) -> CachedPerson:
        with self._s.translating("adding a person to the busy cache"):
            meta = self._s.table(BUSY_CACHE).create_entity(self._to_entity(record))
        return _with_etag(record, meta)

    def update_person(self, record: CachedPerson) -> CachedPerson:
        from azure.core import MatchConditions

        etag = _require_etag(record.etag, "busy cache record")
        with self._s.translating("updating a busy cache record"):
            meta = self._s.table(BUSY_CACHE).update_entity(
                self._to_entity(record),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return _with_etag(record, meta)

    def delete_person(self, tenant_id: str, person: str) -> None:
        partition = self.partition(tenant_id, person)
        with self._s.translating("removing a person from the busy cache"):
            table = self._s.table(BUSY_CACHE)
            keys = [
                str(e["RowKey"])
                for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"])
            ]
            self._delete_rows(partition, [k for k in keys if k != PERSON_ROW])
            with contextlib.suppress(ResourceNotFoundError):
                table.delete_entity(partition, PERSON_ROW)

    # ---- blocks ------------------------------------------------------------------------------------
    def _block_keys(self, partition: str) -> list[str]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        parameters = {"pk": partition, "lo": BLOCK_PREFIX, "hi": chr(ord(BLOCK_PREFIX) + 1)}
        rows = self._s.table(BUSY_CACHE).query_entities(query, parameters=parameters, select=["RowKey"])
        return [str(row["RowKey"]) for row in rows]

    def _delete_rows(self, partition: str, row_keys: Sequence[str]) -> None:
        table = self._s.table(BUSY_CACHE)
        for chunk in _chunks(list(row_keys)):
            table.submit_transaction([("delete", {"PartitionKey": partition, "RowKey": k}) for k in chunk])

    def _upsert_blocks(self, partition: str, blocks: Sequence[CachedBlock]) -> None:
        table = self._s.table(BUSY_CACHE)
        entities = list({b.key: self._block_entity(partition, b) for b in blocks}.values())
        for chunk in _chunks(entities):
            table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in chunk])

    def apply_changes(
        self, tenant_id: str, person: str, upserts: Sequence[CachedBlock], removals: Sequence[str]
    ) -> None:
        partition = self.partition(tenant_id, person)
        with self._s.translating("writing busy blocks"):
            if removals:
                wanted = {BLOCK_PREFIX + _key(k, name="key") for k in removals}
                # Only what is kept is deleted: a transaction fails whole on one missing row, and removals
                # of items never kept (or removed twice) are normal.
                self._delete_rows(partition, [k for k in self._block_keys(partition) if k in wanted])
            if upserts:
                self._upsert_blocks(partition, upserts)

    def replace_blocks(self, tenant_id: str, person: str, blocks: Sequence[CachedBlock]) -> None:
        partition = self.partition(tenant_id, person)
        keep = {BLOCK_PREFIX + b.key for b in blocks}
        with self._s.translating("replacing busy blocks"):
            self._delete_rows(partition, [k for k in self._block_keys(partition) if k not in keep])
            self._upsert_blocks(partition, blocks)

    # ---- epoch -------------------------------------------------------------------------------------
    def get_epoch(self, tenant_id: str) -> str:
        try:
            with self._s.translating("reading the busy cache epoch"):
                entity = self._s.table(BUSY_CACHE).get_entity(_key(tenant_id, name="tenant_id") + "|", EPOCH_ROW)
        except NotFound:
            return ""
        return str(entity.get("epoch") or "")

    def bump_epoch(self, tenant_id: str) -> str:
        epoch = uuid.uuid4().hex
        with self._s.translating("writing the busy cache epoch"):
            self._s.table(BUSY_CACHE).upsert_entity(
                {"PartitionKey": _key(tenant_id, name="tenant_id") + "|", "RowKey": EPOCH_ROW, "epoch": epoch},
                mode=UpdateMode.REPLACE,
            )
        return epoch


def _with_etag(record: CachedPerson, meta: dict[str, Any]) -> CachedPerson:
    from dataclasses import replace

    return replace(record, etag=_etag(meta))


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), TRANSACTION_LIMIT):
        yield items[i : i + TRANSACTION_LIMIT]
