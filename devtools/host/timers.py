"""Timer triggers: fire each timer function on its NCRONTAB schedule, one invocation at a time.

Schedules may be ``%SETTING%`` references, resolved from the app settings at start as the
host does. Times are UTC unless ``WEBSITE_TIME_ZONE`` names an IANA zone. As on the
platform: ``runOnStartup`` fires once when the host starts; a failed invocation is
logged and not retried; a timer never overlaps itself (the singleton lock, here within
one process). When an invocation overruns one or more later occurrences, the timer
runs once more straight away with ``past_due`` True and then returns to its schedule,
so missed occurrences collapse into one late run, as the schedule monitor does after
downtime. ``past_due`` is also True whenever an invocation starts more than
``past_due_tolerance`` (one second) after its scheduled time. Schedule status is kept in
memory only: ``useMonitor`` has no storage behind it in the local host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from azure.functions.timer import TimerRequest

from devtools.host.config import HostConfigurationError, resolve_setting_references
from devtools.host.functions import TIMER_TRIGGER, FunctionSpec, Invoker, stopped_within
from devtools.host.ncrontab import NCrontab, NCrontabError

logger = logging.getLogger(__name__)

DEFAULT_PAST_DUE_TOLERANCE = timedelta(seconds=1)
TIME_ZONE_SETTING = "WEBSITE_TIME_ZONE"

__all__ = [
    "DEFAULT_PAST_DUE_TOLERANCE",
    "NCrontab",
    "NCrontabError",
    "TimerService",
    "parse_schedule",
]


def parse_schedule(schedule: str, settings: Mapping[str, str], *, function_name: str = "") -> NCrontab:
    """Resolve ``%SETTING%`` references and parse the NCRONTAB expression.

    Raises HostConfigurationError (a ValueError) naming the function and the problem.
    """
    what = f"The schedule of function '{function_name}'" if function_name else "The schedule"
    expression = resolve_setting_references(schedule, settings, what=what)
    try:
        return NCrontab.parse(expression)
    except NCrontabError as err:
        raise HostConfigurationError(f"{what} is invalid: {err}") from err


def time_zone(settings: Mapping[str, str]) -> tzinfo:
    name = settings.get(TIME_ZONE_SETTING, "").strip()
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise HostConfigurationError(f"{TIME_ZONE_SETTING}='{name}' is not an IANA time zone name.") from err


@dataclass(frozen=True)
class _Timer:
    spec: FunctionSpec
    schedule: NCrontab
    run_on_startup: bool


class TimerService:
    """Runs every timer-triggered function of the app until ``stopping`` is set."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        *,
        settings: Mapping[str, str],
        invoker: Invoker,
        past_due_tolerance: timedelta = DEFAULT_PAST_DUE_TOLERANCE,
        clock: Callable[[tzinfo], datetime] | None = None,
    ) -> None:
        self._invoker = invoker
        self._tolerance = past_due_tolerance
        self._zone = time_zone(settings)
        self._clock = clock or (lambda zone: datetime.now(zone))
        self.timers = [
            _Timer(
                spec=spec,
                schedule=parse_schedule(
                    str(spec.trigger.get("schedule", "")),
                    settings,
                    function_name=spec.name,
                ),
                run_on_startup=bool(spec.trigger.get("runOnStartup", False)),
            )
            for spec in specs
            if spec.trigger_type == TIMER_TRIGGER
        ]

    def _now(self) -> datetime:
        return self._clock(self._zone)

    async def run(self, stopping: asyncio.Event) -> None:
        for timer in self.timers:
            logger.info(
                "Timer '%s': schedule '%s', next at %s",
                timer.spec.name,
                timer.schedule.expression,
                timer.schedule.next_after(self._now()),
            )
        await asyncio.gather(*(self._run_timer(timer, stopping) for timer in self.timers))

    async def _run_timer(self, timer: _Timer, stopping: asyncio.Event) -> None:
        last: datetime | None = None
        if timer.run_on_startup and not stopping.is_set():
            started = self._now()
            await self._fire(timer, scheduled=started, started=started, last=last)
            last = started
        due = self._next(timer, self._now())
        catching_up = False
        while not stopping.is_set():
            delay = (due - self._now()).total_seconds()
            if delay > 0 and await stopped_within(stopping, delay):
                return
            started = self._now()
            await self._fire(timer, scheduled=due, started=started, last=last)
            last = started
            following = self._next(timer, due)
            now = self._now()
            if following <= now and not catching_up:
                # The invocation overran later occurrences: one late run (past due), not one per miss.
                due, catching_up = following, True
            else:
                due, catching_up = (
                    (following if following > now else self._next(timer, now)),
                    False,
                )

    def _next(self, timer: _Timer, after: datetime) -> datetime:
        following = timer.schedule.next_after(after)
        assert following is not None  # parse() refuses schedules that never occur
        return following

    async def _fire(
        self,
        timer: _Timer,
        *,
        scheduled: datetime,
        started: datetime,
        last: datetime | None,
    ) -> None:
        past_due = started - scheduled > self._tolerance or self._next(timer, scheduled) <= started
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (last or datetime.min.replace(tzinfo=self._zone)).isoformat(),
                "Next": self._next(timer, started).isoformat(),
                "LastUpdated": started.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        try:
            await self._invoker.invoke(timer.spec, request, reason=f"Timer fired at {started.isoformat()}")
        except Exception:
            # The platform does not retry a failed timer invocation; the next occurrence runs as usual.
            logger.exception("Timer function '%s' failed", timer.spec.name)
