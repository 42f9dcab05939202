"""The worker's garbage collector, set for what a worker holds.

A worker keeps a large heap for as long as it lives (its modules, the SDKs' classes, its clients, the
busy cache) and each answer allocates tens of thousands of short-lived containers (a getSchedule answer
parsed, a 100-person answer written). With CPython's defaults (a young collection every 700 net
allocations of containers) a 100-interviewer availability answer paid about 20 ms in collections, most of
it in full collections that walked everything the worker had imported, each holding the GIL for about
90 ms while every other request waited (``benchmarks/availability_load.py``).

Two changes, both documented uses of the ``gc`` module: young collections every ``YOUNG_COLLECTION_EVERY``
allocations (the objects of one answer mostly die, by reference counting, before one runs), and what the
worker has built so far is moved out of the collector's sight (``gc.freeze``) once it is built, so a full
collection walks only what came later. Reference counting still frees everything at once; only a cycle
among frozen objects would stay, so freezing is bounded to ``MAX_FREEZES`` per process (the app's import
and the dependencies the composition root builds once each).
"""

from __future__ import annotations

import gc
import threading

YOUNG_COLLECTION_EVERY = 10_000  # CPython's default is 700
MAX_FREEZES = 32

_lock = threading.Lock()
_freezes = 0


def tune() -> None:
    """At the app's import: fewer young collections, and what the import built frozen."""
    young, older, oldest = gc.get_threshold()
    if 0 < young < YOUNG_COLLECTION_EVERY:  # 0: collection is off; a larger value was chosen on purpose
        gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)
    settle()


def settle() -> None:
    """What the worker built so far lives as long as the worker: out of the collector's sight. Called after
    each dependency is built once; does nothing after ``MAX_FREEZES`` calls in a process."""
    global _freezes
    with _lock:
        if _freezes >= MAX_FREEZES:
            return
        _freezes += 1
        gc.freeze()
