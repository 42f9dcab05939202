"""The slot engine's arithmetic: time-cell bitsets, the local start grid, working intervals and the
checks on its inputs. Pure functions; no I/O."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from shared.models import FreeBusyStatus, Schedule, WorkingHours

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ONE_DAY = timedelta(days=1)
_ALWAYS_BLOCKING = frozenset({FreeBusyStatus.BUSY, FreeBusyStatus.OOF})


# ---- bit helpers ----------------------------------------------------------------------------------
def runs(mask: int, length: int) -> int:
    """Bit j is set when bits j .. j+length-1 of ``mask`` are all set (log-step AND of shifts)."""
    result = -1
    offset, cur, step = 0, mask, 1
    while length:
        if length & 1:
            result &= cur >> offset
            offset += step
        length >>= 1
        if length:
            cur &= cur >> step
            step <<= 1
    return result


def at_least(masks: Sequence[int], need: int, full: int) -> int:
    """Bit j is set when at least ``need`` of ``masks`` have bit j set (bit-sliced counting)."""
    if need <= 0:
        return full
    if need > len(masks):
        return 0
    if need == 1:
        out = 0
        for m in masks:
            out |= m
        return out
    if need == len(masks):
        out = full
        for m in masks:
            out &= m
        return out
    planes: list[int] = []  # planes[i]: bit i of each position's count
    for m in masks:
        carry = m
        for i, plane in enumerate(planes):
            planes[i] = plane ^ carry
            carry &= plane
            if not carry:
                break
        if carry:
            planes.append(carry)
    greater, equal = 0, full
    for i in range(max(len(planes), need.bit_length()) - 1, -1, -1):
        plane = planes[i] if i < len(planes) else 0
        if need >> i & 1:
            equal &= plane
        else:
            greater |= equal & plane
            equal &= ~plane
    return greater | equal


def bit_positions(mask: int) -> list[int]:
    """Indexes of the set bits, lowest first."""
    out: list[int] = []
    text = bin(mask)[:1:-1]  # lowest bit first
    i = text.find("1")
    while i >= 0:
        out.append(i)
        i = text.find("1", i + 1)
    return out


def first_bits(mask: int, count: int | None) -> int:
    """``mask`` with only its ``count`` lowest set bits kept (None: all of them)."""
    if count is None or mask.bit_count() <= count:
        return mask
    text = bin(mask)[:1:-1]  # lowest bit first
    i = -1
    for _ in range(count):
        i = text.find("1", i + 1)
    return mask & ((1 << (i + 1)) - 1)


def mask_of(indexes: Iterable[int]) -> int:
    """The mask with the bits at ``indexes`` set."""
    out = 0
    for i in indexes:
        out |= 1 << i
    return out


# ---- time -----------------------------------------------------------------------------------------
def whole_seconds(delta: timedelta, what: str) -> int:
    """``delta`` in seconds. Raises ValueError (naming ``what``) when it is not whole seconds."""
    if delta % timedelta(seconds=1):
        raise ValueError(f"{what} must be whole seconds")
    return delta // timedelta(seconds=1)


def aware(value: datetime, what: str) -> datetime:
    """``value`` itself. Raises ValueError (naming ``what``) when it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value


def iso_week(day: date) -> tuple[int, int]:
    """(ISO year, ISO week) of ``day``."""
    year, week, _ = day.isocalendar()
    return year, week


def local_instant(day: date, at: time, zone: tzinfo) -> float:
    """The instant of the local wall-clock ``day at`` in ``zone`` (PEP 495 fold=0)."""
    return datetime.combine(day, at, zone).timestamp()


def regular_day(day: date, zone: tzinfo) -> bool:
    """True when ``zone`` keeps one offset all through the local ``day`` (no change that day)."""
    first = datetime.combine(day, time(0), zone)
    last = datetime.combine(day, time(23, 59, 59), zone)
    offsets = {
        first.utcoffset(),
        first.replace(fold=1).utcoffset(),
        last.utcoffset(),
        last.replace(fold=1).utcoffset(),
    }
    return len(offsets) == 1


def grid_starts(lo: float, hi: float, interval_minutes: int, zone: tzinfo) -> list[int]:
    """Slot starts (UTC seconds) in ``[lo, hi]``: local ``h:mm`` in ``zone`` with minutes since local
    midnight a multiple of ``interval_minutes``; skipped local times left out, repeated ones twice."""
    out: list[int] = []
    day = datetime.fromtimestamp(lo, zone).date() - ONE_DAY
    last = datetime.fromtimestamp(hi, zone).date() + ONE_DAY
    step = interval_minutes * 60
    minutes = range(0, 1440, interval_minutes)
    irregular = False
    while day <= last:
        if regular_day(day, zone):
            midnight = int(local_instant(day, time(0), zone))
            out.extend(range(midnight, midnight + 86400, step))
        else:
            irregular = True
            for m in minutes:
                wall = datetime.combine(day, time(m // 60, m % 60))
                for fold in (0, 1):
                    instant = int(wall.replace(tzinfo=zone, fold=fold).timestamp())
                    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
                        out.append(instant)
        day += ONE_DAY
    if irregular:
        out = sorted(set(out))
    return out[bisect_left(out, math.ceil(lo)) : bisect_right(out, math.floor(hi))]


def person_zone(schedule: Schedule) -> tzinfo:
    """The zone a person's days and weeks are counted in: their working hours' zone, else UTC."""
    return schedule.working_hours.time_zone if schedule.working_hours else UTC


def person_zone_name(schedule: Schedule) -> str:
    """The name of :func:`person_zone` as the working hours give it (IANA, or a custom zone's)."""
    return schedule.working_hours.time_zone_name if schedule.working_hours else "UTC"


def working_intervals(hours: WorkingHours, lo: float, hi: float) -> list[tuple[float, float]]:
    """The person's working time overlapping ``[lo, hi)`` as merged UTC-second intervals."""
    zone = hours.time_zone
    days = set(hours.days)
    day = datetime.fromtimestamp(lo, zone).date() - ONE_DAY
    last = datetime.fromtimestamp(hi, zone).date() + ONE_DAY
    overnight = hours.end <= hours.start
    spans: list[tuple[float, float]] = []
    while day <= last:
        if DAY_NAMES[day.weekday()] in days:
            a = local_instant(day, hours.start, zone)
            b = local_instant(day + ONE_DAY if overnight else day, hours.end, zone)
            if b > a and b > lo and a < hi:
                if spans and a <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], max(spans[-1][1], b))
                else:
                    spans.append((a, b))
        day += ONE_DAY
    return spans


def blocking_statuses(rules_tentative_is_busy: bool) -> frozenset[FreeBusyStatus]:
    if rules_tentative_is_busy:
        return _ALWAYS_BLOCKING | {FreeBusyStatus.TENTATIVE}
    return _ALWAYS_BLOCKING
