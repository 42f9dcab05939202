"""TableBookingStore against Azurite: nested responses and history, the event index, range pages, slot claims."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.tables import TableStorage
from shared.errors import ConcurrencyConflict, NotFound
from shared.models import AttendeeResponse, Booking, BookingStatus, HistoryEntry, ObservedAttendee

TENANT = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
T0 = datetime(2026, 12, 8, 15, tzinfo=UTC)
ALEX = "alex@contoso.example"


def booking(n: int, start: datetime = T0, **changes: object) -> Booking:
    values: dict[str, object] = {
        "tenant_id": TENANT,
        "booking_id": f"{n:026d}",
        "mailbox": "interviews@contoso.example",
        "start": start,
        "end": start + timedelta(hours=1),
        "subject": f"Interview {n}",
        "status": BookingStatus.BOOKED,
        "attendees": (ALEX,),
    }
    values.update(changes)
    return Booking(**values)  # type: ignore[arg-type]


def test_responses_and_history_round_trip(storage: TableStorage) -> None:
    record = booking(
        1,
        event_id="AAMk/Event+1=",
        responses=(
            ObservedAttendee(
                ALEX,
                response=AttendeeResponse.TENTATIVE,
                responded_at=T0,
                proposed_start=T0 + timedelta(hours=2),
                proposed_end=T0 + timedelta(hours=3),
            ),
        ),
        history=(HistoryEntry(T0, "u1", "created", "event in interviews@contoso.example"),),
        warnings=("a warning",),
        claimed_until=T0,
    )
    created = storage.bookings.create_booking(record)
    assert storage.bookings.get_booking(TENANT, record.booking_id) == created


def test_a_booking_is_found_by_its_event_and_only_in_its_tenant(storage: TableStorage) -> None:
    created = storage.bookings.create_booking(booking(1))
    moved = storage.bookings.update_booking(dataclasses.replace(created, event_id="AAMk/Event+1="))
    assert storage.bookings.find_booking_by_event(TENANT, "AAMk/Event+1=") == moved
    with pytest.raises(NotFound):
        storage.bookings.find_booking_by_event(OTHER, "AAMk/Event+1=")
    storage.bookings.update_booking(dataclasses.replace(moved, event_id="AAMkOther"))
    with pytest.raises(NotFound):  # the old index row dangles but names no booking of that event
        storage.bookings.find_booking_by_event(TENANT, "AAMk/Event+1=")


def test_range_queries_return_only_overlapping_bookings_in_pages(storage: TableStorage) -> None:
    for n in range(5):
        storage.bookings.create_booking(booking(n, T0 + timedelta(days=n)))
    storage.bookings.create_booking(booking(9, T0, tenant_id=OTHER))
    window = (T0 + timedelta(days=1), T0 + timedelta(days=3, minutes=30))
    assert [b.booking_id for b in storage.bookings.list_bookings_between(TENANT, *window)] == [
        f"{n:026d}" for n in (1, 2, 3)
    ]
    first, after = storage.bookings.page_bookings(TENANT, *window, after=None, limit=2)
    assert [b.booking_id for b in first] == [f"{n:026d}" for n in (1, 2)]
    assert after == f"{(T0 + timedelta(days=2)).strftime('%Y%m%dT%H%M%SZ')}~{2:026d}"
    rest, end = storage.bookings.page_bookings(TENANT, *window, after=after, limit=2)
    assert [b.booking_id for b in rest] == [f"{3:026d}"] and end is None


def test_the_list_reads_in_start_order_with_full_pages_and_follows_moves(storage: TableStorage) -> None:
    bookings = storage.bookings
    # Booking ids in the reverse of start order, and an interviewer on every other one.
    for n in range(8):
        people = (ALEX, "bo@contoso.example") if n % 2 == 0 else ("bo@contoso.example",)
        bookings.create_booking(booking(100 - n, T0 + timedelta(hours=n), attendees=people))
    bookings.create_booking(booking(50, T0 + timedelta(hours=1), status=BookingStatus.PENDING))
    window = (T0, T0 + timedelta(days=1))
    seen: list[str] = []
    after = None
    while True:
        page, after = bookings.page_bookings(TENANT, *window, after=after, limit=3)
        assert len(page) == 3 or after is None
        seen += [b.booking_id for b in page]
        if after is None:
            break
    assert seen == [f"{100 - n:026d}" for n in range(8)]  # start order; the pending booking is not listed
    alex, after = bookings.page_bookings(TENANT, *window, after=None, limit=3, attendee="Alex@Contoso.example")
    assert [b.booking_id for b in alex] == [f"{100 - n:026d}" for n in (0, 2, 4)] and after is not None
    # Moved past the others: listed once, at its new time; the row its old time left behind is skipped.
    first = bookings.get_booking(TENANT, f"{100:026d}")
    bookings.update_booking(dataclasses.replace(first, start=T0 + timedelta(hours=10), end=T0 + timedelta(hours=11)))
    everyone, _ = bookings.page_bookings(TENANT, *window, after=None, limit=20)
    assert [b.booking_id for b in everyone] == [f"{100 - n:026d}" for n in range(1, 8)] + [f"{100:026d}"]


def test_bookings_stored_before_the_list_rows_existed_are_listed(storage: TableStorage) -> None:
    from azure.data.tables import UpdateMode

    from shared.adapters.tables import bookings as tables

    created = storage.bookings.create_booking(booking(1))
    table = storage.table(tables.BOOKINGS)
    for row in list(table.list_entities()):
        if str(row["RowKey"]).startswith(("~start~", "~who~", "~listed")):
            table.delete_entity(row["PartitionKey"], row["RowKey"])
    tables._listed_partitions.clear()
    table.upsert_entity({"PartitionKey": TENANT, "RowKey": "placeholder"}, mode=UpdateMode.REPLACE)
    table.delete_entity(TENANT, "placeholder")
    page, _ = storage.bookings.page_bookings(TENANT, T0, T0 + timedelta(hours=1), after=None, limit=5)
    assert page == [created]


def test_slot_claims_let_one_of_two_racing_bookings_win(storage: TableStorage) -> None:
    cells = [T0 + timedelta(minutes=5 * i) for i in range(12)]

    def claim(booking_id: str) -> bool:
        try:
            storage.bookings.claim_slots(TENANT, ALEX, booking_id, cells)
            return True
        except ConcurrencyConflict:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(claim, [f"b{i}" for i in range(8)]))
    assert results.count(True) == 1
    winner = f"b{results.index(True)}"
    storage.bookings.claim_slots(TENANT, ALEX, winner, cells[:3])  # cells it holds are kept
    storage.bookings.release_slots(TENANT, ALEX, "someone-else", cells)  # not theirs: nothing happens
    assert not claim("late")
    storage.bookings.release_slots(TENANT, ALEX, winner, cells)
    assert claim("late")


def test_pending_bookings_are_listed_per_mailbox_and_their_rows_go_once_they_are_booked(
    storage: TableStorage,
) -> None:
    store = storage.bookings
    first = store.create_booking(booking(1, status=BookingStatus.PENDING))
    store.create_booking(booking(2, status=BookingStatus.PENDING, mailbox="Alex@Contoso.example"))
    store.create_booking(booking(3, status=BookingStatus.PENDING, tenant_id=OTHER))
    gone = store.create_booking(booking(4, status=BookingStatus.PENDING))

    assert {b.booking_id for b in store.list_pending_bookings_in(TENANT, "Interviews@contoso.example")} == {
        first.booking_id,
        gone.booking_id,
    }
    assert [b.booking_id for b in store.list_pending_bookings_in(TENANT, "alex@contoso.example")] == [f"{2:026d}"]

    store.update_booking(dataclasses.replace(first, status=BookingStatus.BOOKED, event_id="AAMk1"))
    store.delete_booking(TENANT, gone.booking_id)
    assert store.list_pending_bookings_in(TENANT, "interviews@contoso.example") == []
    # The booked booking's leftover row was deleted by the list that met it: the partition holds the
    # booking, its event index and list rows, and the other mailbox's pending row, nothing more.
    rows = list(storage.table("bookings").query_entities("PartitionKey eq @pk", parameters={"pk": TENANT}))
    assert sum(str(r["RowKey"]).startswith("~pending~") for r in rows) == 1
    assert store.find_booking_by_event(TENANT, "AAMk1").status is BookingStatus.BOOKED


@pytest.mark.parametrize(
    "mailbox",
    ["what?if@contoso.example", "hash#tag@contoso.example", "a/b\\c@contoso.example", "100%|x@contoso.example"],
)
def test_slot_claims_hold_addresses_whose_characters_a_key_cannot(storage: TableStorage, mailbox: str) -> None:
    """'?', '#', '/', '\\' are valid in an address but not in a table key; '%' and '|' stay distinct too."""
    cells = [T0 + timedelta(minutes=5 * i) for i in range(3)]
    storage.bookings.claim_slots(TENANT, mailbox, "first", cells)
    with pytest.raises(ConcurrencyConflict):
        storage.bookings.claim_slots(TENANT, mailbox.upper(), "second", cells)
    storage.bookings.claim_slots(TENANT, ALEX, "other-person", cells)  # someone else's time is their own
    storage.bookings.release_slots(TENANT, mailbox, "first", cells)
    storage.bookings.claim_slots(TENANT, mailbox, "second", cells)


def test_an_ordinary_address_keeps_the_claim_key_it_always_had(storage: TableStorage) -> None:
    from shared.adapters.tables import SLOT_CLAIMS

    storage.bookings.claim_slots(TENANT, "Alex.O'Neil+x@contoso.example", "b1", [T0])
    rows = list(storage.table(SLOT_CLAIMS).query_entities("booking_id eq 'b1'"))
    assert [r["PartitionKey"] for r in rows] == [f"{TENANT}|alex.o'neil+x@contoso.example"]
    escaped = "what%3Fif%25@contoso.example"
    storage.bookings.claim_slots(TENANT, "what?if%@contoso.example", "b2", [T0])
    rows = list(storage.table(SLOT_CLAIMS).query_entities("booking_id eq 'b2'"))
    assert [r["PartitionKey"] for r in rows] == [f"{TENANT}|{escaped}"]
