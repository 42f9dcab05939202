"""Refused tokens end to end: the local cloud revokes access tokens (continuous access evaluation),
refresh tokens or the admin's consent, and availability, booking and /me answer what the two-token
rule says, against Azurite and the local Microsoft cloud through MSAL unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from devtools.cloud import controls
from shared.bootstrap import Container, get_container, set_container
from shared.models import ConsentStatus, TokenHealth
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO, KEY, RECRUITER, browser_sign_in, consent

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"
LYNNE = "lynne.robbins@contoso.example"


class MovableClock:
    """The app's clock: real time plus whatever the test moved it by."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock(e2e: Stack) -> Iterator[MovableClock]:
    moved = MovableClock()
    set_container(Container(clock=moved))
    yield moved


@pytest.fixture
def recruiter(e2e: Stack, clock: MovableClock) -> Any:
    consent(e2e)
    browser = browser_sign_in(e2e, RECRUITER)
    assert _availability(browser).status_code == 200  # warm: tokens issued and held
    return browser


def _tuesday(weeks_ahead: int) -> date:
    day = datetime.now(UTC).date() + timedelta(weeks=weeks_ahead)
    while day.weekday() != 1:
        day += timedelta(days=1)
    return day


def _availability(browser: Any) -> Any:
    day = _tuesday(3)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    body = {
        "interviewers": [ALEX, LYNNE],
        "start": start.isoformat(),
        "end": (start + timedelta(days=1)).isoformat(),
        "duration_minutes": 60,
    }
    return browser.request("POST", "/api/availability", headers=KEY, json=body)


def _book(browser: Any) -> Any:
    day = _tuesday(4)
    start = datetime(day.year, day.month, day.day, 21, tzinfo=UTC)  # clear of the fixtures' meetings
    body = {
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "interviewers": [ALEX, LYNNE],
        "candidate": {"name": "Sam Candidate", "email": "sam@example.org"},
        "subject": "Interview: Sam Candidate",
        "online_meeting": False,
        "calendar": ALEX,  # the event through the app-only token, free/busy through the delegated one
    }
    headers = {**KEY, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    return browser.request("POST", "/api/bookings", headers=headers, json=body)


def _me(browser: Any) -> dict[str, Any]:
    response = browser.request("GET", "/api/me", headers=KEY)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _recruiter_health() -> TokenHealth:
    user_id = controls.get_user(get_world(), RECRUITER).id
    return get_container().users.get_user(CONTOSO, user_id).token_health


_WORLD: list[Any] = []


def get_world() -> Any:
    return _WORLD[0]


@pytest.fixture(autouse=True)
def _remember_world(e2e: Stack) -> Iterator[None]:
    _WORLD[:] = [e2e.world]
    yield
    _WORLD.clear()


def test_access_tokens_the_cloud_revoked_are_refreshed_and_availability_answers(
    e2e: Stack, recruiter: Any, caplog: pytest.LogCaptureFixture
) -> None:
    grants = len(e2e.world.refresh_tokens)
    assert controls.expire_access_tokens(e2e.world, user=RECRUITER) >= 1  # access tokens only (CAE)
    response = _availability(recruiter)
    assert response.status_code == 200, response.text
    assert len(e2e.world.refresh_tokens) == grants + 1  # one refresh token redeemed, rotated once
    assert "with a claims challenge" in caplog.text  # Graph challenged the cp1 token, MSAL passed it on
    again = _availability(recruiter)  # the refused token is never used again: no second refresh
    assert again.status_code == 200, again.text
    assert len(e2e.world.refresh_tokens) == grants + 1
    assert _me(recruiter)["token_health"] == {"status": "ok"}


def test_a_booking_after_every_token_of_the_tenant_was_revoked_is_made(e2e: Stack, recruiter: Any) -> None:
    grants = len(e2e.world.refresh_tokens)
    # The recruiter's delegated token (getSchedule) and the tenant's app-only token (the events).
    assert controls.expire_access_tokens(e2e.world, tenant="contoso.example") >= 2
    response = _book(recruiter)
    assert response.status_code == 201, response.text
    assert len(e2e.world.refresh_tokens) == grants + 1


def test_revoked_sign_in_sessions_answer_reauth_required_and_me_says_so(e2e: Stack, recruiter: Any) -> None:
    assert controls.revoke_sign_in_sessions(e2e.world, RECRUITER) >= 1
    response = _availability(recruiter)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "reauth_required"
    assert _recruiter_health() is TokenHealth.REAUTH_REQUIRED
    me = _me(recruiter)
    assert me["token_health"]["status"] == "reauth_required"
    assert me["token_health"]["login_url"].endswith("/api/auth/login")
    booking = _book(recruiter)
    assert booking.status_code == 401 and booking.json()["error"]["code"] == "reauth_required"


def test_withdrawn_consent_with_revoked_tokens_answers_admin_consent_required_not_reauth(
    e2e: Stack, recruiter: Any
) -> None:
    controls.withdraw_admin_consent(e2e.world, "contoso.example")
    controls.expire_access_tokens(e2e.world, tenant="contoso.example")
    response = _availability(recruiter)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "admin_consent_required"
    assert _recruiter_health() is TokenHealth.OK  # the user's own grant is not what failed
    me = _me(recruiter)
    assert me["tenant"]["consent"]["status"] == ConsentStatus.NEEDS_ATTENTION.value
    assert me["token_health"]["status"] == "admin_consent_required"
    assert me["token_health"]["consent_request_url"] == me["tenant"]["consent"]["consent_request_url"]


def test_withdrawn_consent_shows_within_30_seconds_while_every_issued_token_still_works(
    e2e: Stack, recruiter: Any, clock: MovableClock
) -> None:
    # As in Entra, withdrawing consent leaves the tokens already issued working until they expire:
    # only a new app-only token shows it.
    controls.withdraw_admin_consent(e2e.world, "contoso.example")
    clock.offset += timedelta(seconds=30)
    me = _me(recruiter)
    assert me["tenant"]["consent"]["status"] == ConsentStatus.NEEDS_ATTENTION.value
    assert me["token_health"]["status"] == "admin_consent_required"
    response = _availability(recruiter)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "admin_consent_required"
    booking = _book(recruiter)
    assert booking.status_code == 403 and booking.json()["error"]["code"] == "admin_consent_required"
