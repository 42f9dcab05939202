"""The worker's collector pace and what it freezes (shared/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared import heap
from shared.bootstrap import Container
from shared.config import Settings


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.fixture
def freezes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(heap, "_freezes", 0)
    monkeypatch.setattr(heap.gc, "freeze", lambda: calls.append(1))
    return calls


def test_tune_raises_the_young_threshold_and_keeps_the_older_ones(thresholds: None, freezes: list[int]) -> None:
    gc.set_threshold(700, 10, 10)
    heap.tune()
    assert gc.get_threshold() == (heap.YOUNG_COLLECTION_EVERY, 10, 10)
    assert freezes == [1]


@pytest.mark.parametrize("young", [0, heap.YOUNG_COLLECTION_EVERY * 5])
def test_tune_leaves_a_collector_that_is_off_or_already_slower(
    thresholds: None, freezes: list[int], young: int
) -> None:
    gc.set_threshold(young, 10, 10)
    heap.tune()
    assert gc.get_threshold() == (young, 10, 10)


def test_settle_freezes_at_most_max_freezes_times(freezes: list[int]) -> None:
    for _ in range(heap.MAX_FREEZES + 5):
        heap.settle()
    assert len(freezes) == heap.MAX_FREEZES


def test_a_frozen_object_is_still_freed_when_nothing_holds_it() -> None:
    class Thing:
        pass

    thing = Thing()
    gone = weakref.ref(thing)
    gc.freeze()
    try:
        del thing
        assert gone() is None  # reference counting, not the collector, frees it
    finally:
        gc.unfreeze()


def test_the_composition_root_settles_once_per_dependency_built(freezes: list[int]) -> None:
    container = Container(
        Settings.from_env({"CLIENT_ID": "c", "CLIENT_SECRET": "s", "RENEWAL_SCHEDULE": "0 0 * * * *"})
    )
    first = container.clock
    assert container.clock is first
    assert freezes == [1]
