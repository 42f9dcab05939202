"""Values derived from immutable objects, remembered per worker for as long as the object lives.

A warm interviewer's schedule is the same object from one query to the next (``shared.cache.reader``
keeps one per window), so what the slot engine and the answer derive from it (its busy cells on a grid,
its busy list as JSON) is worked out once per object and key instead of once per query. Lookups go by
identity: the object is neither hashed (a schedule's hash would walk all of its blocks) nor kept alive,
and what was derived from it is dropped when it is. Objects that live for one query only (a live
getSchedule read) cost one weak reference each and are forgotten with the query.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")

_MISSING: Any = object()


class IdentityMemo(Generic[V]):
    """Up to ``per_object`` values per live object, each under a key (the rest of what the value depends
    on: a grid, a window, a zone). Safe across threads without a lock: two threads deriving the same
    value at once both compute it, and either result is right."""

    def __init__(self, *, per_object: int = 8) -> None:
        if per_object < 1:
            raise ValueError("per_object must be at least 1")
        self._per_object = per_object
        self._slots: dict[int, tuple[weakref.ref[Any], dict[Hashable, V]]] = {}

    def get(self, obj: object, key: Hashable, derive: Callable[[], V]) -> V:
        """The value derived from ``obj`` under ``key``: remembered, or ``derive()`` now and remembered.
        ``obj`` must not change (a frozen dataclass); ``derive`` must depend only on ``obj`` and ``key``."""
        oid = id(obj)
        slot = self._slots.get(oid)
        if slot is not None and slot[0]() is obj:
            values = slot[1]
            found = values.get(key, _MISSING)
            if found is not _MISSING:
                return found  # type: ignore[no-any-return]
        else:
            values = {}
            ref = weakref.ref(obj, functools.partial(self._forget, oid))
            self._slots[oid] = (ref, values)
        value = derive()
        if len(values) >= self._per_object:
            values.clear()  # one atomic step: another thread may be reading these values
        values[key] = value
        return value

    def _forget(self, oid: int, dead: weakref.ref[Any]) -> None:
        # Runs when the object goes, in whichever thread dropped it: no lock to take (it might be held).
        slot = self._slots.get(oid)
        if slot is not None and slot[0] is dead:
            self._slots.pop(oid, None)

    def __len__(self) -> int:
        """How many live objects have values remembered."""
        return len(self._slots)
