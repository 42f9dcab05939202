"""The worker's kept thread pools and a request's lanes on them (shared/threads.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from shared import threads

BOUND = 10  # seconds: a bound for a broken build, never a timing


def _named(prefix: str) -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(prefix)}


def test_one_pool_per_name_for_the_life_of_the_process() -> None:
    first = threads.pool("test-kept", 3)
    assert threads.pool("test-kept", 3) is first
    assert threads.pool("test-other", 3) is not first


def test_results_come_back_in_the_order_given_whatever_order_they_finish() -> None:
    gate = threading.Event()

    def slow() -> str:
        gate.wait(BOUND)
        return "first"

    futures = threads.in_lanes(threads.pool("test-order", 8), [slow, lambda: "second", lambda: "third"], 3)
    assert futures[1].result(BOUND) == "second" and futures[2].result(BOUND) == "third"
    assert not futures[0].done()
    gate.set()
    assert [f.result(BOUND) for f in futures] == ["first", "second", "third"]


def test_never_more_than_its_lanes_at_once_on_a_bigger_pool() -> None:
    lock = threading.Lock()
    running = 0
    most = 0
    two_in = threading.Barrier(2, timeout=BOUND)

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            two_in.wait()  # both lanes busy at once: a third call would have had to run beside them
        except threading.BrokenBarrierError:
            pass
        finally:
            with lock:
                running -= 1

    futures = threads.in_lanes(threads.pool("test-lanes", 16), [call] * 8, 2)
    done, pending = wait(futures, timeout=BOUND)
    assert not pending
    assert most == 2


def test_one_lane_starts_the_calls_in_the_order_given() -> None:
    started: list[int] = []

    def call(index: int) -> Callable[[], None]:
        return lambda: started.append(index)

    futures = threads.in_lanes(threads.pool("test-one-lane", 4), [call(i) for i in range(6)], 1)
    wait(futures, timeout=BOUND)
    assert started == list(range(6))


def test_a_failing_call_fails_its_own_future_only() -> None:
    def broken() -> int:
        raise ValueError("no")

    futures = threads.in_lanes(threads.pool("test-fail", 4), [lambda: 1, broken, lambda: 3], 1)
    assert futures[0].result(BOUND) == 1
    with pytest.raises(ValueError, match="no"):
        futures[1].result(BOUND)
    assert futures[2].result(BOUND) == 3


def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    gate = threading.Event()
    ran: list[str] = []

    def first() -> None:
        gate.wait(BOUND)
        ran.append("first")

    futures = threads.in_lanes(
        threads.pool("test-cancel", 4), [first, lambda: ran.append("second"), lambda: ran.append("third")], 1
    )
    assert futures[1].cancel()
    gate.set()
    futures[2].result(BOUND)
    assert ran == ["first", "third"]
    assert futures[1].cancelled()
    assert not futures[0].cancel()  # one that ran is not cancelled after the fact


def test_requests_after_the_first_start_no_thread() -> None:
    executor = threads.pool("test-warm", 8)

    def four_at_once() -> None:
        together = threading.Barrier(4, timeout=BOUND)  # all four lanes busy at the same moment
        assert not wait(threads.in_lanes(executor, [together.wait] * 4, 4), timeout=BOUND).not_done

    four_at_once()
    warm = _named("test-warm")
    assert len(warm) == 4
    for _ in range(5):
        four_at_once()
    assert _named("test-warm") == warm


def test_no_lanes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one lane"):
        threads.in_lanes(ThreadPoolExecutor(1), [lambda: None], 0)


def test_nothing_to_run_gives_no_futures() -> None:
    assert threads.in_lanes(threads.pool("test-empty", 2), [], 4) == []


@pytest.mark.parametrize(("before", "after"), [(0.005, threads.SWITCH_INTERVAL), (0.0002, 0.0002)])
def test_tune_shortens_the_gil_s_turns_but_keeps_a_shorter_one(
    monkeypatch: pytest.MonkeyPatch, before: float, after: float
) -> None:
    interval = [before]
    monkeypatch.setattr(threads.sys, "getswitchinterval", lambda: interval[0])
    monkeypatch.setattr(threads.sys, "setswitchinterval", lambda seconds: interval.__setitem__(0, seconds))
    threads.tune()
    assert interval == [after]


def test_the_app_s_import_tunes_the_worker() -> None:
    import sys

    import function_app  # noqa: F401 (imported for what its import does)

    assert sys.getswitchinterval() <= threads.SWITCH_INTERVAL


# ---- calls shared by callers who ask at about the same time ----------------------------------------------
class Counted:
    """A call that counts its runs and, while ``gate`` is shut, waits for it."""

    def __init__(self, value: object = "read") -> None:
        self.runs = 0
        self.value = value
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def __call__(self) -> object:
        with self._lock:
            self.runs += 1
        self.gate.wait(BOUND)
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def test_callers_who_join_before_the_call_starts_share_one_run() -> None:
    calls: threads.SharedCalls[object] = threads.SharedCalls(threads.pool("test-shared", 4))
    read = Counted()
    first = calls.join("tenant-a", read)
    second = calls.join("tenant-a", read)
    assert second is first and read.runs == 0  # nothing runs before someone says it may
    second.start()
    first.start()
    assert first.result(BOUND) == second.result(BOUND) == "read"
    assert read.runs == 1
    first.leave()
    second.leave()
    assert calls.waiting() == 0


def test_a_caller_never_joins_a_call_that_started_before_it_asked() -> None:
    # Its answer could then miss a write made before it asked (a booking made a moment earlier).
    calls: threads.SharedCalls[object] = threads.SharedCalls(threads.pool("test-shared", 4))
    early = Counted("before")
    early.gate.clear()
    first = calls.join("tenant-a", early)
    first.start()
    late = Counted("after")
    second = calls.join("tenant-a", late)
    assert second is not first
    assert second.result(BOUND) == "after" and late.runs == 1
    early.gate.set()
    assert first.result(BOUND) == "before" and early.runs == 1


def test_keys_are_never_shared() -> None:
    calls: threads.SharedCalls[object] = threads.SharedCalls(threads.pool("test-shared", 4))
    a, b = Counted("a"), Counted("b")
    assert calls.join("tenant-a", a).result(BOUND) == "a"
    assert calls.join("tenant-b", b).result(BOUND) == "b"
    assert (a.runs, b.runs) == (1, 1)


def test_a_call_everyone_left_before_it_started_never_runs_and_is_forgotten() -> None:
    calls: threads.SharedCalls[object] = threads.SharedCalls(threads.pool("test-shared", 4))
    read = Counted()
    first = calls.join("tenant-a", read)
    second = calls.join("tenant-a", read)
    first.leave()
    assert calls.waiting() == 1  # the second caller still wants it
    second.leave()
    assert calls.waiting() == 0
    second.start()  # a late start from a request still in flight does nothing
    assert read.runs == 0
    fresh = calls.join("tenant-a", Counted("fresh"))
    assert fresh is not first and fresh.result(BOUND) == "fresh"


def test_a_failure_reaches_every_caller_who_shared_the_call() -> None:
    calls: threads.SharedCalls[object] = threads.SharedCalls(threads.pool("test-shared", 4))
    read = Counted(RuntimeError("storage is down"))
    first = calls.join("tenant-a", read)
    second = calls.join("tenant-a", read)
    for caller in (first, second):
        with pytest.raises(RuntimeError, match="storage is down"):
            caller.result(BOUND)
    assert read.runs == 1
