"""The warm busy cache over fakes: warm answers equal live ones with no Graph call, notifications make
people cold until a round completes, stale rows and broken storage fall back to live (never free), 410 and
missed notifications resync in full, tenants stay apart, the cap and eviction hold."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from functions._views import busy_cache_json
from shared.cache import keeper, reader
from shared.cache.view import cache_health
from shared.errors import GraphRequestFailed, ServiceError
from shared.identity.guard import require_calendar_access
from shared.models import (
    BusyBlock,
    BusyChange,
    CachedBlock,
    FreeBusyStatus,
    Schedule,
    ScheduleStatus,
    WorkingHours,
)
from shared.scheduling.availability import AvailabilityAnswer, find_availability
from shared.scheduling.request import parse_availability_request
from shared.sync.intake import encode_messages
from shared.sync.worker import process_message
from tests.kit import TENANT_A, TENANT_B, USER, FakeClock, FakeDeps, consented, sign_in

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2030, 11, 28, 12, tzinfo=UTC)
MONDAY = datetime(2030, 12, 2, tzinfo=UTC)
ANN = "ann@contoso.example"
BOB = "bob@contoso.example"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    from shared.sync.subscriptions import forget_worker_memory

    forget_worker_memory()
    keeper.forget_worker_memory()
    reader.forget_worker_memory()
    yield
    keeper.forget_worker_memory()
    reader.forget_worker_memory()


def _hours() -> WorkingHours:
    return WorkingHours(
        days=WEEKDAYS, start=time(9), end=time(17), time_zone=NEW_YORK, time_zone_name="America/New_York"
    )


def _block(day: int, hour: int, status: FreeBusyStatus = FreeBusyStatus.BUSY, hours: int = 1) -> BusyBlock:
    start = MONDAY + timedelta(days=day, hours=hour)
    return BusyBlock(start=start, end=start + timedelta(hours=hours), status=status)


def _set_calendar(deps: FakeDeps, email: str, *blocks: BusyBlock, tenant: str = TENANT_A) -> None:
    """What Graph holds for ``email``: the same blocks for getSchedule and for delta (free ones skipped)."""
    deps.graph.schedules.setdefault(tenant, {})[email] = Schedule(
        email=email, mailbox_time_zone="Eastern Standard Time", working_hours=_hours(), busy=blocks
    )
    deps.graph.busy_blocks[email] = {
        f"{email}-{i}": CachedBlock(f"{email}-{i}", b.start, b.end, b.status)
        for i, b in enumerate(blocks)
        if b.status is not FreeBusyStatus.FREE
    }


def _deps(**settings: Any) -> tuple[FakeDeps, str]:
    deps = FakeDeps(**settings)
    deps.clock = FakeClock(NOW)
    deps.graph.clock = deps.clock
    deps.identity.clock = deps.clock
    consented(deps)
    credential = sign_in(deps)
    _set_calendar(deps, ANN, _block(0, 15), _block(0, 18, FreeBusyStatus.TENTATIVE), _block(0, 19, FreeBusyStatus.FREE))
    _set_calendar(deps, BOB, _block(0, 16, FreeBusyStatus.OOF))
    return deps, credential


def _ask(deps: FakeDeps, credential: str, *people: str, **body: Any) -> AvailabilityAnswer:
    ctx = require_calendar_access(deps, credential)
    request = {
        "interviewers": list(people or (ANN, BOB)),
        "start": MONDAY.isoformat(),
        "end": (MONDAY + timedelta(days=2)).isoformat(),
        "duration_minutes": 60,
        "interval_minutes": 30,
        "time_zone": "America/New_York",
        **body,
    }
    return find_availability(deps, ctx, parse_availability_request(request))


def _run_queue(deps: FakeDeps) -> None:
    """The notification worker takes every queued message (warm-ups here)."""
    while deps.notification_queue.messages:
        process_message(deps, deps.notification_queue.messages.pop(0))


def _warm(deps: FakeDeps, credential: str, *people: str) -> AvailabilityAnswer:
    first = _ask(deps, credential, *people)
    _run_queue(deps)
    return first


def _slots(answer: AvailabilityAnswer) -> list[tuple[datetime, tuple[str, ...]]]:
    return [(s.start, s.interviewers) for s in answer.search.slots]


def test_first_sight_is_live_and_the_next_answer_is_warm_with_no_graph_call_and_the_same_slots() -> None:
    deps, credential = _deps()
    first = _warm(deps, credential)
    assert {s.source for s in first.sources.values()} == {"live"}
    calls = len(deps.graph.schedule_calls)
    second = _ask(deps, credential)
    assert len(deps.graph.schedule_calls) == calls  # no getSchedule at all
    assert {p: s.source for p, s in second.sources.items()} == {ANN: "cache", BOB: "cache"}
    assert all(s.as_of == NOW for s in second.sources.values())
    assert _slots(second) == _slots(first)
    assert second.search.slots
    warm_ann = next(s for s in second.schedules if s.email == ANN)
    assert warm_ann.working_hours == _hours() and warm_ann.mailbox_time_zone == "Eastern Standard Time"
    # The same statuses as getSchedule's, free ones aside, and never a title.
    live_ann = next(s for s in first.schedules if s.email == ANN)
    assert warm_ann.busy == tuple(b for b in live_ann.busy if b.status is not FreeBusyStatus.FREE)
    assert all(b.subject is None and b.location is None for b in warm_ann.busy)


def test_freshness_live_reads_graph_for_everyone() -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    calls = len(deps.graph.schedule_calls)
    answer = _ask(deps, credential, freshness="live")
    assert len(deps.graph.schedule_calls) == calls + 1
    assert {s.source for s in answer.sources.values()} == {"live"}


def test_a_notification_makes_the_person_cold_until_its_round_completes() -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    keeper.mark_changed(deps, TENANT_A, ANN)
    calls = len(deps.graph.schedule_calls)
    answer = _ask(deps, credential)
    assert answer.sources[ANN].source == "live" and answer.sources[BOB].source == "cache"
    assert deps.graph.schedule_calls[calls][0] == (ANN,)  # only the cold one was read live
    # A failed round leaves Ann cold; a completed one brings the change in.
    deps.graph.failures[ANN] = GraphRequestFailed("throttled", status=429, reason="throttled")
    assert keeper.sync_person(deps, TENANT_A, ANN) is False
    assert _ask(deps, credential).sources[ANN].source == "live"
    del deps.graph.failures[ANN]
    moved = _block(0, 14)
    _set_calendar(deps, ANN, moved)
    deps.graph.pending_busy[ANN] = [
        BusyChange(f"{ANN}-0", CachedBlock(f"{ANN}-0", moved.start, moved.end, moved.status)),
        BusyChange(f"{ANN}-1", None),
    ]
    assert keeper.sync_person(deps, TENANT_A, ANN) is True
    warm = _ask(deps, credential)
    assert warm.sources[ANN].source == "cache"
    assert next(s for s in warm.schedules if s.email == ANN).busy == (moved,)
    assert _slots(warm) == _slots(_ask(deps, credential, freshness="live"))


def test_our_own_write_makes_its_people_cold_at_once_and_never_fails_the_write(monkeypatch: pytest.MonkeyPatch) -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    keeper.note_written(deps, TENANT_A, ["ANN@contoso.example", "stranger@contoso.example", " "])
    answer = _ask(deps, credential)
    assert answer.sources[ANN].source == "live" and answer.sources[BOB].source == "cache"

    def broken(*args: Any) -> bool:
        raise ServiceError("storage is down")

    monkeypatch.setattr(keeper, "_mark", broken)
    keeper.note_written(deps, TENANT_A, [BOB])  # logged; the notification marks Bob a few seconds later


def test_the_worker_marks_and_syncs_a_notified_mailbox() -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    sub = deps.subscriptions.list_subscriptions(TENANT_A)[0]
    assert sub.mailbox in (ANN, BOB)
    deps.graph.pending_busy[sub.mailbox] = [BusyChange(f"{sub.mailbox}-0", None)]
    item = {"t": TENANT_A, "s": sub.subscription_id, "c": "updated", "e": "AAMk1"}
    message = encode_messages("change", [item], NOW)[0]
    report = process_message(deps, message)
    assert report.cache_rounds == 1
    answer = _ask(deps, credential)
    assert answer.sources[sub.mailbox].source == "cache"
    assert next(s for s in answer.schedules if s.email == sub.mailbox).busy == (
        () if sub.mailbox == BOB else (_block(0, 18, FreeBusyStatus.TENTATIVE),)
    )


def test_a_row_older_than_the_freshness_bound_is_never_used() -> None:
    deps, credential = _deps(busy_cache_freshness_seconds=600.0)
    _warm(deps, credential)
    deps.clock.current = NOW + timedelta(seconds=600)
    assert {s.source for s in _ask(deps, credential).sources.values()} == {"cache"}
    deps.clock.current = NOW + timedelta(seconds=601)
    calls = len(deps.graph.schedule_calls)
    answer = _ask(deps, credential)
    assert {s.source for s in answer.sources.values()} == {"live"}
    assert len(deps.graph.schedule_calls) == calls + 1


def test_storage_down_falls_back_to_live_never_free() -> None:
    deps, credential = _deps()
    first = _warm(deps, credential)
    deps.busy.down = True
    reader.forget_worker_memory()
    answer = _ask(deps, credential)
    assert {s.source for s in answer.sources.values()} == {"live"}
    assert _slots(answer) == _slots(first)
    # Nor does a cache that cannot be written break the answer (noting new people is best effort).
    assert _ask(deps, credential, "carol@contoso.example").schedules[0].status is ScheduleStatus.UNREADABLE


def test_slow_storage_falls_back_to_live(monkeypatch: pytest.MonkeyPatch) -> None:
    deps, credential = _deps()
    first = _warm(deps, credential)
    reader.forget_worker_memory()
    release = threading.Event()
    original = deps.busy.read_person

    def slow(*args: Any) -> Any:
        release.wait(5)
        return original(*args)

    monkeypatch.setattr(deps.busy, "read_person", slow)
    monkeypatch.setattr(reader, "READ_BUDGET_SECONDS", 0.05)
    try:
        answer = _ask(deps, credential)
    finally:
        release.set()
    assert {s.source for s in answer.sources.values()} == {"live"}
    assert _slots(answer) == _slots(first)


def test_a_window_outside_the_synced_one_is_read_live() -> None:
    deps, credential = _deps(busy_cache_future_days=30)
    _warm(deps, credential)
    far = MONDAY + timedelta(days=40)
    answer = _ask(deps, credential, start=far.isoformat(), end=(far + timedelta(days=1)).isoformat())
    assert {s.source for s in answer.sources.values()} == {"live"}


def test_gone_delta_link_resyncs_in_full_and_is_counted() -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    link = deps.busy.get_person(TENANT_A, ANN).delta_link
    assert link
    deps.graph.expired_delta_links.add(link)
    assert keeper.sync_person(deps, TENANT_A, ANN) is True
    assert deps.graph.busy_calls[-2:] == [(ANN, link), (ANN, None)]
    assert deps.busy.get_person(TENANT_A, ANN).resyncs_gone == 1
    health = busy_cache_json(cache_health(deps, TENANT_A))
    assert (health["interviewers"], health["warm"], health["cold"]) == (2, 2, 0)
    assert health["resyncs_after_gone"] == 1 and health["resyncs_after_missed"] == 0
    assert health["last_full_resync_at"] == NOW.isoformat()


def test_missed_lifecycle_event_resyncs_in_full() -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    deps.clock.current = NOW + timedelta(minutes=1)
    assert keeper.on_lifecycle(deps, TENANT_A, BOB, "missed") is True
    assert deps.graph.busy_calls[-1] == (BOB, None)
    record = deps.busy.get_person(TENANT_A, BOB)
    # The round is dated just past the mark it follows (the clock did not move between them here).
    assert record.resyncs_missed == 1 and record.full_sync_at == NOW + timedelta(minutes=1) + keeper.TICK
    assert record.notified_at == NOW + timedelta(minutes=1)
    assert keeper.on_lifecycle(deps, TENANT_A, BOB, "reauthorizationRequired") is False
    assert cache_health(deps, TENANT_A).resyncs_after_missed == 1


def test_the_same_change_twice_and_removals_of_unknown_items_are_harmless() -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    extra = _block(1, 15)
    change = BusyChange("new", CachedBlock("new", extra.start, extra.end, extra.status))
    for _ in range(2):
        deps.graph.pending_busy[ANN] = [change, BusyChange("never-seen", None)]
        assert keeper.sync_person(deps, TENANT_A, ANN)
    busy = next(s for s in _ask(deps, credential).schedules if s.email == ANN).busy
    assert busy.count(extra) == 1


def test_blocks_that_leave_the_window_are_dropped() -> None:
    deps, credential = _deps(busy_cache_future_days=30)
    _warm(deps, credential)
    far = NOW + timedelta(days=45)
    deps.graph.pending_busy[ANN] = [
        BusyChange(f"{ANN}-0", CachedBlock(f"{ANN}-0", far, far + timedelta(hours=1), FreeBusyStatus.BUSY))
    ]
    assert keeper.sync_person(deps, TENANT_A, ANN)
    assert f"{ANN}-0" not in deps.busy.blocks[(TENANT_A, ANN)]


def test_another_tenants_session_never_reads_this_tenants_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    deps, credential = _deps()
    _warm(deps, credential)
    consented(deps, TENANT_B)
    other = sign_in(deps, replace(USER, tenant_id=TENANT_B, user_id="u-b", username="rae@fabrikam.example"))
    asked: list[str] = []
    original_epoch, original_read = deps.busy.get_epoch, deps.busy.read_person

    def epoch(tenant_id: str) -> str:
        asked.append(tenant_id)
        return original_epoch(tenant_id)

    def read(tenant_id: str, *rest: Any) -> Any:
        asked.append(tenant_id)
        return original_read(tenant_id, *rest)

    monkeypatch.setattr(deps.busy, "get_epoch", epoch)
    monkeypatch.setattr(deps.busy, "read_person", read)
    answer = _ask(deps, other, ANN)
    assert answer.sources[ANN].source == "live"
    assert answer.schedules[0].status is ScheduleStatus.UNREADABLE  # outside the caller's tenant
    assert asked and set(asked) == {TENANT_B}


def test_the_per_tenant_cap_and_eviction() -> None:
    deps, credential = _deps(busy_cache_max_people=1, busy_cache_evict_days=14)
    _warm(deps, credential, ANN, BOB)
    assert [p.person for p in deps.busy.list_people(TENANT_A)] == [ANN]
    assert _ask(deps, credential).sources[BOB].source == "live"
    deps.clock.current = NOW + timedelta(days=15)
    report = keeper.run_rounds(deps)
    assert report.evicted == 1
    assert deps.busy.list_people(TENANT_A) == []


def test_timer_rounds_warm_people_whose_warm_up_message_was_lost() -> None:
    deps, credential = _deps()
    _ask(deps, credential)
    deps.notification_queue.messages.clear()  # the warm-up message never arrives
    assert {s.source for s in _ask(deps, credential).sources.values()} == {"live"}
    assert keeper.run_rounds(deps).synced == 2
    assert {s.source for s in _ask(deps, credential).sources.values()} == {"cache"}


def test_people_graph_could_not_read_are_not_kept() -> None:
    deps, credential = _deps()
    answer = _ask(deps, credential, ANN, "carol@contoso.example")
    assert answer.schedules[1].status is ScheduleStatus.UNREADABLE
    assert [p.person for p in deps.busy.list_people(TENANT_A)] == [ANN]


def test_a_round_that_changes_nothing_keeps_the_epoch_and_readers_still_see_it() -> None:
    deps, credential = _deps(busy_cache_freshness_seconds=600.0)
    _warm(deps, credential)
    _ask(deps, credential)  # remembered by this worker
    epoch = deps.busy.get_epoch(TENANT_A)
    deps.clock.current = NOW + timedelta(seconds=500)
    assert keeper.run_rounds(deps).synced == 2
    assert deps.busy.get_epoch(TENANT_A) == epoch
    deps.clock.current = NOW + timedelta(seconds=700)  # past the bound for what this worker remembers
    calls = len(deps.graph.schedule_calls)
    answer = _ask(deps, credential)
    assert {s.as_of for s in answer.sources.values()} == {NOW + timedelta(seconds=500)}
    assert len(deps.graph.schedule_calls) == calls
