"""Bookings, their event index, the list rows that sort them by start and by attendee, the per-mailbox
pending index, and slot claims (one row per interviewer and grid cell, inserted in one transaction).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from shared import threads
from shared.adapters.tables._base import (
    BOOKINGS,
    SLOT_CLAIMS,
    _Codec,
    _etag,
    _key,
    _require_etag,
    _to_utc,
    claim_key_part,
    replace_if_unchanged,
    state_hash,
)
from shared.config import WORKER_THREADS
from shared.errors import (
    ConcurrencyConflict,
    NotFound,
)
from shared.models import (
    AttendeeResponse,
    Booking,
    BookingStatus,
    HistoryEntry,
    ObservedAttendee,
)

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


EVENT_INDEX_PREFIX = "~event~"  # index rows in the bookings table sort after every booking id
START_INDEX_PREFIX = "~start~"  # + UTC start + "~" + booking id: the tenant's bookings in start order
WHO_INDEX_PREFIX = "~who~"  # + sha256(attendee)[:32] + "~" + UTC start + "~" + booking id: one attendee's
LISTED_MARKER = "~listed"  # the partition's bookings all have their list rows
PENDING_INDEX_PREFIX = "~pending~"  # + sha256(mailbox)[:32] + "~" + booking id: a booking made pending there
# A booking longer than this (only an event stretched in Outlook can be) is listed only from its start on.
LIST_LOOKBACK = timedelta(days=14)
ROW_READS = 8  # bookings a page of the list reads at once
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
            return self._submitted(table, booking, operations, f"Booking {booking.booking_id} exists.")

    def update_booking(self, booking: Booking) -> Booking:
        etag = _require_etag(booking.etag, "booking")
        with self._s.translating(f"updating booking {booking.booking_id} of tenant {booking.tenant_id}"):
            table = self._s.table(BOOKINGS)
            entity = self._to_entity(booking)
            conditional = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
            operations = self._written(booking, ("update", entity, conditional))
            if len(operations) == 1:
                meta = replace_if_unchanged(table, entity, etag)
                return dataclasses.replace(booking, etag=_etag(meta))
            return self._submitted(
                table, booking, operations, f"Booking {booking.booking_id} changed since it was read."
            )

    @staticmethod
    def _submitted(table: TableClient, booking: Booking, operations: list[Any], conflict: str) -> Booking:
        """The booking and its index rows share the tenant's partition: one atomic round trip. Raises
        ConcurrencyConflict (``conflict``) when a row exists or changed."""
        try:
            results = table.submit_transaction(operations)
        except TableTransactionError as err:
            raise ConcurrencyConflict(conflict) from err
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

        readers = threads.pool("booking-rows", WORKER_THREADS * ROW_READS)
        reads = threads.in_lanes(readers, [functools.partial(read, row) for row in rows], ROW_READS)
        return [done.result() for done in reads]

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
