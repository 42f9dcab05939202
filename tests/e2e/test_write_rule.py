"""Whose permission writes: the ways around the Recruiting Team restriction tried through the HTTP endpoints,
against Azurite and the local Microsoft cloud; and a booking while Graph's free/busy is failing."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest

from devtools.cloud.graph import controls as graph_controls
from shared.bootstrap import get_container, set_container
from tests.e2e.conftest import Stack
from tests.kit import (
    CONTOSO,
    CONTOSO_ADMIN,
    FABRIKAM_ADMIN,
    KEY,
    RECRUITER,
    booking_headers,
    consent,
    interview_slot,
    our_events,
)
from tests.kit import browser_sign_in as sign_in

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"
INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"
GRADY = "grady.archie@contoso.example"  # not in the Recruiting Team group


_slot = interview_slot
_key = booking_headers
_ours = our_events


def _body(**overrides: Any) -> dict[str, Any]:
    start, end = _slot()
    body: dict[str, Any] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "interviewers": [ALEX],
        "candidate": {"name": "Sam Candidate", "email": "sam@example.org"},
        "subject": "Interview: Sam Candidate",
        "calendar": "interviews",
    }
    body.update(overrides)
    return body


@pytest.fixture
def admin(e2e: Stack) -> Any:
    consent(e2e)
    admin = sign_in(e2e, CONTOSO_ADMIN)
    saved = admin.request(
        "PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS, "sync_mailbox": SYNC}
    )
    assert saved.status_code == 200, saved.text
    return admin


@pytest.mark.parametrize(("mailbox", "listed_as"), [(INTERVIEWS, "interviewers"), (SYNC, "optional_interviewers")])
def test_a_shared_mailbox_named_as_calendar_and_interviewer_is_refused_and_nothing_is_written(
    e2e: Stack, admin: Any, mailbox: str, listed_as: str
) -> None:
    grady = sign_in(e2e, GRADY)
    # The front door is shut: the Interviews calendar, with his own token.
    assert grady.request("POST", "/api/bookings", headers=_key(), json=_body()).status_code == 403
    # The side door: the shared mailbox's address as the calendar, and the mailbox among the interviewers.
    people = {"interviewers": [ALEX, mailbox]} if listed_as == "interviewers" else {listed_as: [mailbox]}
    refused = grady.request("POST", "/api/bookings", headers=_key(), json=_body(calendar=mailbox, **people))
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == ("interviewers[1]" if listed_as == "interviewers" else "optional_interviewers[0]")
    assert not _ours(e2e, mailbox) and not _ours(e2e, ALEX)
    # A member of the group is refused the same way: a shared mailbox is never an interviewer.
    megan = sign_in(e2e, RECRUITER)
    again = megan.request("POST", "/api/bookings", headers=_key(), json=_body(calendar=mailbox, **people))
    assert again.status_code == 400 and not _ours(e2e, mailbox)


def test_the_interviews_mailbox_is_written_with_the_recruiter_s_token_whatever_it_is(e2e: Stack, admin: Any) -> None:
    # An admin makes their own calendar the Interviews calendar; it is then the recruiter's token that
    # writes it, even named by address, listed as an interviewer, with the free/busy check off.
    moved = admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": CONTOSO_ADMIN})
    assert moved.status_code == 200, moved.text
    grady = sign_in(e2e, GRADY)
    body = _body(calendar=CONTOSO_ADMIN, interviewers=[CONTOSO_ADMIN, ALEX], check_availability=False)
    refused = grady.request("POST", "/api/bookings", headers=_key(), json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "no_access_to_calendar"
    assert not _ours(e2e, CONTOSO_ADMIN)


def test_an_interviewer_s_own_calendar_is_still_written_by_the_app_and_says_so(e2e: Stack, admin: Any) -> None:
    grady = sign_in(e2e, GRADY)
    booked = grady.request("POST", "/api/bookings", headers=_key(), json=_body(calendar=ALEX))
    assert booked.status_code == 201, booked.text
    [event] = _ours(e2e, ALEX)
    assert event.id == booked.json()["event_id"]
    stored = get_container().bookings.get_booking(CONTOSO, booked.json()["id"])
    assert stored.delegated is False  # the record says whose permission wrote it


def test_a_booking_recorded_as_app_written_where_the_rule_forbids_is_not_changed_or_cancelled_by_the_app(
    e2e: Stack, admin: Any
) -> None:
    megan = sign_in(e2e, RECRUITER)
    booked = megan.request("POST", "/api/bookings", headers=_key(), json=_body()).json()
    [event] = _ours(e2e, INTERVIEWS)
    # A booking made before the rule: its record says the app writes the Interviews mailbox.
    deps = get_container()
    legacy = deps.bookings.update_booking(replace(deps.bookings.get_booking(CONTOSO, booked["id"]), delegated=False))
    before = (event.subject, event.start, event.is_cancelled, event.change_key)
    grady = sign_in(e2e, GRADY)
    path = f"/api/bookings/{booked['id']}"
    patch = grady.request("PATCH", path, headers={**KEY, "If-Match": legacy.etag or ""}, json={"subject": "Hijacked"})
    assert patch.status_code == 403 and patch.json()["error"]["code"] == "no_access_to_calendar", patch.text
    delete = grady.request("DELETE", path, headers=KEY)
    assert delete.status_code == 403 and delete.json()["error"]["code"] == "no_access_to_calendar", delete.text
    assert (event.subject, event.start, event.is_cancelled, event.change_key) == before
    # The group's member still may, with her own token; the record now says so.
    current = megan.request("GET", path, headers=KEY).json()
    changed = megan.request("PATCH", path, headers={**KEY, "If-Match": current["etag"]}, json={"subject": "Renamed"})
    assert changed.status_code == 200, changed.text
    assert deps.bookings.get_booking(CONTOSO, booked["id"]).delegated is True


def test_settings_may_name_only_mailboxes_of_the_admin_s_own_tenant(e2e: Stack, admin: Any) -> None:
    consent(e2e, FABRIKAM_ADMIN, "fabrikam.example")
    fabrikam = sign_in(e2e, FABRIKAM_ADMIN)
    refused = fabrikam.request("PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["field"] == "interviews_mailbox"
    assert "tenant" in refused.json()["error"]["message"]
    assert fabrikam.request("GET", "/api/tenants/me/settings", headers=KEY).json()["interviews_mailbox"] is None


@pytest.mark.parametrize("failure", ["5xx", "timeout"])
def test_a_booking_while_graph_free_busy_fails_says_graph_could_not_be_read_never_busy(
    e2e: Stack, admin: Any, failure: str
) -> None:
    megan = sign_in(e2e, RECRUITER)
    megan.request("GET", "/api/me", headers=KEY)  # the directory facts and tokens are warm
    os.environ["AVAILABILITY_DEADLINE_SECONDS"] = "1.5"
    set_container(None)
    if failure == "5xx":
        graph_controls.fail(e2e.world, count=50, status=503, mailbox=RECRUITER)  # getSchedule runs in her mailbox
    try:
        if failure == "timeout":
            graph_controls.set_latency(e2e.world, 2.0)
        response = megan.request("POST", "/api/bookings", headers=_key(), json=_body())
    finally:
        graph_controls.clear_switches(e2e.world)
        os.environ.pop("AVAILABILITY_DEADLINE_SECONDS", None)
        set_container(None)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "graph_unavailable" and error["unreadable"] == [ALEX]
    assert "busy" not in error and "not free" not in error["message"]
    assert int(response.headers["Retry-After"]) > 0
    assert not _ours(e2e, INTERVIEWS)
    # Someone who is actually busy is still told so.
    start, end = _slot()
    fmt = "%Y-%m-%dT%H:%M:%S"
    graph_controls.add_event(
        e2e.world,
        ALEX,
        {
            "subject": "1:1",
            "start": {"dateTime": start.strftime(fmt), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime(fmt), "timeZone": "UTC"},
        },
    )
    busy = megan.request("POST", "/api/bookings", headers=_key(), json=_body())
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "slot_unavailable" and busy.json()["error"]["busy"] == [ALEX]
