"""Values derived from immutable objects: remembered per object and key, gone with the object."""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass

import pytest

from shared.memo import IdentityMemo


@dataclass(frozen=True)
class Thing:
    name: str


def test_a_value_is_derived_once_per_object_and_key() -> None:
    memo: IdentityMemo[str] = IdentityMemo()
    calls: list[tuple[str, int]] = []

    def derive(thing: Thing, key: int) -> str:
        calls.append((thing.name, key))
        return f"{thing.name}:{key}"

    a = Thing("a")
    assert memo.get(a, 1, lambda: derive(a, 1)) == "a:1"
    assert memo.get(a, 1, lambda: derive(a, 1)) == "a:1"
    assert memo.get(a, 2, lambda: derive(a, 2)) == "a:2"
    assert calls == [("a", 1), ("a", 2)]


def test_equal_objects_are_not_the_same_object() -> None:
    # Identity, not equality: an equal value read afresh derives its own (equal) values.
    memo: IdentityMemo[int] = IdentityMemo()
    first, second = Thing("x"), Thing("x")
    assert memo.get(first, "k", lambda: 1) == 1
    assert memo.get(second, "k", lambda: 2) == 2
    assert memo.get(first, "k", lambda: 3) == 1


def test_what_was_derived_goes_with_the_object_and_a_new_object_at_its_address_starts_empty() -> None:
    memo: IdentityMemo[str] = IdentityMemo()
    thing = Thing("old")
    memo.get(thing, "k", lambda: "old value")
    assert len(memo) == 1
    del thing
    gc.collect()
    assert len(memo) == 0
    for _ in range(100):  # CPython reuses addresses: none of these may see the old value
        fresh = Thing("new")
        assert memo.get(fresh, "k", lambda: "new value") == "new value"
        del fresh


def test_values_per_object_are_bounded() -> None:
    memo: IdentityMemo[int] = IdentityMemo(per_object=3)
    thing = Thing("t")
    for key in range(10):
        memo.get(thing, key, lambda key=key: key)
    calls: list[int] = []
    memo.get(thing, 9, lambda: calls.append(9) or 9)
    assert calls == []  # the newest is still there
    assert memo.get(thing, 0, lambda: -1) == -1  # the oldest went
    with pytest.raises(ValueError):
        IdentityMemo(per_object=0)


def test_threads_deriving_at_once_all_get_a_right_value() -> None:
    memo: IdentityMemo[int] = IdentityMemo(per_object=4)
    things = [Thing(str(i)) for i in range(50)]
    wrong: list[str] = []

    def work() -> None:
        for _ in range(200):
            for i, thing in enumerate(things):
                key = i % 7
                if memo.get(thing, key, lambda i=i, key=key: i * 10 + key) != i * 10 + key:
                    wrong.append(thing.name)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
