"""JSON request fields parsed into values, every refusal an ``InvalidRequest`` naming its field.

The request contracts of scheduling and booking share these, so the same field reads the same way
(and is refused in the same words) on every endpoint. A body's types and ranges were checked against
openapi.yaml before (``functions/_contract.py``); times and addresses are checked here, because query
parameters use them too and a schema cannot say which times a calendar holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import InvalidRequest

# The earliest and latest times Exchange calendars hold (Graph refuses dates outside them).
EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)
LATEST = datetime(4501, 1, 1, tzinfo=UTC)
# Syntax only (RFC 5322 dot-atom local part, a dotted domain); deliverability is Graph's business.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def bad_field(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, field=field)


def boolean(body: Mapping[str, Any], key: str, default: bool) -> bool:
    """A true or false the request's schema let through: absent or null is ``default``."""
    value = body.get(key)
    return default if value is None else bool(value)


def integer(body: Mapping[str, Any], field: str, default: int) -> int:
    """A whole number the request's schema let through (in range; 15.0 reads as 15): absent or null is
    ``default``."""
    value = body.get(field)
    return default if value is None else int(value)


def optional_integer(body: Mapping[str, Any], field: str) -> int | None:
    """A whole number or null (no limit)."""
    value = body.get(field)
    return None if value is None else int(value)


def minutes(body: Mapping[str, Any], field: str, default: int) -> timedelta:
    return timedelta(minutes=integer(body, field, default))


def moment(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise bad_field(
            field, f"`{field}` must be an ISO 8601 date and time with an offset, like 2026-12-07T09:00:00-05:00."
        )
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise bad_field(field, f"`{field}` is not a valid ISO 8601 date and time.") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise bad_field(field, f"`{field}` needs a UTC offset (for example -05:00 or Z).")
    try:
        in_range = EARLIEST <= parsed.astimezone(UTC) < LATEST
    except OverflowError:  # the offset pushes it past year 9999 or before year 1
        in_range = False
    if not in_range:
        raise bad_field(field, f"`{field}` must be a time a calendar can hold, from the year 1601 to 4500.")
    return parsed


def email_address(value: Any, field: str) -> str:
    """A syntactically valid address, lower-cased (Exchange addresses are case-insensitive)."""
    if not isinstance(value, str) or not 3 <= len(value) <= 254 or not _EMAIL.fullmatch(value):
        raise bad_field(field, f"`{field}` must be an email address, like alex.wilber@contoso.com.")
    return value.lower()
