"""Time zones as Microsoft names them: IANA names, Windows names (through CLDR's windowsZones as
``tzlocal`` ships it) and Outlook's custom time zones (a bias plus yearly transition rules).

Every function here is pure; unknown names raise ``UnknownTimeZone`` (a ``ValueError``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

    def local_moment(self, year: int) -> datetime:
        """The naive local wall-clock moment of this transition in ``year``."""
        first = datetime(year, self.month, 1)
        wanted = WEEKDAYS.index(self.weekday)
        day = first + timedelta(days=(wanted - first.weekday()) % 7 + 7 * (self.occurrence - 1))
        if self.occurrence == LAST:
            while day.month != self.month:  # a fifth occurrence that does not exist: the last one
                day -= timedelta(days=7)
        return datetime.combine(day.date(), self.at)


class CustomTimeZone(tzinfo):
    """An Outlook custom time zone. ``bias`` follows Windows: minutes ADDED to local time give UTC
    (so UTC+10 has bias -600); daylight time adds ``daylight_bias`` (usually -60) to it. Both rules
    or neither: without rules the offset is fixed. Rules repeat every year."""

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
        self._has_dst = standard is not None and self.std_offset != self.dst_offset

    # ---- rules in UTC ------------------------------------------------------------------------
    def _transitions(self, year: int) -> tuple[tuple[datetime, bool], ...]:
        """The year's transitions as (naive UTC instant, daylight after it), in time order."""
        return _transitions(self, year)

    def _is_daylight_at_utc(self, utc: datetime) -> bool:
        """Whether daylight time is in force at the naive UTC instant ``utc``."""
        if not self._has_dst:
            return False
        moments = [
            t for year in range(max(utc.year - 1, 1), min(utc.year + 1, 9998) + 1) for t in self._transitions(year)
        ]
        state = not moments[0][1]  # before the first known transition: the opposite of what it starts
        for moment, daylight in moments:
            if moment > utc:
                break
            state = daylight
        return state

    def _offset_of_wall(self, dt: datetime) -> timedelta:
        if not self._has_dst:
            return self.std_offset
        wall = dt.replace(tzinfo=None, fold=0)
        std_ok = not self._is_daylight_at_utc(wall - self.std_offset)
        dst_ok = self._is_daylight_at_utc(wall - self.dst_offset)
        if std_ok != dst_ok:
            return self.std_offset if std_ok else self.dst_offset
        low, high = sorted((self.std_offset, self.dst_offset))
        if std_ok:  # both readings valid: a repeated hour; fold 0 is the earlier instant (larger offset)
            return low if dt.fold else high
        # neither reading valid: a skipped hour; PEP 495 reads fold 0 with the offset before the jump
        return high if dt.fold else low

    # ---- tzinfo --------------------------------------------------------------------------------
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self.std_offset if dt is None else self._offset_of_wall(dt)

    def dst(self, dt: datetime | None) -> timedelta:
        if dt is None or not self._has_dst:
            return timedelta(0)
        offset = self._offset_of_wall(dt)
        return offset - self.std_offset if offset == self.dst_offset else timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return self.name

    def fromutc(self, dt: datetime) -> datetime:
        if dt.tzinfo is not self:
            raise ValueError("fromutc: dt.tzinfo is not self")
        utc = dt.replace(tzinfo=None)
        daylight = self._is_daylight_at_utc(utc)
        offset = self.dst_offset if daylight else self.std_offset
        local = utc + offset
        other = self.std_offset if daylight else self.dst_offset
        fold = 0
        if self._has_dst and self._is_daylight_at_utc(local - other) != daylight and local - other < utc:
            fold = 1  # the same wall time was already shown once, under the other offset
        return local.replace(tzinfo=self, fold=fold)

    def __repr__(self) -> str:
        return f"CustomTimeZone({self.name!r}, std={self.std_offset}, dst={self.dst_offset})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CustomTimeZone):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.std_offset, self.dst_offset, self.standard, self.daylight)


@lru_cache(maxsize=256)
def _transitions(zone: CustomTimeZone, year: int) -> tuple[tuple[datetime, bool], ...]:
    if zone.standard is None or zone.daylight is None:
        return ()  # a fixed offset: no transitions
    # The daylight rule's time is read on the standard clock, the standard rule's on the daylight clock.
    to_daylight = zone.daylight.local_moment(year) - zone.std_offset
    to_standard = zone.standard.local_moment(year) - zone.dst_offset
    return tuple(sorted(((to_daylight, True), (to_standard, False))))


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
