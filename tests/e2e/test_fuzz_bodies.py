"""Booking, availability and webhook bodies against structured random input, through the local host.

Where ``test_fuzz_routes`` throws arbitrary bytes at every route, these strategies build bodies that are
nearly right: every field of the booking and availability contracts and of Graph's notification items,
each drawn from valid values, boundary values and the values that broke handlers before (times the
calendar cannot hold, fractional seconds, addresses with characters storage keys cannot hold, shared
mailboxes named as interviewers, control and text-direction characters, wrong JSON types). Whatever
arrives: never a 5xx, never a dropped connection, every error the JSON shape naming its code, and a
refusal of bad input a 400 that names the field. Derandomized, without an example database.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Stack
from tests.kit import (
    KEY,
    interview_slot,
    recruiter_with_interviews_mailbox,
)

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"
LYNNE = "lynne.robbins@contoso.example"
INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def _base() -> datetime:
    return interview_slot()[0]


NASTY_TEXT = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "x\u202ey", "\u200f", "line\nnext", "tab\there", "cr\rhere", "9" * 3000, "é漢字"]
)
TEXT = st.one_of(NASTY_TEXT, st.text(max_size=30))
ADDRESSES = st.sampled_from(
    [
        ALEX,
        LYNNE,
        "ALEX.WILBER@CONTOSO.EXAMPLE",
        "a?b@contoso.example",
        "a#b@contoso.example",
        "a/b@contoso.example",
        "a|b@contoso.example",
        "ghost@contoso.example",
        "someone@fabrikam.example",
        INTERVIEWS,
        SYNC,
        "not-an-address",
        "",
        "x\u202e@contoso.example",
    ]
)
WRONG_TYPES = st.sampled_from([None, 0, -1, 1.5, True, [], {}, "", "null"])


def _times(base: datetime) -> st.SearchStrategy[str]:
    offsets = st.sampled_from([timedelta(0), timedelta(hours=-5), timedelta(hours=5, minutes=30)])
    return st.one_of(
        st.builds(
            lambda hours, micro, tz: (base + timedelta(hours=hours, microseconds=micro))
            .astimezone(timezone(tz))
            .isoformat(),
            st.integers(min_value=-48, max_value=24 * 200),
            st.sampled_from([0, 1, 500_000]),
            offsets,
        ),
        st.sampled_from(
            [
                "9999-12-31T23:00:00Z",
                "9999-12-31T20:00:00-05:00",
                "0001-01-01T00:00:00Z",
                "1600-12-31T23:59:59Z",
                "4501-01-01T00:00:00Z",
                "2027-02-30T10:00:00Z",
                "2027-01-13T10:00:00",
                "tomorrow",
                "",
            ]
        ),
    )


@st.composite
def booking_bodies(draw: st.DrawFn, base: datetime) -> dict[str, Any]:
    times = _times(base)
    body: dict[str, Any] = {
        "start": draw(times),
        "end": draw(times),
        "interviewers": draw(st.lists(ADDRESSES, max_size=3)),
        "subject": draw(TEXT),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "optional_interviewers": st.lists(ADDRESSES, max_size=2),
        "candidate": st.one_of(
            st.fixed_dictionaries({"email": ADDRESSES}, optional={"name": TEXT}), WRONG_TYPES
        ),
        "body": TEXT,
        "location": st.one_of(TEXT, st.none()),
        "online_meeting": st.one_of(st.booleans(), WRONG_TYPES),
        "check_availability": st.one_of(st.booleans(), WRONG_TYPES),
        "calendar": st.one_of(st.sampled_from(["interviews", ALEX, INTERVIEWS, SYNC, "a?b@contoso.example"]), TEXT),
        "calendar_id": st.one_of(TEXT, WRONG_TYPES),
        "unknown_field": TEXT,
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    for name in draw(st.lists(st.sampled_from(list(body)), max_size=2)):
        body[name] = draw(WRONG_TYPES)
    return body


@st.composite
def availability_bodies(draw: st.DrawFn, base: datetime) -> dict[str, Any]:
    times = _times(base)
    body: dict[str, Any] = {
        "interviewers": draw(st.lists(st.one_of(ADDRESSES, st.fixed_dictionaries({"email": ADDRESSES})), max_size=3)),
        "start": draw(times),
        "end": draw(times),
        "duration_minutes": draw(st.one_of(st.sampled_from([15, 30, 60, 61, 0, -5, 10_000]), WRONG_TYPES)),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "interval_minutes": st.one_of(st.sampled_from([1, 5, 7, 30, 0]), WRONG_TYPES),
        "time_zone": st.one_of(st.sampled_from(["America/New_York", "Pacific Standard Time", "Mars/Olympus"]), TEXT),
        "max_slots": st.one_of(st.sampled_from([1, 100, 1000, 1001, 0]), WRONG_TYPES),
        "after": times,
        "max_per_day": st.one_of(st.sampled_from([1, 0, 99]), WRONG_TYPES),
        "buffer_before_minutes": st.one_of(st.sampled_from([0, 15, -1, 10_000]), WRONG_TYPES),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return body


NOTIFICATION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "subscriptionId": st.one_of(st.sampled_from([str(uuid.UUID(int=1)), "not-a-guid"]), WRONG_TYPES),
    "clientState": st.one_of(TEXT, WRONG_TYPES),
    "changeType": st.one_of(st.sampled_from(["created", "updated", "deleted", "missed", "x"]), WRONG_TYPES),
    "lifecycleEvent": st.one_of(
        st.sampled_from(["reauthorizationRequired", "subscriptionRemoved", "missed", "other"]), WRONG_TYPES
    ),
    "resource": st.one_of(st.sampled_from(["Users/u/Events/e", "Users('u')/Events('e')", "me/events"]), TEXT),
    "resourceData": st.one_of(
        st.fixed_dictionaries({}, optional={"id": st.one_of(TEXT, WRONG_TYPES), "@odata.type": TEXT}), WRONG_TYPES
    ),
    "tenantId": st.one_of(st.sampled_from([str(uuid.UUID(int=2))]), TEXT, WRONG_TYPES),
    "subscriptionExpirationDateTime": st.one_of(TEXT, WRONG_TYPES),
}


@st.composite
def notification_bodies(draw: st.DrawFn) -> Any:
    items = draw(
        st.lists(
            st.fixed_dictionaries({}, optional=NOTIFICATION_FIELDS) | WRONG_TYPES,
            max_size=4,
        )
    )
    return draw(st.sampled_from(["value", "items"]).map(lambda key: {key: items}) | st.just(items) | WRONG_TYPES)


def _assert_answered_well(what: str, response: httpx.Response) -> None:
    assert response.status_code < 500, f"{what} answered {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), what
        if error["code"] == "invalid_request":
            assert isinstance(error.get("field"), str) and error["field"], f"{what}: {error}"


@pytest.fixture
def recruiter(e2e: Stack) -> Any:
    return recruiter_with_interviews_mailbox(e2e, sync=True)


def test_booking_bodies_never_answer_5xx(e2e: Stack, recruiter: Any) -> None:
    base = _base()
    answered: set[int] = set()

    @FUZZ
    @given(booking_bodies(base))
    @example({"start": base.isoformat(), "end": (base + timedelta(hours=1)).isoformat(), "interviewers": ["a?b@contoso.example"], "subject": "x"})  # noqa: E501
    @example({"start": "9999-12-31T23:00:00Z", "end": "9999-12-31T23:30:00Z", "interviewers": [ALEX], "subject": "x"})
    @example({"start": base.isoformat(), "end": (base + timedelta(hours=1)).isoformat(), "interviewers": [SYNC], "calendar": SYNC, "subject": "x"})  # noqa: E501
    def exercise(body: dict[str, Any]) -> None:
        headers = {**KEY, "Idempotency-Key": f"fuzz-{uuid.uuid4()}"}
        response = recruiter.request("POST", "/api/bookings", headers=headers, json=body)
        answered.add(response.status_code)
        _assert_answered_well(f"POST /api/bookings {body}", response)

    exercise()
    assert 400 in answered, answered


def test_availability_bodies_never_answer_5xx(e2e: Stack, recruiter: Any) -> None:
    base = _base()
    answered: set[int] = set()

    @FUZZ
    @given(availability_bodies(base))
    @example({"interviewers": [ALEX], "start": base.isoformat(), "end": (base + timedelta(days=1)).isoformat(), "duration_minutes": None})  # noqa: E501
    def exercise(body: dict[str, Any]) -> None:
        response = recruiter.request("POST", "/api/availability", headers=KEY, json=body)
        answered.add(response.status_code)
        _assert_answered_well(f"POST /api/availability {body}", response)

    exercise()
    assert 400 in answered, answered


def test_webhook_bodies_never_answer_5xx(e2e: Stack) -> None:
    with httpx.Client(base_url=e2e.base_url, timeout=30) as client:

        @settings(
            max_examples=150,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(notification_bodies(), st.sampled_from(["/api/webhooks/graph", "/api/webhooks/graph/lifecycle"]))
        def exercise(body: Any, path: str) -> None:
            response = client.post(path, json=body)
            # Anonymous: accepted (202, what it drops is counted) or refused as bad input, never a 5xx.
            assert response.status_code in (202, 400, 413, 415), f"{path} {body!r}: {response.status_code}"
            _assert_answered_well(f"POST {path}", response)

        exercise()
