"""Time zones as Microsoft names them: IANA names, Windows names (through CLDR's windowsZones as
``tzlocal`` ships it) and Outlook's custom time zones (a bias plus yearly transition rules).

Every function here is pure; unknown names raise ``UnknownTimeZone`` (a ``ValueError``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE, relativedelta
from dateutil.tz import tzrange
from tzlocal.windows_tz import tz_win, win_tz

# An IANA key: path segments of letters, digits, "_", "+" and "-" ("America/Argentina/Buenos_Aires",
# "Etc/GMT+5"). Checked before zoneinfo sees the name, which would otherwise read any relative path.
IANA_NAME = re.compile(r"[A-Za-z0-9_+\-]{1,64}(?:/[A-Za-z0-9_+\-]{1,64}){0,3}")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_BIAS_MINUTES = 18 * 60  # no civil zone is further than UTC+14 / UTC-12; a little slack for custom zones
LAST = 5  # dayOccurrence 5 means the last such weekday of the month, as in Windows' SYSTEMTIME rules
_WINDOWS_BY_LOWER = {name.lower(): iana for name, iana in win_tz.items()}


class UnknownTimeZone(ValueError):
    """A time zone name that is neither a Windows name CLDR maps nor an IANA name tzdata knows."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown time zone {name[:80]!r}: expected an IANA or a Windows time zone name.")
        self.name = name


def resolve_time_zone(name: str) -> tzinfo:
    """The zone for an IANA name (``America/New_York``) or a Windows name (``Eastern Standard Time``,
    matched case-insensitively). Names are taken as given: no surrounding blanks. Raises UnknownTimeZone."""
    return _resolve(name)


@lru_cache(maxsize=512)
def _resolve(name: str) -> ZoneInfo:
    iana = _WINDOWS_BY_LOWER.get(name.lower())
    if iana is None:
        if not IANA_NAME.fullmatch(name):
            raise UnknownTimeZone(name)
        iana = name
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as "America"
        raise UnknownTimeZone(name) from None


def time_zone_key(zone: tzinfo) -> str:
    """The name to show for a zone: the IANA key of a ZoneInfo, a custom zone's own name."""
    if isinstance(zone, ZoneInfo):
        return zone.key
    if isinstance(zone, CustomTimeZone):
        return zone.name
    return str(zone)


def windows_name_of(iana: str) -> str | None:
    """The Windows name CLDR gives an IANA zone (``Europe/Paris`` -> ``Romance Standard Time``), or None."""
    return tz_win.get(iana)


# ---- custom time zones ----------------------------------------------------------------------------
_DAY = timedelta(days=1)
_WEEKDAY_OF = dict(zip(WEEKDAYS, (MO, TU, WE, TH, FR, SA, SU), strict=True))


@dataclass(frozen=True)
class TransitionRule:
    """When a custom zone changes offset: at ``at`` local wall-clock time (the clock in force before
    the change) on the ``occurrence``-th ``weekday`` of ``month`` (occurrence 5: the last one)."""

    month: int
    occurrence: int
    weekday: str
    at: time

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"Transition month must be 1..12, got {self.month}.")
        if not 1 <= self.occurrence <= LAST:
            raise ValueError(f"Transition dayOccurrence must be 1..5, got {self.occurrence}.")
        if self.weekday not in WEEKDAYS:
            raise ValueError(f"Transition dayOfWeek must be an English day name, got {self.weekday!r}.")

    def from_new_year(self, clock_behind: timedelta = timedelta(0)) -> relativedelta:
        """This change as a ``relativedelta`` from 1 January (the form ``tzrange`` takes), read on a clock
        ``clock_behind`` behind the rule's own. relativedelta finds the weekday after adding the time, so a
        moment that moves to the day before or after the rule's day is found from that day's weekday: the
        day before the first Sunday is the first Saturday on or after the previous month's last day."""
        at = timedelta(hours=self.at.hour, minutes=self.at.minute, seconds=self.at.second)
        at += timedelta(microseconds=self.at.microsecond) - clock_behind
        days = at // _DAY  # -1, 0 or 1
        weekday = _WEEKDAY_OF[WEEKDAYS[(WEEKDAYS.index(self.weekday) + days) % 7]]
        day, nth = (31, weekday(-1)) if self.occurrence == LAST else (1, weekday(+self.occurrence))
        return relativedelta(
            month=self.month,
            day=day,
            weekday=nth,
            hour=0,
            minute=0,
            second=0,
            microsecond=0,
            days=days,
            microseconds=(at - days * _DAY) // timedelta(microseconds=1),
        )


class CustomTimeZone(tzrange):  # type: ignore[misc]  # dateutil ships no type information
    """An Outlook custom time zone: dateutil's ``tzrange`` over the zone's two yearly rules. ``bias``
    follows Windows: minutes ADDED to local time give UTC (so UTC+10 has bias -600); daylight time adds
    ``daylight_bias`` (usually -60) to it. Both rules or neither: without rules the offset is fixed.

    tzrange knows only clocks that go forward for part of the year; a zone whose daylight time moves them
    back (a positive daylight bias, as Ireland's winter time reads in tzdata) is given to it the other way
    round, and ``dst()`` still answers from the zone's own standard offset. Two readings differ from
    tzrange's own, each shown by a test in tests/unit/test_timezones.py: a wall time inside a skipped hour
    reads with the offset before the jump when ``fold`` is 0 (PEP 495, as zoneinfo does; tzrange reads the
    later offset for both folds), and an instant is placed by the rules of its local year (tzrange takes
    the UTC instant's year, wrong within the offset of New Year)."""

    def __init__(
        self,
        name: str,
        bias_minutes: int,
        *,
        standard: TransitionRule | None = None,
        daylight: TransitionRule | None = None,
        daylight_bias_minutes: int = 0,
    ) -> None:
        if abs(bias_minutes) > MAX_BIAS_MINUTES or abs(bias_minutes + daylight_bias_minutes) > MAX_BIAS_MINUTES:
            raise ValueError(f"Custom time zone bias out of range: {bias_minutes} / {daylight_bias_minutes}.")
        if (standard is None) != (daylight is None):
            raise ValueError("A custom time zone needs both a standard and a daylight transition, or neither.")
        self.name = name
        self.std_offset = timedelta(minutes=-bias_minutes)
        self.dst_offset = timedelta(minutes=-(bias_minutes + daylight_bias_minutes))
        self.standard = standard
        self.daylight = daylight
        if standard is None or daylight is None or self.std_offset == self.dst_offset:
            super().__init__(name, self.std_offset)  # a fixed offset
            return
        # tzrange's "standard" is the lower offset, its "daylight" the higher; it reads both changes on the
        # lower clock, while each rule is written on the clock in force before its change.
        (low, to_low), (high, to_high) = sorted(((self.std_offset, standard), (self.dst_offset, daylight)))
        super().__init__(
            name, low, name, high, start=to_high.from_new_year(), end=to_low.from_new_year(clock_behind=high - low)
        )

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self.std_offset if dt is None else cast(timedelta, super().utcoffset(dt))

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0) if dt is None else self.utcoffset(dt) - self.std_offset

    def _isdst(self, dt: datetime | None) -> bool | None:
        higher: bool | None = super()._isdst(dt)
        if higher and dt is not None:
            jump, _ = self.transitions(dt.year)
            if jump <= dt.replace(tzinfo=None) < jump + (self._dst_offset - self._std_offset):
                return bool(dt.fold)  # a skipped wall time: fold 0 reads the offset before the jump
        return higher

    def fromutc(self, dt: datetime) -> datetime:
        if not isinstance(dt, datetime) or dt.tzinfo is not self:
            raise ValueError("fromutc: dt.tzinfo is not self")
        if not self.hasdst:
            return dt + self.std_offset
        utc = dt.replace(tzinfo=None)
        low: timedelta = self._std_offset
        high: timedelta = self._dst_offset
        jump, back = self.transitions((utc + low).year)  # the local year's rules
        higher = bool(self._naive_isdst(utc, (jump - low, back - low)))
        wall = dt + (high if higher else low)
        return wall.replace(fold=int(not higher and self.is_ambiguous(wall)))

    def __repr__(self) -> str:
        return f"CustomTimeZone({self.name!r}, std={self.std_offset}, dst={self.dst_offset})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CustomTimeZone):
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.std_offset, self.dst_offset, self.standard, self.daylight)


def custom_time_zone(
    name: str,
    bias_minutes: int,
    *,
    standard: TransitionRule | None = None,
    daylight: TransitionRule | None = None,
    daylight_bias_minutes: int = 0,
) -> CustomTimeZone:
    """A tzinfo for an Outlook ``customTimeZone`` (Windows sign convention: UTC = local + bias).

    A zone whose rules are both absent, or whose daylight bias is zero, has a fixed offset.
    Raises ValueError for out-of-range values."""
    return CustomTimeZone(
        name or "Customized Time Zone",
        bias_minutes,
        standard=standard,
        daylight=daylight,
        daylight_bias_minutes=daylight_bias_minutes,
    )
