"""Retries for read-modify-write updates whose ETag went stale because another writer got there first."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.errors import ConcurrencyConflict

T = TypeVar("T")

# A read-modify-write that re-reads before each attempt and writes nothing when the record already
# says what it would write converges in two attempts; the rest absorb bursts of unrelated writers.
DEFAULT_ATTEMPTS = 5


def retry_on_conflict(action: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
    """Re-run ``action`` (which must re-read what it updates) while its write loses an ETag race."""
    for attempt in range(attempts):
        try:
            return action()
        except ConcurrencyConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
