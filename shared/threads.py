"""The worker's thread pools: each made once per process, its threads kept for the next request.

A thread started per request costs more than its own start. ``ThreadPoolExecutor.submit`` holds a lock
that every pool of the process shares (``concurrent.futures.thread._global_shutdown_lock``) while it
starts a new thread, and the new thread has to get the GIL before ``start`` returns, which in a busy
worker takes up to a switch interval (5 ms). A pool made per query so held up every other submit of
the worker, the host's hand-over of the next HTTP requests to their invocation threads among them: with
eight 100-person availability queries arriving together the last reached its handler 30 to 75 ms late
(``benchmarks/availability_load.py``). With pools made once, a submit is a queue put.

``in_lanes`` runs a request's calls on a shared pool without letting one request take all of it: at most
``lanes`` of its calls at once, in the order given, each with a future of its own that can still be
cancelled while its call has not started.

``tune`` shortens the interval after which a thread holding the GIL hands it to one that waits (CPython's
default is 5 ms; ``sys.setswitchinterval``). A worker runs many threads that each need the GIL only
briefly (a Graph call sent, its answer's headers read, the place in the mailbox's line given back) beside
a few that compute for longer (an answer's slots). With 5 ms turns handed out in no particular order, a
call whose answer had arrived waited tens of milliseconds behind the others' turns; with 1 ms the short
ones get through first. Measured with two recruiters' eight concurrent 100-person queries
(``benchmarks/availability_load.py``): the slowest answer of a round 5.9 to 5.95 round trips at the
median and 6.15 at the 90th percentile, against 5.7 and 6.0 with 1 ms.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

SWITCH_INTERVAL = 0.001  # seconds a thread holds the GIL while others wait (CPython: 0.005)

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def pool(name: str, size: int) -> ThreadPoolExecutor:
    """The process's pool called ``name`` (its threads named so too), made on first use with ``size``
    threads at most; they start as work arrives and stay."""
    with _lock:
        found = _pools.get(name)
        if found is None:
            found = _pools[name] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        return found


def in_lanes(executor: ThreadPoolExecutor, calls: Sequence[Callable[[], T]], lanes: int) -> list[Future[T]]:
    """Run ``calls`` on ``executor``, at most ``lanes`` at once, each started in the order given; one
    future per call, in the same order. A future cancelled before its call starts skips the call (the
    way to drop what is still queued when a deadline passes); one running finishes on its own."""
    if lanes < 1:
        raise ValueError("in_lanes needs at least one lane.")
    futures: list[Future[T]] = [Future() for _ in calls]
    queue = deque(zip(calls, futures, strict=True))

    def lane() -> None:
        while True:
            try:
                call, future = queue.popleft()  # atomic: lanes never take the same call
            except IndexError:
                return
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                result = call()
            except BaseException as err:  # noqa: BLE001 (handed to whoever waits on the future, as a pool does)
                future.set_exception(err)
            else:
                future.set_result(result)

    for _ in range(min(lanes, len(futures))):
        executor.submit(lane)
    return futures


def tune() -> None:
    """At the app's import: the GIL changes hands every ``SWITCH_INTERVAL`` (a shorter one already set is
    kept)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
