"""Expansion of Graph's patternedRecurrence into occurrences, at wall-clock time in the series' zone.

Supported patterns: daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly;
ranges: endDate, noEnd, numbered. Expansion walks day by day, which is simple and exact: from the
range's start date for a ``numbered`` range (it needs the count from the first occurrence), else from
just before the window. Each occurrence keeps its wall-clock time in the series' zone, so a series
crossing a daylight-saving change moves in UTC.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from devtools.cloud.common import GraphError
from devtools.cloud.graph.timezones import zone

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
INDEXES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
PATTERNS = {"daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"}
# Outlook stops expanding an endless series somewhere; ten years of days is far past any window we serve.
MAX_DAYS = 3660


def validate(recurrence: dict[str, Any]) -> None:
    """Reject a patternedRecurrence Graph would reject (400 ErrorInvalidRequest)."""
    pattern = recurrence.get("pattern") or {}
    rng = recurrence.get("range") or {}
    if pattern.get("type") not in PATTERNS:
        raise GraphError(400, "ErrorInvalidRequest", "The recurrence pattern type is not valid.")
    if rng.get("type") not in ("endDate", "noEnd", "numbered") or not rng.get("startDate"):
        raise GraphError(400, "ErrorInvalidRequest", "The recurrence range is not valid.")
    try:
        date.fromisoformat(rng["startDate"])
        if rng["type"] == "endDate":
            date.fromisoformat(rng.get("endDate") or "")
    except ValueError as err:
        raise GraphError(400, "ErrorInvalidRequest", "The recurrence range dates are not valid.") from err
    if rng["type"] == "numbered" and int(rng.get("numberOfOccurrences") or 0) < 1:
        raise GraphError(400, "ErrorInvalidRequest", "The recurrence range needs numberOfOccurrences.")
    if pattern["type"] in ("weekly", "relativeMonthly", "relativeYearly") and not pattern.get("daysOfWeek"):
        raise GraphError(400, "ErrorInvalidRequest", "The recurrence pattern needs daysOfWeek.")


def _weekday(name: str) -> int:
    return DAYS.index(name.lower())


def _nth_weekday(year: int, month: int, weekdays: set[int], index: int) -> set[int]:
    """Days of ``month`` that are the ``index``-th (or last) of any weekday in ``weekdays``."""
    days_in_month = calendar.monthrange(year, month)[1]
    result: set[int] = set()
    for weekday in weekdays:
        matches = [d for d in range(1, days_in_month + 1) if date(year, month, d).weekday() == weekday]
        if index == -1:
            result.add(matches[-1])
        elif index <= len(matches):
            result.add(matches[index - 1])
    return result


def _matcher(pattern: dict[str, Any], start: date) -> Callable[[date], bool]:
    """A test of whether a day holds an occurrence, with the pattern's constants worked out once."""
    kind = pattern["type"]
    interval = max(1, int(pattern.get("interval") or 1))
    days = {_weekday(d) for d in pattern.get("daysOfWeek") or []}
    index = INDEXES.get(str(pattern.get("index") or "first").lower(), 1)
    if kind == "daily":
        return lambda day: (day - start).days % interval == 0
    if kind == "weekly":
        first = _weekday(pattern.get("firstDayOfWeek") or "sunday")
        # Weeks are counted from the week (as the pattern's first day defines it) holding the start.
        week_start = start - timedelta(days=(start.weekday() - first) % 7)
        return lambda day: day.weekday() in days and ((day - week_start).days // 7) % interval == 0

    def months(day: date) -> int:
        return (day.year - start.year) * 12 + (day.month - start.month)

    if kind == "absoluteMonthly":
        wanted = int(pattern.get("dayOfMonth") or start.day)
        return lambda day: (
            months(day) % interval == 0 and day.day == min(wanted, calendar.monthrange(day.year, day.month)[1])
        )
    if kind == "relativeMonthly":
        return lambda day: months(day) % interval == 0 and day.day in _nth_weekday(day.year, day.month, days, index)
    month = int(pattern.get("month") or start.month)
    if kind == "absoluteYearly":
        wanted = int(pattern.get("dayOfMonth") or start.day)
        return lambda day: (
            (day.year - start.year) % interval == 0
            and day.month == month
            and day.day == min(wanted, calendar.monthrange(day.year, month)[1])
        )
    if kind == "relativeYearly":
        return lambda day: (
            (day.year - start.year) % interval == 0
            and day.month == month
            and day.day in _nth_weekday(day.year, month, days, index)
        )
    return lambda day: False


def series_zone(recurrence: dict[str, Any], fallback: str) -> tzinfo:
    name = (recurrence.get("range") or {}).get("recurrenceTimeZone") or fallback
    return zone(name) or UTC


def occurrences(
    recurrence: dict[str, Any],
    first_start: datetime,
    duration: timedelta,
    tz_name: str,
    window_start: datetime,
    window_end: datetime,
) -> Iterator[tuple[datetime, datetime]]:
    """UTC (start, end) of each occurrence overlapping [window_start, window_end)."""
    pattern = recurrence["pattern"]
    rng = recurrence["range"]
    tz = series_zone(recurrence, tz_name)
    local_first = first_start.astimezone(tz)
    start_day = date.fromisoformat(rng["startDate"])
    end_day = date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" else None
    remaining = int(rng.get("numberOfOccurrences") or 0) if rng["type"] == "numbered" else None
    last_useful = (window_end.astimezone(tz) + timedelta(days=1)).date()
    matches = _matcher(pattern, start_day)
    day = start_day
    if remaining is None:
        # Nothing is counted, so the walk may start just before the window (an occurrence that began
        # the day before can still overlap it); patterns are measured from start_day either way.
        day = max(start_day, (window_start.astimezone(tz) - duration).date() - timedelta(days=1))
    for _ in range(MAX_DAYS):
        if end_day is not None and day > end_day:
            return
        if remaining is not None and remaining <= 0:
            return
        if day > last_useful:
            return
        if matches(day):
            local = datetime.combine(day, local_first.time(), tzinfo=tz)
            start = local.astimezone(UTC)
            end = start + duration
            if remaining is not None:
                remaining -= 1
            if start < window_end and end > window_start:
                yield start, end
        day += timedelta(days=1)
