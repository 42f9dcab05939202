"""Timer triggers in the running host: schedule, run on startup, past due, singleton, no retry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import azure.functions as func
import pytest

from devtools.host import HostConfigurationError, start_host


@dataclass
class Calls:
    started: list[datetime] = field(default_factory=list)
    past_due: list[bool] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, timer: func.TimerRequest) -> None:
        with self.lock:
            self.started.append(datetime.now(UTC))
            self.past_due.append(timer.past_due)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_every_second_schedule_from_a_setting_fires_on_the_second() -> None:
    calls = Calls()
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%")
    def tick(timer: func.TimerRequest) -> None:
        calls.enter(timer)
        calls.leave()

    host = start_host(app, settings={"TICK_SCHEDULE": "* * * * * *"})
    try:
        wait_for(lambda: len(calls.started) >= 3)
    finally:
        host.stop()
    first, second, third = calls.started[:3]
    assert 0.7 < (second - first).total_seconds() < 1.3
    assert 0.7 < (third - second).total_seconds() < 1.3
    assert all(moment.microsecond < 300_000 for moment in calls.started[:3])  # fired at the top of the second
    assert calls.past_due[:3] == [False, False, False]


def test_run_on_startup_fires_at_once_even_when_the_schedule_is_far_away() -> None:
    calls = Calls()
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 0 0 1 Jan *", run_on_startup=True)
    def yearly(timer: func.TimerRequest) -> None:
        calls.enter(timer)
        calls.leave()

    before = time.monotonic()
    host = start_host(app, settings={})
    try:
        wait_for(lambda: len(calls.started) == 1, timeout=5)
        assert time.monotonic() - before < 3
        time.sleep(0.5)
    finally:
        host.stop()
    assert calls.past_due == [False]


def test_overrunning_timer_never_overlaps_and_its_late_run_is_past_due() -> None:
    calls = Calls()
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="* * * * * *")
    def slow(timer: func.TimerRequest) -> None:
        calls.enter(timer)
        try:
            if len(calls.started) == 1:
                time.sleep(2.5)  # overruns the next two occurrences
        finally:
            calls.leave()

    host = start_host(app, settings={})
    try:
        wait_for(lambda: len(calls.started) >= 3)
    finally:
        host.stop()
    assert calls.most_at_once == 1
    # On time; one late run for the missed occurrences (not one per miss); back on time.
    assert calls.past_due[:3] == [False, True, False]
    assert (calls.started[1] - calls.started[0]).total_seconds() >= 2.4


def test_failed_timer_is_not_retried_and_keeps_its_schedule(caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls()
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="* * * * * *")
    async def failing(timer: func.TimerRequest) -> None:
        calls.enter(timer)
        calls.leave()
        raise RuntimeError("timer failure")

    host = start_host(app, settings={})
    try:
        wait_for(lambda: len(calls.started) >= 2)
    finally:
        host.stop()
    # The next run is the next occurrence, a second later, not an immediate retry.
    assert (calls.started[1] - calls.started[0]).total_seconds() > 0.7
    assert "Timer function 'failing' failed" in caplog.text
    assert "timer failure" in caplog.text


def test_five_field_schedule_fails_at_start_naming_the_function() -> None:
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="*/5 * * * *")
    def unix_style(timer: func.TimerRequest) -> None:
        return None

    with pytest.raises(HostConfigurationError, match="'unix_style' is invalid.*five fields"):
        start_host(app, settings={})
