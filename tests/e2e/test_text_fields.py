"""Text fields through the booking endpoints: multi-line free text (the event body, a cancellation
message) takes line breaks and tabs; nothing takes NUL, other controls or text-direction characters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.kit import (
    KEY,
    booking_headers,
    interview_slot,
    our_events,
    recruiter_with_interviews_mailbox,
)

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"
INTERVIEWS = "interviews@contoso.example"


def _body(**overrides: Any) -> dict[str, Any]:
    start, end = interview_slot()
    body: dict[str, Any] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "interviewers": [ALEX],
        "subject": "Interview",
        "calendar": "interviews",
    }
    body.update(overrides)
    return body


_key = booking_headers


def _ours(stack: Stack) -> list[Any]:
    return our_events(stack, INTERVIEWS)


@pytest.fixture
def recruiter(e2e: Stack) -> Any:
    return recruiter_with_interviews_mailbox(e2e)


@pytest.mark.parametrize(
    "text",
    ["Agenda\x00", "Agenda \u202egnp.exe", "Agenda \u2066x\u2069", "Agenda\x1b[31m", "Agenda\rOverwritten", "\u200fA"],
)
def test_a_body_with_nul_controls_or_direction_characters_is_refused_naming_it(
    e2e: Stack, recruiter: Any, text: str
) -> None:
    refused = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body(body=text))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["field"] == "body"
    assert not _ours(e2e)


def test_multi_line_text_keeps_its_line_breaks_and_tabs_and_single_line_text_refuses_them(
    e2e: Stack, recruiter: Any
) -> None:
    agenda = "Agenda:\r\n\t1. System design\n\t2. Coding"
    booked = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body(body=agenda))
    assert booked.status_code == 201, booked.text
    [event] = _ours(e2e)
    assert "System design" in str(event.body) and "\t2. Coding" in str(event.body)
    subject = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body(subject="Interview\nBcc: x"))
    assert subject.status_code == 400 and subject.json()["error"]["field"] == "subject"
    path = f"/api/bookings/{booked.json()['id']}"
    current = recruiter.request("GET", path, headers=KEY).json()
    patched = recruiter.request(
        "PATCH", path, headers={**KEY, "If-Match": current["etag"]}, json={"body": "Moved\u202e"}
    )
    assert patched.status_code == 400 and patched.json()["error"]["field"] == "body"
    bad_message = recruiter.request("DELETE", path, headers=KEY, json={"message": "Sorry\x00"})
    assert bad_message.status_code == 400 and bad_message.json()["error"]["field"] == "message"
    message = "Hello Sam,\r\n\nThe role was filled.\n\tThanks"
    cancelled = recruiter.request("DELETE", path, headers=KEY, json={"message": message})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["history"][-1]["detail"] == message
