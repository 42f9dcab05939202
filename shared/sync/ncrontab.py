"""NCRONTAB schedules as the Functions timer trigger reads them.

Six fields, seconds first: ``{second} {minute} {hour} {day} {month} {day-of-week}``.
Each field is ``*``, a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``
(from a to the field's maximum), or a comma list of those. Months and days of the
week may be written by name (any case-insensitive prefix of the English name, first
match wins: ``Jan``, ``Mon``, ``Monday``); day of week runs 0-6 with 0 = Sunday. As
in the NCrontab library, day-of-month and day-of-week must BOTH match (not either,
as in Unix cron). The five-field Unix form is refused rather than guessed at.
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTH_NAMES = tuple(calendar.month_name[1:])
_DAY_NAMES = (
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
)
# Long enough for every day-of-month/day-of-week/leap-year combination to recur.
_SEARCH_YEARS = 28 + 1


class NCrontabError(ValueError):
    """The expression is not a valid six-field NCRONTAB schedule."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    def parse(self, text: str) -> tuple[int, ...]:
        if text == "":
            raise NCrontabError(f"The {self.name} field is empty.")
        values: set[int] = set()
        for item in text.split(","):
            values.update(self._parse_item(item))
        return tuple(sorted(values))

    def _parse_item(self, item: str) -> range:
        if item == "":
            raise NCrontabError(f"The {self.name} field has an empty list item.")
        step = 1
        base = item
        if "/" in item:
            base, step_text = item.split("/", 1)
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise NCrontabError(f"'{item}': the step in the {self.name} field must be a positive number.")
            step = int(step_text)
        if base == "*":
            return range(self.low, self.high + 1, step)
        if "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = self._value(first_text), self._value(last_text)
            if first > last:
                raise NCrontabError(f"'{item}': the range in the {self.name} field runs backwards.")
            return range(first, last + 1, step)
        first = self._value(base)
        if "/" in item:
            # "a/n" means from a to the end of the field, every n (NCrontab and Vixie cron agree).
            return range(first, self.high + 1, step)
        return range(first, first + 1)

    def _value(self, text: str) -> int:
        if text.isascii() and text.isdigit():
            value = int(text)
        else:
            lowered = text.lower()
            matches = [i for i, n in enumerate(self.names) if lowered and n.lower().startswith(lowered)]
            if not matches:
                allowed = f"a number {self.low}-{self.high}" + (
                    f" or a name ({', '.join(self.names)})" if self.names else ""
                )
                raise NCrontabError(f"'{text}' is not valid in the {self.name} field: use {allowed}.")
            value = matches[0] + self.low
        if not self.low <= value <= self.high:
            raise NCrontabError(f"{value} is outside the {self.name} field's range {self.low}-{self.high}.")
        return value


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day-of-week", 0, 6, _DAY_NAMES),
)


@dataclass(frozen=True)
class NCrontab:
    """A parsed schedule; ``next_after`` gives the next occurrence in the datetime's own zone."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]

    @classmethod
    def parse(cls, expression: str) -> NCrontab:
        """Parse a six-field expression; raises NCrontabError naming what is wrong."""
        fields = expression.split()
        if len(fields) == 5:
            raise NCrontabError(
                f"'{expression}' has five fields; the timer trigger needs six, seconds first "
                f"(for example '0 {expression}')."
            )
        if len(fields) != 6:
            raise NCrontabError(
                f"'{expression}' has {len(fields)} fields; NCRONTAB needs six: "
                "{second} {minute} {hour} {day} {month} {day-of-week}."
            )
        parsed = [spec.parse(text) for spec, text in zip(_FIELDS, fields, strict=True)]
        schedule = cls(expression.strip(), *parsed)
        if schedule.next_after(datetime(2000, 1, 1)) is None:
            raise NCrontabError(f"'{expression}' never occurs.")
        return schedule

    def _day_matches(self, moment: datetime) -> bool:
        # Python: Monday=0; NCRONTAB: Sunday=0.
        return moment.day in self.days and (moment.weekday() + 1) % 7 in self.days_of_week

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after ``moment`` (None only for a schedule that never occurs)."""
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit_year = candidate.year + _SEARCH_YEARS
        while candidate.year <= limit_year:
            if candidate.month not in self.months:
                index = bisect.bisect_left(self.months, candidate.month)
                if index == len(self.months):
                    candidate = candidate.replace(
                        year=candidate.year + 1,
                        month=self.months[0],
                        day=1,
                        hour=0,
                        minute=0,
                        second=0,
                    )
                else:
                    candidate = candidate.replace(month=self.months[index], day=1, hour=0, minute=0, second=0)
                continue
            if not self._day_matches(candidate):
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if candidate.hour not in self.hours:
                index = bisect.bisect_left(self.hours, candidate.hour)
                if index == len(self.hours):
                    candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                else:
                    candidate = candidate.replace(hour=self.hours[index], minute=0, second=0)
                continue
            if candidate.minute not in self.minutes:
                index = bisect.bisect_left(self.minutes, candidate.minute)
                if index == len(self.minutes):
                    candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
                else:
                    candidate = candidate.replace(minute=self.minutes[index], second=0)
                continue
            if candidate.second not in self.seconds:
                index = bisect.bisect_left(self.seconds, candidate.second)
                if index == len(self.seconds):
                    candidate = candidate.replace(second=0) + timedelta(minutes=1)
                else:
                    candidate = candidate.replace(second=self.seconds[index])
                continue
            return candidate
        return None
