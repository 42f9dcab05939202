"""Interviewers whose address holds what a storage key cannot ('?', '#' in the local part: valid email)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.cloud.graph import controls as graph_controls
from devtools.cloud.state import User, new_id
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO, CONTOSO_ADMIN, KEY, RECRUITER, consent, stack_today
from tests.kit import browser_sign_in as sign_in

pytestmark = pytest.mark.e2e

INTERVIEWS = "interviews@contoso.example"


def _slot() -> tuple[datetime, datetime]:
    day = stack_today() + timedelta(days=21)
    while day.weekday() != 1:  # a Tuesday
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, 18, tzinfo=UTC)
    return start, start + timedelta(hours=1)


def _add_person(stack: Stack, address: str) -> None:
    """A mailbox user of Contoso with this address, working 09:00-17:00 UTC on weekdays."""
    user = User(
        tenant_id=CONTOSO,
        id=new_id(),
        user_principal_name=address,
        display_name="Key Unsafe",
        mail=address,
        mailbox_settings={
            "timeZone": "UTC",
            "userPurpose": "user",
            "workingHours": {
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "startTime": "09:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": "UTC"},
            },
        },
    )
    with stack.world.lock:
        stack.world.users[user.id] = user


def _recruiter(stack: Stack) -> Any:
    consent(stack)
    admin = sign_in(stack, CONTOSO_ADMIN)
    settings = admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS})
    assert settings.status_code == 200, settings.text
    return sign_in(stack, RECRUITER)


@pytest.mark.parametrize("address", ["what?if@contoso.example", "hash#tag@contoso.example"])
def test_such_an_interviewer_is_booked_and_their_slot_claimed(e2e: Stack, address: str) -> None:
    _add_person(e2e, address)
    recruiter = _recruiter(e2e)
    start, end = _slot()
    body = {"start": start.isoformat(), "end": end.isoformat(), "interviewers": [address], "online_meeting": False}
    first = recruiter.request(
        "POST", "/api/bookings", headers={**KEY, "Idempotency-Key": f"k-{uuid.uuid4()}"}, json=body
    )
    assert first.status_code == 201, first.text
    assert graph_controls.resolve_user(e2e.world, address).mail == address
    # The claim holds: a second booking of the same person at the same time is refused, not a server error.
    second = recruiter.request(
        "POST", "/api/bookings", headers={**KEY, "Idempotency-Key": f"k-{uuid.uuid4()}"}, json={**body, "subject": "2"}
    )
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "slot_unavailable" and second.json()["error"]["busy"] == [address]
    # Cancelling releases the claim under the same key: the time can be booked again.
    booking = first.json()
    cancelled = recruiter.request("DELETE", f"/api/bookings/{booking['id']}", headers=KEY)
    assert cancelled.status_code == 200, cancelled.text
    third = recruiter.request(
        "POST", "/api/bookings", headers={**KEY, "Idempotency-Key": f"k-{uuid.uuid4()}"}, json={**body, "subject": "3"}
    )
    assert third.status_code == 201, third.text
