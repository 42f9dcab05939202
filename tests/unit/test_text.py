"""The one text rule: single-line fields refuse every control character; multi-line free text accepts
line breaks (LF, CRLF) and tabs and nothing else of the control range; neither accepts bidi controls."""

from __future__ import annotations

import pytest

from shared.errors import InvalidRequest
from shared.text import clean_text, has_forbidden_characters

BIDI_AND_INVISIBLE = [
    "\u202e",
    "\u202a",
    "\u2066",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u200b",
    "\ufeff",
    "\u2028",
]
CONTROLS_NEVER_TEXT = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f"]


@pytest.mark.parametrize("text", ["Agenda:\n- design\n- coding", "Line one\r\nLine two", "Name\tRole", "\n\t\r\n"])
def test_multi_line_text_accepts_line_breaks_and_tabs(text: str) -> None:
    assert not has_forbidden_characters(text, multiline=True)
    assert has_forbidden_characters(text)  # a single-line field still refuses them


@pytest.mark.parametrize("char", [*CONTROLS_NEVER_TEXT, *BIDI_AND_INVISIBLE, "\r"])
def test_multi_line_text_refuses_every_other_control_and_every_direction_character(char: str) -> None:
    assert has_forbidden_characters(f"Agenda\n{char}end", multiline=True)
    assert has_forbidden_characters(f"Agenda{char}", multiline=False)


@pytest.mark.parametrize("text", ["a\rb", "a\r", "\r\r\n", "a\n\rb"])
def test_a_carriage_return_is_text_only_before_a_line_feed(text: str) -> None:
    assert has_forbidden_characters(text, multiline=True)


def test_clean_text_names_the_field_and_says_what_multi_line_text_may_hold() -> None:
    assert clean_text("  Agenda:\r\n\tdesign  ", parameter="body", multiline=True) == "Agenda:\r\n\tdesign"
    with pytest.raises(InvalidRequest) as refused:
        clean_text("Agenda\u202e", parameter="body", multiline=True)
    assert refused.value.details["parameter"] == "body" and "line breaks" in refused.value.message
    with pytest.raises(InvalidRequest):
        clean_text("Subject\nBcc: x", parameter="subject")


def test_counts_and_weekdays_read_as_people_write_them() -> None:
    from shared.text import counted, day_ranges

    assert (counted(1, "day"), counted(2, "day"), counted(0, "interview")) == ("1 day", "2 days", "0 interviews")
    assert day_ranges(["monday", "tuesday", "wednesday", "thursday", "friday"]) == "Mon-Fri"
    assert day_ranges(["friday", "monday", "wednesday"]) == "Mon, Wed, Fri"
    assert day_ranges(["saturday", "sunday"]) == "Sat, Sun"
    assert day_ranges(["monday", "tuesday", "thursday", "friday", "saturday"]) == "Mon, Tue, Thu-Sat"
    assert day_ranges([]) == "no days"
