"""Time zones as Graph speaks them: Windows names (the default) and IANA names, and dateTimeTimeZone values.

Graph accepts either spelling in request bodies and ``Prefer: outlook.timezone``, and echoes the
name it was given in responses. Internally every instant is an aware UTC ``datetime``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devtools.cloud.common import GraphError

# Windows zone -> IANA zone, from CLDR's windowsZones ("001" territory). The common zones only:
# enough for fixtures and clients; an unknown name is answered the way Graph answers it.
WINDOWS_TO_IANA: dict[str, str] = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg",
    "E. Africa Standard Time": "Africa/Nairobi",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "Morocco Standard Time": "Africa/Casablanca",
    "Arabian Standard Time": "Asia/Dubai",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Kathmandu",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Taipei Standard Time": "Asia/Taipei",
    "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "Tasmania Standard Time": "Australia/Hobart",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Eastern Standard Time": "America/New_York",
    "SA Pacific Standard Time": "America/Bogota",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
}
_WINDOWS_BY_LOWER = {name.lower(): iana for name, iana in WINDOWS_TO_IANA.items()}


def zone(name: str | None) -> tzinfo | None:
    """The zone a Windows or IANA name denotes, or None when Graph would not know it."""
    if not name:
        return None
    iana = _WINDOWS_BY_LOWER.get(name.strip().lower())
    if iana == "UTC":
        return UTC
    try:
        return ZoneInfo(iana or name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


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
    tz = zone(tz_name) if tz_name else None
    local = instant.astimezone(tz or UTC)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}0"
    return {"dateTime": text, "timeZone": tz_name if tz is not None and tz_name else "UTC"}


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
