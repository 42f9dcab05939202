"""TableBusyCacheStore against Azurite: one partition query returns a person's record with the blocks of a
window, removals of rows never kept are harmless, a full replace leaves only the new blocks, the delta link
is stored encrypted, the epoch moves, tenants stay apart."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.tables import BUSY_CACHE, TableStorage
from shared.errors import ConcurrencyConflict, NotFound
from shared.models import CachedBlock, CachedPerson, FreeBusyStatus, MailboxHours

TENANT = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
T0 = datetime(2026, 12, 8, 15, tzinfo=UTC)
ALEX = "alex@contoso.example"


def block(key: str, hours_from_t0: int, length: int = 1, status: FreeBusyStatus = FreeBusyStatus.BUSY) -> CachedBlock:
    start = T0 + timedelta(hours=hours_from_t0)
    return CachedBlock(key=key, start=start, end=start + timedelta(hours=length), status=status)


def person(tenant: str = TENANT, who: str = ALEX) -> CachedPerson:
    return CachedPerson(
        tenant_id=tenant,
        person=who,
        added_at=T0,
        last_asked_at=T0,
        delta_link="https://graph.example/v1.0/users/x/calendarView/delta?$deltatoken=secret",
        window_start=T0 - timedelta(days=7),
        window_end=T0 + timedelta(days=90),
        synced_at=T0,
        full_sync_at=T0,
        hours=MailboxHours(working_hours=None, time_zone=None, source='{"daysOfWeek":["monday"]}'),
    )


def test_one_partition_query_reads_the_record_and_a_window_of_blocks(storage: TableStorage) -> None:
    store = storage.busy
    created = store.create_person(person())
    store.replace_blocks(TENANT, ALEX, [block("a" * 64, 0), block("b" * 64, 48), block("c" * 64, -2, length=3)])
    record, blocks = store.read_person(TENANT, ALEX, T0 + timedelta(minutes=30), T0 + timedelta(hours=2))
    assert record == replace(created, etag=record.etag)
    assert record.hours is not None and record.hours.source == '{"daysOfWeek":["monday"]}'
    assert [b.key for b in blocks] == ["c" * 64, "a" * 64]  # in time order; the one two days on is left out
    with pytest.raises(ConcurrencyConflict):
        store.create_person(person())
    with pytest.raises(NotFound):
        store.read_person(OTHER, ALEX, T0, T0 + timedelta(days=1))


def test_changes_replace_and_removals_of_unknown_rows(storage: TableStorage) -> None:
    store = storage.busy
    store.create_person(person())
    store.apply_changes(TENANT, ALEX, [block("a" * 64, 0), block("b" * 64, 1)], ["f" * 64])
    store.apply_changes(TENANT, ALEX, [block("b" * 64, 3, status=FreeBusyStatus.TENTATIVE)], ["a" * 64, "e" * 64])
    _, blocks = store.read_person(TENANT, ALEX, T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert [(b.key, b.status) for b in blocks] == [("b" * 64, FreeBusyStatus.TENTATIVE)]
    many = [block(f"{i:064x}", i % 300) for i in range(230)]  # more than one transaction's worth
    store.replace_blocks(TENANT, ALEX, many)
    _, blocks = store.read_person(TENANT, ALEX, T0 - timedelta(days=1), T0 + timedelta(days=30))
    assert len(blocks) == 230 and "b" * 64 not in {b.key for b in blocks}
    store.delete_person(TENANT, ALEX)
    with pytest.raises(NotFound):
        store.get_person(TENANT, ALEX)
    store.delete_person(TENANT, ALEX)  # absent: fine


def test_delta_link_is_encrypted_the_epoch_moves_and_tenants_list_apart(storage: TableStorage) -> None:
    store = storage.busy
    store.create_person(person())
    store.create_person(person(OTHER))
    raw = storage.table(BUSY_CACHE).get_entity(store.partition(TENANT, ALEX), "~person")
    assert "secret" not in str(raw["delta_link"])
    assert store.get_person(TENANT, ALEX).delta_link == person().delta_link
    assert [p.tenant_id for p in store.list_people(TENANT)] == [TENANT]
    assert {p.tenant_id for p in store.list_people()} == {TENANT, OTHER}
    assert store.get_epoch(TENANT) == ""
    first = store.bump_epoch(TENANT)
    assert store.get_epoch(TENANT) == first and store.bump_epoch(TENANT) != first
    assert store.get_epoch(OTHER) == ""
    current = store.get_person(TENANT, ALEX)
    updated = store.update_person(replace(current, notified_at=T0 + timedelta(minutes=1)))
    with pytest.raises(ConcurrencyConflict):
        store.update_person(replace(current, notified_at=T0))
    assert store.get_person(TENANT, ALEX).notified_at == updated.notified_at
