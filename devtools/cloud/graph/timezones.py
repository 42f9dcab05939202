"""Time zones as Graph speaks them: Windows names (the default), IANA names, custom time zones, dateTimeTimeZone.

Graph accepts either spelling in request bodies and ``Prefer: outlook.timezone``, and echoes the
name it was given in responses. Windows names map to IANA zones through CLDR's windowsZones table as
``tzlocal.windows_tz`` maintains it (``zoneinfo`` with ``tzdata`` does the rest). Working hours may
carry a ``customTimeZone`` instead of a name (``CustomTimeZone`` below). Internally every instant is
an aware UTC ``datetime``.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from tzlocal.windows_tz import win_tz

from devtools.cloud.common import GraphError

_WINDOWS_BY_LOWER: dict[str, str] = {name.lower(): iana for name, iana in win_tz.items()}
_UTC_NAMES = frozenset({"utc", "etc/utc", "etc/gmt", "gmt", "etc/universal", "universal", "zulu", "etc/zulu"})
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@lru_cache(maxsize=1)
def _iana_by_lower() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@lru_cache(maxsize=1024)
def _named_zone(name: str) -> tzinfo | None:
    key = name.lower()
    iana = _WINDOWS_BY_LOWER.get(key) or _iana_by_lower().get(key)
    if iana is None:
        return None
    if iana.lower() in _UTC_NAMES:
        return UTC
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone(name: str | None) -> tzinfo | None:
    """The zone a Windows or IANA name (matched case-insensitively) denotes, or None when Graph would not know it."""
    if not name or not name.strip():
        return None
    return _named_zone(name.strip())


def require_zone(name: str | None) -> tzinfo:
    """Like ``zone`` but answers an unknown name with Graph's 400."""
    tz = zone(name)
    if tz is None:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name or ''}'.",
        )
    return tz


# ---- customTimeZone ----------------------------------------------------------------------------
# Sign of ``bias``: the resource page says zones ahead of UTC have a positive bias, but Graph returns
# +480 for US Pacific (microsoft-graph-docs-contrib issue 562, "Instructions for customTimeZone bias
# seem incorrect"), the Windows/Exchange convention "UTC = Local + Bias". This cloud follows what Graph
# returns: UTC = local + bias in standard time and UTC = local + bias + daylightBias in daylight time.
# dayOccurrence 5 means the last such weekday of the month (Windows SYSTEMTIME rule; Graph's pages are
# silent). ``year`` 0 means every year (standardtimezoneoffset.md); other values are treated alike.
# Sources: microsoft-graph-docs-contrib api-reference/v1.0/resources/customtimezone.md,
# standardtimezoneoffset.md, daylighttimezoneoffset.md.
class CustomTimeZone(tzinfo):
    """A Graph ``customTimeZone`` as a ``tzinfo``: a fixed bias and, optionally, yearly daylight-time rules."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.name = str(body.get("name") or "Customized Time Zone")
        self.bias = _int(body.get("bias"), "bias")
        standard = body.get("standardOffset") or {}
        daylight = body.get("daylightOffset") or {}
        if not isinstance(standard, dict) or not isinstance(daylight, dict):
            raise ValueError("standardOffset and daylightOffset must be objects")
        self.daylight_bias = _int(daylight.get("daylightBias"), "daylightBias")
        self._standard = _rule(standard) if standard else None
        self._daylight = _rule(daylight) if daylight else None
        self.has_dst = bool(self.daylight_bias and self._standard is not None and self._daylight is not None)
        self._std = timedelta(minutes=-self.bias)
        self._dst = timedelta(minutes=-(self.bias + self.daylight_bias))

    def __repr__(self) -> str:
        return f"CustomTimeZone({self.name!r}, bias={self.bias}, daylightBias={self.daylight_bias})"

    def _transitions(self, year: int) -> tuple[datetime, datetime]:
        """Local wall times (naive) of the switch to daylight time and of the switch back, in ``year``."""
        assert self._daylight is not None and self._standard is not None
        return _transition(year, *self._daylight), _transition(year, *self._standard)

    def _is_dst_local(self, local: datetime) -> bool:
        if not self.has_dst:
            return False
        naive = local.replace(tzinfo=None)
        to_daylight, to_standard = self._transitions(naive.year)
        repeated = timedelta(minutes=abs(self.daylight_bias))
        if to_daylight < to_standard:  # northern pattern: daylight time inside one calendar year
            dst = to_daylight <= naive < to_standard
        else:  # southern pattern: daylight time across the new year
            dst = not (to_standard <= naive < to_daylight)
        if dst and local.fold == 1 and to_standard - repeated <= naive < to_standard:
            return False  # the second pass through the repeated hour is standard time
        return dst

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return self._std
        return self._dst if self._is_dst_local(dt) else self._std

    def dst(self, dt: datetime | None) -> timedelta:
        if dt is None or not self._is_dst_local(dt):
            return timedelta(0)
        return timedelta(minutes=-self.daylight_bias)

    def tzname(self, dt: datetime | None) -> str:
        return self.name

    def fromutc(self, dt: datetime) -> datetime:
        naive = dt.replace(tzinfo=None)
        if self.has_dst:
            to_daylight, to_standard = self._transitions(naive.year)
            # The switches as UTC instants: to daylight at local standard time, back at local daylight time.
            daylight_utc = to_daylight - self._std
            standard_utc = to_standard - self._dst
            if daylight_utc < standard_utc:
                dst = daylight_utc <= naive < standard_utc
            else:
                dst = not (standard_utc <= naive < daylight_utc)
            if dst:
                return (naive + self._dst).replace(tzinfo=self)
            local = naive + self._std
            # Inside the repeated hour after the switch back, mark the second pass (fold=1).
            fold = 1 if to_standard - timedelta(minutes=abs(self.daylight_bias)) <= local < to_standard else 0
            return local.replace(tzinfo=self, fold=fold)
        return (naive + self._std).replace(tzinfo=self)


def _int(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{field} must be a number")
    return int(value)


def _rule(body: dict[str, Any]) -> tuple[int, int, int, time]:
    month = _int(body.get("month"), "month")
    occurrence = _int(body.get("dayOccurrence"), "dayOccurrence")
    weekday_name = str(body.get("dayOfWeek") or "sunday").lower()
    if not 1 <= month <= 12 or not 1 <= occurrence <= 5 or weekday_name not in DAYS:
        raise ValueError("a time zone transition needs month 1-12, dayOccurrence 1-5 and a dayOfWeek")
    return month, occurrence, DAYS.index(weekday_name), parse_time_of_day(str(body.get("time") or "00:00:00"))


def _transition(year: int, month: int, occurrence: int, weekday: int, at: time) -> datetime:
    first_weekday, days_in_month = calendar.monthrange(year, month)
    day = 1 + (weekday - first_weekday) % 7 + 7 * (occurrence - 1)
    while day > days_in_month:  # occurrence 5: the last one
        day -= 7
    return datetime.combine(date(year, month, day), at)


_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,7}))?)?")


def parse_time_of_day(text: str) -> time:
    """An ``Edm.TimeOfDay`` ("09:00:00.0000000", "09:00:00", "09:00") as a ``time``; ValueError otherwise."""
    match = _TIME_OF_DAY.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a time of day: {text!r}")
    hours, minutes, seconds, fraction = match.groups()
    micro = int((fraction or "0").ljust(7, "0")[:6])
    return time(int(hours), int(minutes), int(seconds or 0), micro)


def format_time_of_day(value: time) -> str:
    return value.strftime("%H:%M:%S") + f".{value.microsecond:06d}0"


@lru_cache(maxsize=256)
def _custom_zone(key: str) -> CustomTimeZone:
    return CustomTimeZone(json.loads(key))


def is_custom(body: Any) -> bool:
    return isinstance(body, dict) and (
        str(body.get("@odata.type") or "").lstrip("#").lower() == "microsoft.graph.customtimezone" or "bias" in body
    )


def time_zone_base(body: Any) -> tzinfo | None:
    """The zone of a ``timeZoneBase`` (working hours' ``timeZone``): a named zone or a ``customTimeZone``."""
    if not isinstance(body, dict):
        return None
    if is_custom(body):
        try:
            return _custom_zone(json.dumps(body, sort_keys=True))
        except ValueError:
            return None
    name = body.get("name")
    return zone(name) if isinstance(name, str) else None


def working_hours_zone(working_hours: dict[str, Any] | None, fallback: str | None = None) -> tzinfo:
    """The zone a user's working hours are in (custom zones included); the fallback name, else UTC."""
    found = time_zone_base((working_hours or {}).get("timeZone"))
    return found or zone(fallback) or UTC


def working_intervals(
    working_hours: dict[str, Any] | None, start: datetime, end: datetime, *, fallback: str | None = None
) -> list[tuple[datetime, datetime]]:
    """The UTC spans of ``[start, end)`` inside working hours, wall-clock times in the working-hours zone."""
    if not working_hours:
        return []
    tz = working_hours_zone(working_hours, fallback)
    days = {str(d).lower() for d in working_hours.get("daysOfWeek") or []}
    begin = parse_time_of_day(str(working_hours.get("startTime") or "00:00:00"))
    finish = parse_time_of_day(str(working_hours.get("endTime") or "00:00:00"))
    spans: list[tuple[datetime, datetime]] = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        if DAYS[day.weekday()] in days:
            open_at = datetime.combine(day, begin, tzinfo=tz).astimezone(UTC)
            close_at = datetime.combine(day, finish, tzinfo=tz).astimezone(UTC)
            lo, hi = max(open_at, start), min(close_at, end)
            if lo < hi:
                spans.append((lo, hi))
        day += timedelta(days=1)
    return spans


# ---- dateTimeTimeZone ------------------------------------------------------------------------------
def prefer_timezone(headers: Any) -> str | None:
    """The zone named by ``Prefer: outlook.timezone="..."``, if any (unknown names are ignored, as UTC)."""
    for value in headers.getlist("prefer") if hasattr(headers, "getlist") else [headers.get("prefer", "")]:
        for part in value.split(","):
            key, _, raw = part.strip().partition("=")
            if key.strip().lower() == "outlook.timezone":
                name = raw.strip().strip('"')
                return name if zone(name) is not None else None
    return None


def format_local(instant: datetime, tz_name: str | None) -> dict[str, str]:
    """A dateTimeTimeZone for ``instant`` shown in ``tz_name`` (UTC when None), Graph's 7-digit fraction."""
    text, shown = _format_local(instant, tz_name)
    return {"dateTime": text, "timeZone": shown}


@functools.lru_cache(maxsize=16384)
def _format_local(instant: datetime, tz_name: str | None) -> tuple[str, str]:
    # Free/busy answers repeat instants (series, shared meetings, whole days): format each once.
    tz = zone(tz_name) if tz_name else None
    if tz is None and instant.tzinfo is UTC:
        local = instant.replace(tzinfo=None)  # already UTC, as every instant here is
    else:
        local = instant.astimezone(tz or UTC).replace(tzinfo=None)
    return local.isoformat(timespec="microseconds") + "0", tz_name if tz is not None and tz_name else "UTC"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse_iso(text: str) -> datetime:
    cleaned = _FRACTION.sub(r"\1", text.strip())
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    return datetime.fromisoformat(cleaned)


def parse_datetime_timezone(value: Any, *, field_name: str = "dateTime") -> datetime:
    """A request's dateTimeTimeZone ({"dateTime", "timeZone"}) as an aware UTC datetime."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise GraphError(400, "ErrorInvalidRequest", f"The {field_name} value is missing or malformed.")
    try:
        parsed = _parse_iso(value["dateTime"])
    except ValueError as err:
        raise GraphError(
            400, "ErrorInvalidRequest", f"Cannot convert the literal '{value['dateTime']}' to DateTime."
        ) from err
    if parsed.tzinfo is None:
        tz = require_zone(value.get("timeZone") or "UTC")
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def parse_query_datetime(text: str | None) -> datetime | None:
    """calendarView bounds: the value's own offset counts; without one the value is UTC (never Prefer)."""
    if text is None:
        return None
    parsed = _parse_iso(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz).astimezone(UTC)


def utc_day_span(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    return local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
