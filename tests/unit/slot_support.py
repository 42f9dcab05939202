"""Small builders for the slot engine's example tests."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from shared.models import BusyBlock, FreeBusyStatus, Schedule, ScheduleStatus, WorkingHours
from shared.scheduling.slots import SlotRules, SlotSearch

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
MINUTES = timedelta(minutes=1)


def at(text: str, zone: tzinfo = UTC) -> datetime:
    """``2026-12-07 09:00`` in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def busy(start: str, end: str, status: FreeBusyStatus = FreeBusyStatus.BUSY, zone: tzinfo = UTC) -> BusyBlock:
    return BusyBlock(at(start, zone).astimezone(UTC), at(end, zone).astimezone(UTC), status)


def hours(zone: str, start: str = "09:00", end: str = "17:00", days: tuple[str, ...] = WEEKDAYS) -> WorkingHours:
    return WorkingHours(days, time.fromisoformat(start), time.fromisoformat(end), ZoneInfo(zone), zone)


def schedule(
    email: str, *blocks: BusyBlock, working: WorkingHours | None = None, unreadable: str | None = None
) -> Schedule:
    if unreadable:
        return Schedule(email, ScheduleStatus.UNREADABLE, reason=unreadable)
    return Schedule(email, working_hours=working, busy=blocks)


def rules(minutes: int = 60, interval: int = 60, zone: tzinfo = UTC, **options: object) -> SlotRules:
    return SlotRules(duration=minutes * MINUTES, interval=interval * MINUTES, time_zone=zone, **options)  # type: ignore[arg-type]


def starts(search: SlotSearch) -> list[str]:
    """Slot starts as local ISO strings with their offsets."""
    return [s.start.isoformat() for s in search.slots]


def clock(search: SlotSearch) -> list[str]:
    """Slot starts as local HH:MM."""
    return [s.start.strftime("%H:%M") for s in search.slots]
