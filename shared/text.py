"""Validation of text that callers send: one place that refuses control and bidi characters,
and that checks mailbox addresses with ``email-validator`` (syntax only, no DNS).

Every text input (query parameters, route values, JSON fields, callback parameters that are
kept or shown) goes through ``clean_text`` or ``mailbox_address`` before the core uses it.
Single-line fields refuse every control character; multi-line free text (``multiline=True``: an
event body, a cancellation message) also accepts line breaks (``\n``, ``\r\n``) and tabs, and
nothing else of the control range. Neither accepts a text-direction or invisible formatting character.
"""

from __future__ import annotations

import re

from shared.errors import InvalidRequest

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text:
# bidi embeddings/overrides/isolates (U+202A-U+202E, U+2066-U+2069), LRM/RLM/ALM, zero-width
# characters, line/paragraph separators and the BOM.
_FORMAT = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_FORBIDDEN = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")
# The same, less tab and line feed; a carriage return only as the first half of CRLF.
_FORBIDDEN_MULTILINE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_FORMAT}]|\r(?!\n)")

# RFC 5322 allows these in a local part, but the address is placed in Microsoft Graph URL paths
# (/users/{address}); Graph's documentation does not say how it reads them there, so refuse them.
_URL_UNSAFE = re.compile(r"[/\\?#%]")


def has_forbidden_characters(value: str, *, multiline: bool = False) -> bool:
    """Whether ``value`` holds a control, bidi-override or invisible formatting character; with
    ``multiline``, tabs, line feeds and CRLF pairs are allowed."""
    return (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN).search(value) is not None


def clean_text(
    value: object, *, parameter: str, max_length: int = 256, required: bool = False, multiline: bool = False
) -> str | None:
    """A stripped text value, or None when absent or blank (unless ``required``).

    Raises InvalidRequest (naming ``parameter``) for a non-string, an over-long value, or one
    holding control or bidi-override characters (``multiline``: line breaks and tabs are text).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidRequest(f"{parameter} is required.", parameter=parameter)
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{parameter} must be text.", parameter=parameter)
    if has_forbidden_characters(value, multiline=multiline):
        allowed = " (line breaks and tabs are fine)" if multiline else ""
        raise InvalidRequest(
            f"{parameter} contains control or text-direction characters, which are not allowed{allowed}.",
            parameter=parameter,
        )
    text = value.strip()
    if len(text) > max_length:
        raise InvalidRequest(f"{parameter} is longer than {max_length} characters.", parameter=parameter)
    return text


def mailbox_address(value: object, *, parameter: str) -> str | None:
    """A mailbox address checked for syntax (RFC 5322 addr-spec as ``email-validator`` reads it),
    normalised to lower case, or None when absent. Raises InvalidRequest."""
    text = clean_text(value, parameter=parameter, max_length=254)
    if text is None:
        return None
    from email_validator import EmailNotValidError, validate_email  # imported on first use: cold start

    try:
        checked = validate_email(text, check_deliverability=False, allow_quoted_local=False)
    except EmailNotValidError as err:
        raise InvalidRequest(f"{parameter} must be an email address: {err}", parameter=parameter) from None
    if _URL_UNSAFE.search(checked.local_part):
        raise InvalidRequest(f"{parameter} must be an email address without / \\ ? # or %.", parameter=parameter)
    return checked.normalized.lower()


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``3 interviews``, ``1 day``: a count with its noun, never ``interview(s)``."""
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


_WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def day_ranges(days: object) -> str:
    """Weekday names as people write them: ``Mon-Fri``, ``Mon, Wed, Fri``, ``Sat-Sun`` (runs of three or more
    days become a range); ``no days`` when empty."""
    chosen = {str(d).lower() for d in days} if isinstance(days, (list, tuple, set, frozenset)) else set()
    parts: list[str] = []
    i = 0
    while i < len(_WEEK):
        if _WEEK[i] not in chosen:
            i += 1
            continue
        j = i
        while j + 1 < len(_WEEK) and _WEEK[j + 1] in chosen:
            j += 1
        short = [d[:3].capitalize() for d in _WEEK[i : j + 1]]
        parts.append(f"{short[0]}-{short[-1]}" if len(short) >= 3 else ", ".join(short))
        i = j + 1
    return ", ".join(parts) or "no days"
