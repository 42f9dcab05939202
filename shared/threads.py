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

``SharedCalls`` runs one call for callers who ask for the same thing at about the same time, never
joining a call that began before the caller asked (so it reads every write made before it asked), and
starting when a caller says so. Availability shares its storage read of the tenant's bookings this way
and starts it once the query's first Graph request has its turn: eight queries arriving together read
storage once or twice instead of eight times inside the burst, and their first requests leave sooner
(two recruiters' eight 100-person queries, ``benchmarks/availability_load.py``: the slowest answer of a
round 0.1 round trip sooner at the median, 0.15 at the 90th percentile).

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
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")

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


class SharedCall(Generic[T]):
    """One call that the callers who joined it wait on together (``SharedCalls.join``). It runs on the
    executor once started: by ``start`` (any of them, from any thread, as often as they like) or by the
    first ``result``. A caller that no longer wants it ``leave``s; when every caller has left before it
    started, it never runs."""

    def __init__(self, owner: SharedCalls[T], key: object, call: Callable[[], T]) -> None:
        self._owner = owner
        self._key = key
        self._call = call
        self._future: Future[T] | None = None
        self._members = 0

    def start(self) -> None:
        self._owner._start(self)

    def result(self, timeout: float | None = None) -> T:
        """The call's value (or its exception), started now if nobody started it yet."""
        self.start()
        if self._future is None:  # every caller had left: a caller that left asked anyway
            raise RuntimeError("The shared call was left by every caller before it started.")
        return self._future.result(timeout)

    def leave(self) -> None:
        self._owner._leave(self)


class SharedCalls(Generic[T]):
    """Identical calls asked for at about the same time, run once for everyone who asked.

    ``join(key, call)`` gives the call with that key that has not started yet, or a new one. A caller
    joins only a call that has not started: what it gets was read after it asked, so a caller sees every
    write that was done before it asked (a booking made a moment earlier is counted), exactly as if it had
    read alone. Once started, a call is no longer joinable; the next caller of that key gets a new one.
    Callers say when it may start (``SharedCall.start``), typically once their more urgent work is on its
    way, so several callers' share runs once, after the burst, instead of once per caller inside it."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self._waiting: dict[object, SharedCall[T]] = {}

    def join(self, key: object, call: Callable[[], T]) -> SharedCall[T]:
        with self._lock:
            shared = self._waiting.get(key)
            if shared is None:
                shared = self._waiting[key] = SharedCall(self, key, call)
            shared._members += 1
            return shared

    def waiting(self) -> int:
        """Calls joined and not started yet."""
        with self._lock:
            return len(self._waiting)

    def _start(self, shared: SharedCall[T]) -> None:
        with self._lock:
            if shared._future is not None or shared._members == 0:
                return
            if self._waiting.get(shared._key) is shared:
                del self._waiting[shared._key]
            shared._future = self._executor.submit(shared._call)

    def _leave(self, shared: SharedCall[T]) -> None:
        with self._lock:
            shared._members -= 1
            if shared._members == 0 and shared._future is None and self._waiting.get(shared._key) is shared:
                del self._waiting[shared._key]


def tune() -> None:
    """At the app's import: the GIL changes hands every ``SWITCH_INTERVAL`` (a shorter one already set is
    kept)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
