"""Candidate email end to end: the whole app on the local host against Azurite and the local cloud's mail.

The app's clock reads the cloud's (one container override), so moving the cloud's clock moves both: pacing,
reminders and retries are driven by the clock and the email timer, never by sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.cloud import controls as identity_controls
from devtools.cloud import notify
from devtools.cloud.graph import controls as graph
from shared.bootstrap import Container, set_container
from tests.e2e.conftest import Stack
from tests.kit import (
    CONTOSO_ADMIN,
    KEY,
    RECRUITER,
    browser_sign_in,
    consent,
    our_events,
    stack_today,
)

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"
LYNNE = "lynne.robbins@contoso.example"
INTERVIEWS = "interviews@contoso.example"
CANDIDATE = "sam@example.org"
KEY_PROPERTY = "String {9d3e6c41-2b7a-4f18-a5c0-7e1d4b8f2a63} Name InterviewEmailKey"
AUTOMATION_LOGIN = "/api/auth/login?features=automation"


class CloudClock:
    """The app's clock reads the cloud's, so both move together."""

    def __init__(self, stack: Stack) -> None:
        self._world = stack.world

    def now(self) -> datetime:
        return self._world.now()


def run_timer(name: str) -> None:
    """Run a timer function as the host does when its schedule comes due."""
    from azure.functions.timer import TimerRequest

    from tests.app_functions import app_functions

    [fn] = [f for f in app_functions() if f.get_function_name() == name]
    fn.get_user_function()(TimerRequest(past_due=False))


def slot(n: int = 0, *, days: int = 21) -> tuple[datetime, datetime]:
    """The n-th half hour of free interview time from a Tuesday at least ``days`` ahead (21:00 UTC onwards,
    clear of the fixtures' meetings), on the stack's clock."""
    day = stack_today() + timedelta(days=days)
    while day.weekday() != 1:
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, 21, tzinfo=UTC) + timedelta(minutes=30 * n)
    return start, start + timedelta(minutes=30)


def headers(key: str | None = None) -> dict[str, str]:
    return {**KEY, "Idempotency-Key": key or f"key-{uuid.uuid4()}"}


class Mail:
    """Contoso consented, its Interviews mailbox set, and the recruiter signed in (opted into automation or not)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        consent(stack)
        admin = browser_sign_in(stack, CONTOSO_ADMIN)
        saved = admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS})
        assert saved.status_code == 200, saved.text
        self.admin = admin
        self.recruiter = browser_sign_in(stack, RECRUITER, AUTOMATION_LOGIN)

    @property
    def world(self) -> Any:
        return self.stack.world

    def body(self, n: int = 0, **extra: Any) -> dict[str, Any]:
        start, end = slot(n)
        return {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "interviewers": [ALEX, LYNNE],
            "candidate": {"name": "Sam Candidate", "email": CANDIDATE},
            "subject": "Interview: Sam Candidate",
            "online_meeting": True,
            "check_availability": False,
            "notify_candidate": True,
            **extra,
        }

    def book(self, n: int = 0, **extra: Any) -> dict[str, Any]:
        response = self.recruiter.request("POST", "/api/bookings", headers=headers(), json=self.body(n, **extra))
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def sent(self, mailbox: str = RECRUITER) -> list[Any]:
        return graph.mailbox_messages(self.world, mailbox, "sentitems")

    def sent_for(self, booking_id: str, template: str | None = None) -> list[Any]:
        prefix = f"{booking_id}.{template}." if template else f"{booking_id}."
        return [m for m in self.sent() if m.extended_properties.get(KEY_PROPERTY, "").startswith(prefix)]

    def trail(self, booking_id: str) -> dict[str, Any]:
        response = self.recruiter.request("GET", f"/api/bookings/{booking_id}/emails", headers=KEY)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def mail(e2e: Stack) -> Iterator[Mail]:
    set_container(Container(clock=CloudClock(e2e)))
    try:
        yield Mail(e2e)
    finally:
        set_container(None)


def test_opting_in_grants_mail_send_and_mail_read_and_me_says_automation(mail: Mail) -> None:
    me = mail.recruiter.request("GET", "/api/me", headers=KEY).json()
    assert "automation" in me["features"]
    assert {"Mail.Send", "Mail.Read"} <= set(me["granted_scopes"])


def test_a_recruiter_without_automation_gets_feature_not_enabled_and_nothing_is_booked(e2e: Stack) -> None:
    set_container(Container(clock=CloudClock(e2e)))
    try:
        consent(e2e)
        admin = browser_sign_in(e2e, CONTOSO_ADMIN)
        assert admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS})
        plain = browser_sign_in(e2e, RECRUITER)
        body = Mail.body(None, 0)  # type: ignore[arg-type]
        response = plain.request("POST", "/api/bookings", headers=headers(), json=body)
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "feature_not_enabled"
        assert error["login_url"].endswith(AUTOMATION_LOGIN)
        assert our_events(e2e, INTERVIEWS) == []
    finally:
        set_container(None)


@pytest.mark.dates
def test_the_confirmation_is_sent_once_for_50_concurrent_identical_bookings(mail: Mail) -> None:
    key = f"key-{uuid.uuid4()}"
    body = mail.body()

    def book() -> Any:
        return mail.recruiter.request("POST", "/api/bookings", headers=headers(key), json=body)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: book(), range(50)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers if a.status_code >= 300]
    [booking_id] = {a.json()["id"] for a in answers}
    [message] = mail.sent_for(booking_id, "confirmation")
    assert message.to[0].address == CANDIDATE
    assert message.subject.startswith("Interview confirmed:")
    assert "Sam Candidate" in message.body and "teams.microsoft.com" in message.body
    # recorded in the booking's history, and shown in the trail
    booking = mail.recruiter.request("GET", f"/api/bookings/{booking_id}", headers=KEY).json()
    assert [h["action"] for h in booking["history"]].count("email_sent") == 1
    [entry] = mail.trail(booking_id)["emails"]
    assert entry["direction"] == "sent" and entry["template"] == "confirmation" and entry["to"] == [CANDIDATE]
