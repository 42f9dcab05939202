"""Reading getSchedule's answer: each scheduleInformation into a ``Schedule`` (busy blocks, working hours,
custom time zones), and the working hours the busy cache keeps, read by the same parser. Pure."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from datetime import time as clock_time
from typing import Any

import orjson

from shared.adapters.graph_requests import classify
from shared.errors import UpstreamUnavailable
from shared.models import BusyBlock, FreeBusyStatus, MailboxHours, Schedule, ScheduleStatus, WorkingHours
from shared.timezones import (
    WEEKDAYS,
    CustomTimeZone,
    TransitionRule,
    custom_time_zone,
    resolve_time_zone,
    time_zone_key,
)

logger = logging.getLogger(__name__)

# Per-schedule error items. Graph documents only that it "returns a single schedule item and indicates
# the error"; the codes below are those the local cloud answers ("5009": address not resolved) plus
# Exchange's own names for the same conditions. Messages are read only where no code is distinct.
UNKNOWN_ADDRESS_CODES = frozenset(
    {
        "5009",
        "ErrorMailRecipientNotFound",
        "ErrorInvalidSmtpAddress",
        "ErrorNonExistentMailbox",
        "ErrorInvalidRecipients",
    }
)
UNKNOWN_ADDRESS_MARKERS = ("unable to resolve", "not found in the directory", "could not be resolved")
THROTTLED_CODES = frozenset({"TooManyRequests", "ErrorServerBusy", "ApplicationThrottled"})
TIMEOUT_CODES = frozenset({"ErrorTimeoutExpired", "ErrorRequestTimeout"})
_STATUSES = {status.value: status for status in FreeBusyStatus}
TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d{1,7})?)?")


def unreadable_schedule(email: str, reason: str) -> Schedule:
    """A person Graph could not read, and why: never free."""
    return Schedule(email=email, status=ScheduleStatus.UNREADABLE, reason=reason)


def item_error_reason(error: dict[str, Any]) -> str:
    """The unreadable reason for a per-schedule error item (``{"message", "responseCode"}``)."""
    code = str(error.get("responseCode") or error.get("code") or "")
    message = str(error.get("message") or "").lower()
    if code in UNKNOWN_ADDRESS_CODES or any(marker in message for marker in UNKNOWN_ADDRESS_MARKERS):
        return "unknown"
    if code in THROTTLED_CODES:
        return "throttled"
    if code in TIMEOUT_CODES:
        return "timeout"
    reason = classify(0, code, str(error.get("message") or ""))
    if reason in {"on_premises"}:
        return reason
    if "access to odata is disabled" in message:
        return "access_policy"
    return "other"


def parse_schedule(email: str, raw: dict[str, Any]) -> Schedule:
    """One scheduleInformation. Anything it cannot read makes the person unreadable, never free."""
    error = raw.get("error")
    if isinstance(error, dict):
        return unreadable_schedule(email, item_error_reason(error))
    try:
        items = raw.get("scheduleItems") or []
        if not isinstance(items, list):
            raise ValueError("scheduleItems is not a list")
        busy = tuple(sorted((_busy_block(item) for item in items), key=lambda b: (b.start, b.end)))
        hours_raw = raw.get("workingHours")
        working_hours, zone_name = _working_hours(hours_raw) if isinstance(hours_raw, dict) else (None, None)
    except (ValueError, TypeError, KeyError) as err:  # UnknownTimeZone is a ValueError
        logger.warning("getSchedule answer for one person could not be read: %s", err)
        return unreadable_schedule(email, "other")
    return Schedule(email=email, mailbox_time_zone=zone_name, working_hours=working_hours, busy=busy)


class ScheduleReader:
    """``parse_schedule`` that gives the same ``Schedule`` object for the same answer: a person whose
    calendar has not changed since the worker last read them comes back from getSchedule as the same JSON
    (a recruiter asks about the same panel again and again), so the worker keeps what it parsed, keyed by
    the address as asked and the item's exact text. Everything derived from a schedule by identity (the
    slot engine's busy cells, the answer's busy list: ``shared.memo``) is then reused too. What the item
    says is all a schedule depends on, and each caller gets back only what its own answer said (an item
    with a subject the caller may see is a different text from one without). Bounded by what it holds,
    counted in busy blocks with a schedule itself (and its key, the item's text) as ``PER_SCHEDULE`` more:
    at most 100,000 (about 45 MB); 500 interviewers of 16 blocks each are about 13,000. Least recently
    used first out; thread-safe.

    A whole answer that comes back byte for byte as before (the same 20 people, none of them changed) is
    not parsed at all: ``read_answer`` knows it by its digest and gives the schedules read from it then
    (parsing a 20-person answer was a third of the worker's CPU per getSchedule call)."""

    PER_SCHEDULE = 10
    MAX_ANSWERS = 20_000  # digests and tuples of schedules the item cache holds anyway: about 3 MB

    def __init__(self, *, max_blocks: int = 100_000) -> None:
        from cachetools import LRUCache  # the adapter's own dependency, not the kernel's

        self._parsed: LRUCache[tuple[str, bytes], Schedule] = LRUCache(
            maxsize=max_blocks, getsizeof=lambda schedule: len(schedule.busy) + self.PER_SCHEDULE
        )
        self._answers: LRUCache[tuple[tuple[str, ...], bytes], tuple[Schedule, ...]] = LRUCache(
            maxsize=self.MAX_ANSWERS
        )
        self._lock = threading.Lock()

    def read_answer(self, chunk: Sequence[str], content: bytes) -> list[Schedule]:
        """One Schedule per address of ``chunk`` (the addresses asked, in order) from a getSchedule answer.
        Items are matched by scheduleId, else by position when the count matches; an address without
        its item is unreadable ("other"). Raises UpstreamUnavailable when the body is not a JSON object."""
        key = (tuple(chunk), hashlib.blake2b(content, digest_size=16).digest())
        with self._lock:
            known: tuple[Schedule, ...] | None = self._answers.get(key)
        if known is not None:
            return list(known)
        schedules = self.parse_answer(chunk, content)
        with self._lock:
            self._answers[key] = tuple(schedules)
        return schedules

    def parse_answer(self, chunk: Sequence[str], content: bytes) -> list[Schedule]:
        """``read_answer`` without knowing the answer again (each item still goes through ``read``)."""
        try:
            raw = orjson.loads(content) if content else {}
        except ValueError:  # orjson.JSONDecodeError is one
            raw = None
        if not isinstance(raw, dict):
            raise UpstreamUnavailable("Microsoft Graph answered getSchedule without a JSON object.")
        values = raw.get("value")
        items = [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []
        by_id = {str(item.get("scheduleId", "")).lower(): item for item in items}
        positional = len(items) == len(chunk)
        schedules: list[Schedule] = []
        for index, email in enumerate(chunk):
            item = by_id.get(email.lower()) or (items[index] if positional else None)
            schedules.append(self.read(email, item) if item is not None else unreadable_schedule(email, "other"))
        return schedules

    def read(self, email: str, raw: dict[str, Any]) -> Schedule:
        try:
            key = (email, orjson.dumps(raw))
        except TypeError:  # not JSON as Graph writes it: parsed as it is, never kept
            return parse_schedule(email, raw)
        with self._lock:
            found: Schedule | None = self._parsed.get(key)
        if found is None:
            found = parse_schedule(email, raw)
            with self._lock:
                if len(found.busy) + self.PER_SCHEDULE <= self._parsed.maxsize:
                    self._parsed[key] = found
        return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._parsed)


def _busy_block(item: Any) -> BusyBlock:
    # Run for every scheduleItem of every person (1,600 in a 100-person answer): kept to plain lookups.
    if not isinstance(item, dict):
        raise ValueError("a scheduleItem is not an object")
    start, end = _instant(item["start"]), _instant(item["end"])
    if end < start:
        raise ValueError("a scheduleItem ends before it starts")
    status = item.get("status")
    subject, location = item.get("subject"), item.get("location")
    return BusyBlock(
        start=start,
        end=end,
        status=_STATUSES.get(status, FreeBusyStatus.UNKNOWN) if isinstance(status, str) else FreeBusyStatus.UNKNOWN,
        subject=subject if isinstance(subject, str) and subject else None,
        location=location if isinstance(location, str) and location else None,
    )


def _instant(value: Any) -> datetime:
    """A dateTimeTimeZone as an aware UTC datetime (the zone is UTC when the Prefer header was honoured)."""
    if not isinstance(value, dict):
        raise ValueError("a dateTimeTimeZone is not an object")
    text, zone = value["dateTime"], value.get("timeZone") or "UTC"
    return _parse_instant(text if type(text) is str else str(text), zone if type(zone) is str else str(zone))


@functools.lru_cache(maxsize=8192)
def _parse_instant(text: str, zone_name: str) -> datetime:
    # Free/busy answers repeat the same instants (series, shared meetings, whole days): parse each once.
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=resolve_time_zone(zone_name))
    return moment.astimezone(UTC)


def _time_of_day(value: Any) -> clock_time:
    match = TIME_OF_DAY.fullmatch(str(value))
    if match is None:
        raise ValueError(f"not a time of day: {str(value)[:20]!r}")
    return clock_time(int(match[1]), int(match[2]), int(match[3] or 0))


def _working_hours(raw: dict[str, Any]) -> tuple[WorkingHours, str]:
    days = raw.get("daysOfWeek") or []
    if not isinstance(days, list) or any(str(day).lower() not in WEEKDAYS for day in days):
        raise ValueError("daysOfWeek holds something other than day names")
    zone_raw = raw.get("timeZone")
    if not isinstance(zone_raw, dict):
        raise ValueError("workingHours has no timeZone")
    zone_name = str(zone_raw.get("name") or "")
    zone: tzinfo
    if "bias" in zone_raw or str(zone_raw.get("@odata.type", "")).endswith("customTimeZone"):
        zone = _custom_zone(zone_raw)
    else:
        zone = resolve_time_zone(zone_name)
    hours = WorkingHours(
        days=tuple(str(day).lower() for day in days),
        start=_time_of_day(raw.get("startTime")),
        end=_time_of_day(raw.get("endTime")),
        time_zone=zone,
        time_zone_name=time_zone_key(zone),
    )
    return hours, zone_name or hours.time_zone_name


@functools.lru_cache(maxsize=4096)
def hours_from(source: str) -> MailboxHours:
    """Working hours from the compact ``workingHours`` JSON the cache keeps, read by the same parser as
    getSchedule's (what it cannot read there makes the person unreadable; here it raises ValueError)."""
    raw = json.loads(source) if source else {}
    if not isinstance(raw, dict):
        raise ValueError("kept working hours are not an object")
    if not raw:  # the mailbox has no working hours (getSchedule then carries none either)
        return MailboxHours(working_hours=None, time_zone=None, source=source)
    try:
        hours, zone_name = _working_hours(raw)
    except (KeyError, TypeError) as err:
        raise ValueError("kept working hours could not be read") from err
    return MailboxHours(working_hours=hours, time_zone=zone_name, source=source)


def _transition(raw: Any) -> TransitionRule | None:
    """A standardOffset/daylightOffset; month 0 (or absent) means the zone has no such change.

    ``year`` is documented only as how often the change happens, "0 means every year"; no other value
    is described, so every rule is applied yearly."""
    if not isinstance(raw, dict) or not raw.get("month"):
        return None
    return TransitionRule(
        month=int(raw["month"]),
        occurrence=int(raw["dayOccurrence"]),
        weekday=str(raw["dayOfWeek"]).lower(),
        at=_time_of_day(raw.get("time") or "00:00"),
    )


def _custom_zone(raw: dict[str, Any]) -> CustomTimeZone:
    # Windows' sign convention (UTC = local + bias), which the documentation's own example follows
    # ("bias 300, daylightBias -100": daylight time is "+300-100=200"); see shared/timezones.py.
    standard, daylight = _transition(raw.get("standardOffset")), _transition(raw.get("daylightOffset"))
    daylight_raw = raw.get("daylightOffset")
    daylight_bias = int(daylight_raw.get("daylightBias") or 0) if isinstance(daylight_raw, dict) else 0
    if standard is None or daylight is None:
        standard = daylight = None
    return custom_time_zone(
        str(raw.get("name") or ""),
        int(raw.get("bias") or 0),
        standard=standard,
        daylight=daylight,
        daylight_bias_minutes=daylight_bias,
    )
