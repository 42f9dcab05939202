"""Booking requests: the JSON contract of the booking endpoints parsed into typed, validated values.

The body's shape (types, required and unknown fields, list sizes) was checked against openapi.yaml by the
handler (``functions/_contract.py``); what is checked here is what a schema cannot say. Every refusal is an
``InvalidRequest`` naming the offending field (``field``); nothing here touches storage or Graph. The
fingerprint of a create request is a hash of its parsed values, so the same request sent twice (whatever its
key order or spacing) has the same fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import InvalidRequest
from shared.fields import bad_field, boolean, email_address, moment
from shared.text import clean_text

MAX_DURATION = timedelta(hours=8)
MAX_BODY_BYTES = 64 * 1024
MAX_LIST_RANGE = timedelta(days=366)
DEFAULT_LIST_RANGE = timedelta(days=30)  # GET /api/bookings without `to`: the next 30 days
PAGE_SIZE = 50
INTERVIEWS = "interviews"
# Idempotency keys: what clients generate (UUIDs, ULIDs, random tokens); used as Graph's transactionId.
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")
_CALENDAR_ID = re.compile(r"[A-Za-z0-9=_+/-]{1,512}")
_BOOKING_ID = re.compile(r"[a-z0-9]{26}")
_LIST_CURSOR = re.compile(r"[0-9]{8}T[0-9]{6}Z~[a-z0-9]{26}")  # where a page of the list ended
_ETAG = re.compile(r'(?:W/)?"[^"\s]{1,200}"|[^"\s,]{1,200}')


@dataclass(frozen=True)
class Candidate:
    email: str
    name: str | None = None


@dataclass(frozen=True)
class BookingRequest:
    start: datetime
    end: datetime
    interviewers: tuple[str, ...]
    optional_interviewers: tuple[str, ...]
    candidate: Candidate | None
    subject: str
    body: str
    online_meeting: bool
    location: str | None
    calendar: str  # "interviews" or an interviewer's address
    calendar_id: str | None
    check_availability: bool
    notify_candidate: bool = False  # email the candidate (shared/email): the confirmation now, then the rest

    def fingerprint(self) -> str:
        canonical = {
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat(),
            "interviewers": list(self.interviewers),
            "optional_interviewers": list(self.optional_interviewers),
            "candidate": None if self.candidate is None else [self.candidate.email, self.candidate.name],
            "subject": self.subject,
            "body": self.body,
            "online_meeting": self.online_meeting,
            "location": self.location,
            "calendar": self.calendar,
            "calendar_id": self.calendar_id,
            "check_availability": self.check_availability,
            # Only when set, so the fingerprints of requests without it are those they always had.
            **({"notify_candidate": True} if self.notify_candidate else {}),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class BookingChange:
    """A PATCH: only the fields sent are set."""

    start: datetime | None = None
    end: datetime | None = None
    interviewers: tuple[str, ...] | None = None
    optional_interviewers: tuple[str, ...] | None = None
    subject: str | None = None
    body: str | None = None
    location: str | None = None
    clear_location: bool = False
    check_availability: bool = True


@dataclass(frozen=True)
class BookingQuery:
    start: datetime
    end: datetime
    interviewer: str | None
    after: str | None


def _addresses(value: list[Any] | None, field: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for i, item in enumerate(value or ()):
        found.setdefault(email_address(item, f"{field}[{i}]"), None)
    return tuple(found)


def _body_text(value: str | None) -> str:
    if value is not None and len(value.encode("utf-8")) > MAX_BODY_BYTES:
        raise bad_field("body", f"`body` is longer than {MAX_BODY_BYTES // 1024} KiB.")
    return _text(value, "body", max_length=MAX_BODY_BYTES, multiline=True) or ""


def _text(value: Any, field: str, *, max_length: int, multiline: bool = False) -> str | None:
    try:
        return clean_text(value, parameter=field, max_length=max_length, multiline=multiline)
    except InvalidRequest as err:
        raise bad_field(field, err.message) from None


def whole_seconds(moment: datetime) -> datetime:
    """A booking's time as the calendar keeps it. The service writes an event's dateTime to the second
    (``shared/adapters/graph_events.py``); Graph answers with 7 fractional digits, but Microsoft's docs say
    nothing about what Exchange keeps below a second (events read back show zeros there). So booking times
    are cut to whole seconds on input (never rounded up: the adapter always cut them) and compared at that
    precision, and what the booking says is exactly what the calendar holds."""
    return moment.replace(microsecond=0)


def _time(value: Any, field: str) -> datetime:
    return whole_seconds(moment(value, field))


def _window(start: datetime, end: datetime, now: datetime) -> None:
    if end <= start:
        raise bad_field("end", "`end` must be after `start`.")
    if end - start > MAX_DURATION:
        raise bad_field("end", "An interview lasts at most 8 hours.")
    if start < now:
        raise bad_field("start", "`start` is in the past.")


def parse_booking_request(body: Mapping[str, Any], *, now: datetime) -> BookingRequest:
    """Raises InvalidRequest naming the field."""
    start, end = _time(body["start"], "start"), _time(body["end"], "end")
    _window(start, end, now)
    interviewers = _addresses(body.get("interviewers"), "interviewers")
    optional = tuple(a for a in _addresses(body.get("optional_interviewers"), "optional_interviewers"))
    overlap = set(interviewers) & set(optional)
    if overlap:
        raise bad_field("optional_interviewers", f"{sorted(overlap)[0]} is named as required and optional.")
    candidate: Candidate | None = None
    raw_candidate = body.get("candidate")
    if raw_candidate is not None:
        candidate = Candidate(
            email=email_address(raw_candidate["email"], "candidate.email"),
            name=_text(raw_candidate.get("name"), "candidate.name", max_length=256),
        )
    if not interviewers and not optional and candidate is None:
        raise bad_field("interviewers", "Name at least one attendee: an interviewer or the candidate.")
    if not interviewers and not optional:
        raise bad_field("interviewers", "Name at least one interviewer.")
    calendar_raw = body.get("calendar", INTERVIEWS)
    calendar = INTERVIEWS if calendar_raw in (None, INTERVIEWS) else email_address(calendar_raw, "calendar")
    calendar_id = body.get("calendar_id")
    if calendar_id is not None:
        if calendar == INTERVIEWS:
            raise bad_field("calendar_id", "`calendar_id` applies only when `calendar` is an interviewer's address.")
        if not _CALENDAR_ID.fullmatch(calendar_id):
            raise bad_field("calendar_id", "`calendar_id` must be a Graph calendar id.")
    if calendar != INTERVIEWS and calendar not in interviewers + optional:
        raise bad_field("calendar", '`calendar` must be "interviews" or the address of one of the interviewers.')
    notify = boolean(body, "notify_candidate", False)
    if notify and candidate is None:
        raise bad_field("notify_candidate", "`notify_candidate` needs a `candidate` to email.")
    return BookingRequest(
        start=start,
        end=end,
        interviewers=interviewers,
        optional_interviewers=optional,
        candidate=candidate,
        subject=_text(body.get("subject"), "subject", max_length=255) or "Interview",
        body=_body_text(body.get("body")),
        online_meeting=boolean(body, "online_meeting", True),
        location=_text(body.get("location"), "location", max_length=255),
        calendar=calendar,
        calendar_id=calendar_id,
        check_availability=boolean(body, "check_availability", True),
        notify_candidate=notify,
    )


def parse_booking_change(
    body: Mapping[str, Any], *, now: datetime, current: tuple[datetime, datetime]
) -> BookingChange:
    """Raises InvalidRequest naming the field. ``current`` is the booking's slot (for a one-sided move)."""
    if not set(body) - {"check_availability"}:
        raise bad_field("body", "Send at least one field to change.")
    start = _time(body["start"], "start") if "start" in body else None
    end = _time(body["end"], "end") if "end" in body else None
    if start is not None or end is not None:
        _window(start or current[0], end or current[1], now)
    interviewers = _addresses(body["interviewers"], "interviewers") if "interviewers" in body else None
    optional = (
        _addresses(body["optional_interviewers"], "optional_interviewers") if "optional_interviewers" in body else None
    )
    if interviewers is not None and not interviewers and not optional:
        raise bad_field("interviewers", "Name at least one interviewer.")
    subject = None
    if "subject" in body:
        subject = _text(body["subject"], "subject", max_length=255)
        if subject is None:
            raise bad_field("subject", "`subject` cannot be empty.")
    return BookingChange(
        start=start,
        end=end,
        interviewers=interviewers,
        optional_interviewers=optional,
        subject=subject,
        body=_body_text(body["body"]) if "body" in body else None,
        location=_text(body.get("location"), "location", max_length=255),
        clear_location="location" in body and body["location"] is None,
        check_availability=boolean(body, "check_availability", True),
    )


def idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise bad_field("Idempotency-Key", "The Idempotency-Key header is required (a unique value per booking).")
    if not _IDEMPOTENCY_KEY.fullmatch(value.strip()):
        raise bad_field("Idempotency-Key", "Idempotency-Key must be 8-128 letters, digits, '.', '_', ':' or '-'.")
    return value.strip()


def booking_id(value: str) -> str:
    if not _BOOKING_ID.fullmatch(value):
        raise bad_field("booking_id", "Malformed booking id.")
    return value


def if_match(value: str | None) -> str | None:
    """The ETag an If-Match header names (quotes and a weak prefix removed), or None when absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not _ETAG.fullmatch(text):
        raise bad_field("If-Match", "If-Match must carry the booking's ETag.")
    return text.removeprefix("W/").strip('"')


def parse_booking_query(params: Mapping[str, str], now: datetime) -> BookingQuery:
    """``from`` defaults to ``now`` and ``to`` to ``DEFAULT_LIST_RANGE`` after ``from``: left out, the list
    is the interviews of the next 30 days."""
    start = moment(params["from"], "from") if params.get("from") is not None else now
    end = moment(params["to"], "to") if params.get("to") is not None else start + DEFAULT_LIST_RANGE
    if end <= start:
        raise bad_field("to", "`to` must be after `from`.")
    if end - start > MAX_LIST_RANGE:
        raise bad_field("to", "List at most a year of bookings at a time.")
    interviewer = params.get("interviewer")
    token = params.get("continuation")
    after: str | None = None
    if token:
        try:
            after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad_field("continuation", "`continuation` is not a token this service issued.") from None
        if not _LIST_CURSOR.fullmatch(after):
            raise bad_field("continuation", "`continuation` is not a token this service issued.")
    return BookingQuery(
        start=start,
        end=end,
        interviewer=email_address(interviewer, "interviewer") if interviewer is not None else None,
        after=after,
    )


def continuation_token(after: str | None) -> str | None:
    return None if after is None else base64.urlsafe_b64encode(after.encode("ascii")).decode("ascii").rstrip("=")


def cancel_message(body: Mapping[str, Any], query_message: str | None) -> str | None:
    """The message for the attendees, from the JSON body (``{"message": ...}``) or the query string."""
    if "message" in body and query_message is not None:
        # Both given: the body's is the one sent, and the query's is still held to the same rule.
        _text(query_message, "message", max_length=MAX_BODY_BYTES, multiline=True)
    raw = body.get("message", query_message)
    if raw is not None and isinstance(raw, str) and len(raw.encode("utf-8")) > MAX_BODY_BYTES:
        raise bad_field("message", f"`message` is longer than {MAX_BODY_BYTES // 1024} KiB.")
    return _text(raw, "message", max_length=MAX_BODY_BYTES, multiline=True)
