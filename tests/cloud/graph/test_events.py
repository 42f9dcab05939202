"""Event writes of the local Graph: create, transactionId retries, extended properties, Teams links,
PATCH, DELETE, cancel, attendee copies and responses, and the Outlook-side controls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from devtools.cloud.graph import controls
from devtools.cloud.graph.testing import app_only, delegated
from devtools.cloud.state import World

ALEX = "alex.wilber@contoso.example"
MEGAN = "megan.bowen@contoso.example"
DIEGO = "diego.siciliani@contoso.example"
INTERVIEWS = "interviews@contoso.example"
PROP_ID = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name InterviewBookingId"
DAY = "2030-03-03"


def uid(world: World, upn: str) -> str:
    return controls.resolve_user(world, upn).id


@pytest.fixture
def changes(world: World) -> list[tuple[str, str, str, str]]:
    seen: list[tuple[str, str, str, str]] = []
    world.add_change_listener(lambda *args: seen.append(args))
    return seen


def booking(**extra: Any) -> dict[str, Any]:
    return {
        "subject": "Interview: Jane Doe",
        "body": {"contentType": "HTML", "content": "Loop <b>one</b>"},
        "start": {"dateTime": f"{DAY}T10:00:00", "timeZone": "Eastern Standard Time"},
        "end": {"dateTime": f"{DAY}T11:00:00", "timeZone": "Eastern Standard Time"},
        "location": {"displayName": "Teams"},
        "attendees": [
            {"emailAddress": {"address": ALEX, "name": "Alex Wilber"}, "type": "required"},
            {"emailAddress": {"address": "candidate@example.org", "name": "Jane Doe"}, "type": "optional"},
        ],
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        **extra,
    }


def app_headers(world: World, *roles: str) -> dict[str, str]:
    return app_only(world, "contoso.example", roles or ("Calendars.ReadWrite",))


def test_create_event_returns_201_with_the_documented_shape(
    world: World, client: TestClient, changes: list[tuple[str, str, str, str]]
) -> None:
    headers = {**app_headers(world), "Prefer": 'outlook.timezone="Eastern Standard Time"'}
    response = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=headers)
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["@odata.context"].endswith(f"$metadata#users('{uid(world, INTERVIEWS)}')/events/$entity")
    assert event["start"] == {"dateTime": f"{DAY}T10:00:00.0000000", "timeZone": "Eastern Standard Time"}
    assert event["originalStartTimeZone"] == "Eastern Standard Time"
    assert event["type"] == "singleInstance" and event["isOrganizer"] is True
    assert event["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert event["body"]["contentType"] == "html" and "Loop <b>one</b>" in event["body"]["content"]
    assert event["bodyPreview"] == "Loop one"
    assert event["attendees"][0] == {
        "type": "required",
        "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
        "emailAddress": {"name": "Alex Wilber", "address": ALEX},
    }
    assert event["organizer"]["emailAddress"]["address"] == INTERVIEWS
    assert "transactionId" not in event
    # the organizer's event and Alex's copy were both announced
    kinds = {(world.users[m].user_principal_name, kind) for _, m, kind, _ in changes}
    assert kinds == {(INTERVIEWS, "created"), (ALEX, "created")}


def test_attendee_copy_shows_in_free_busy_and_responses_reflect_back(world: World, client: TestClient) -> None:
    created = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=app_headers(world)).json()
    window = {
        "startTime": {"dateTime": f"{DAY}T14:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": f"{DAY}T17:00:00", "timeZone": "UTC"},
        "availabilityViewInterval": 60,
    }
    info = client.post(
        f"/v1.0/users/{ALEX}/calendar/getSchedule",
        json={"schedules": [ALEX], **window},
        headers=app_headers(world, "Calendars.Read"),
    ).json()["value"][0]
    assert info["availabilityView"] == "010"  # an unanswered request shows as tentative
    copy = next(e for e in world.mailbox_events(uid(world, ALEX)) if e.ical_uid == created["iCalUId"])
    headers = delegated(world, ALEX, ["Calendars.ReadWrite"])
    mine = client.get(f"/v1.0/me/events/{copy.id}", headers=headers).json()
    assert mine["isOrganizer"] is False and mine["iCalUId"] == created["iCalUId"]
    assert mine["responseStatus"]["response"] == "none"
    assert (
        client.post(f"/v1.0/me/events/{copy.id}/accept", json={"sendResponse": True}, headers=headers).status_code
        == 202
    )
    organizer_view = client.get(f"/v1.0/users/{INTERVIEWS}/events/{created['id']}", headers=app_headers(world)).json()
    assert organizer_view["attendees"][0]["status"]["response"] == "accepted"
    info = client.post(
        f"/v1.0/users/{ALEX}/calendar/getSchedule",
        json={"schedules": [ALEX], **window},
        headers=app_headers(world, "Calendars.Read"),
    ).json()["value"][0]
    assert info["availabilityView"] == "020"
    assert client.get(f"/v1.0/me/events/{copy.id}", headers=headers).json()["responseStatus"]["response"] == "accepted"


def test_transaction_id_retry_returns_the_existing_event(world: World, client: TestClient) -> None:
    body = booking(transactionId="7E163156-7762-4BEB-A1C6-729EA81755A7")
    first = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=body, headers=app_headers(world))
    again = client.post(f"/v1.0/users/{INTERVIEWS}/calendar/events", json=body, headers=app_headers(world))
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["transactionId"] == "7E163156-7762-4BEB-A1C6-729EA81755A7"
    assert sum(1 for e in world.mailbox_events(uid(world, INTERVIEWS)) if e.transaction_id) == 1


def test_extended_properties_are_stored_not_returned_and_expandable(world: World, client: TestClient) -> None:
    body = booking(
        singleValueExtendedProperties=[
            {"id": PROP_ID, "value": "booking-42"},
            {"id": "String {00000000-0000-0000-0000-000000000000} Name Other", "value": "x"},
        ]
    )
    created = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=body, headers=app_headers(world)).json()
    assert "singleValueExtendedProperties" not in created
    url = f"/v1.0/users/{INTERVIEWS}/events/{created['id']}"
    expanded = client.get(
        url, params={"$expand": f"singleValueExtendedProperties($filter=id eq '{PROP_ID}')"}, headers=app_headers(world)
    ).json()
    assert expanded["singleValueExtendedProperties"] == [{"id": PROP_ID, "value": "booking-42"}]
    plain = client.get(url, headers=app_headers(world)).json()
    assert "singleValueExtendedProperties" not in plain


def test_patch_changes_only_what_is_sent_and_keeps_the_join_url(
    world: World, client: TestClient, changes: list[tuple[str, str, str, str]]
) -> None:
    created = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=app_headers(world)).json()
    changes.clear()
    url = f"/v1.0/users/{INTERVIEWS}/events/{created['id']}"
    patched = client.patch(
        url,
        json={
            "subject": "Interview: Jane Doe (moved)",
            "start": {"dateTime": f"{DAY}T12:00:00", "timeZone": "Eastern Standard Time"},
            "end": {"dateTime": f"{DAY}T13:00:00", "timeZone": "Eastern Standard Time"},
        },
        headers=app_headers(world),
    )
    assert patched.status_code == 200
    event = patched.json()
    assert event["subject"] == "Interview: Jane Doe (moved)"
    assert event["onlineMeeting"]["joinUrl"] == created["onlineMeeting"]["joinUrl"]
    assert event["location"]["displayName"] == "Teams"
    assert event["changeKey"] != created["changeKey"]
    assert event["start"]["dateTime"].startswith(f"{DAY}T17:00:00")  # UTC by default
    assert {kind for *_, kind, _ in changes} == {"updated"}
    assert len(changes) == 2  # the organizer's event and Alex's copy


def test_delete_is_204_and_cancels_the_attendee_copy(world: World, client: TestClient) -> None:
    created = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=app_headers(world)).json()
    url = f"/v1.0/users/{INTERVIEWS}/events/{created['id']}"
    assert client.delete(url, headers=app_headers(world)).status_code == 204
    missing = client.get(url, headers=app_headers(world))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ErrorItemNotFound"
    copy = next(e for e in world.mailbox_events(uid(world, ALEX)) if e.ical_uid == created["iCalUId"])
    assert copy.is_cancelled and copy.show_as == "free"


def test_cancel_is_202_for_the_organizer_only(world: World, client: TestClient) -> None:
    created = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=app_headers(world)).json()
    copy = next(e for e in world.mailbox_events(uid(world, ALEX)) if e.ical_uid == created["iCalUId"])
    refused = client.post(
        f"/v1.0/users/{ALEX}/events/{copy.id}/cancel", json={"Comment": "no"}, headers=app_headers(world)
    )
    assert refused.status_code == 400
    done = client.post(
        f"/v1.0/users/{INTERVIEWS}/events/{created['id']}/cancel",
        json={"Comment": "Role filled"},
        headers=app_headers(world),
    )
    assert done.status_code == 202
    assert created["id"] not in world.events and world.events[copy.id].is_cancelled


def test_create_needs_calendars_readwrite(world: World, client: TestClient) -> None:
    response = client.post(
        f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=app_headers(world, "Calendars.Read")
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ErrorAccessDenied"


def test_delegated_write_to_shared_mailbox_needs_shared_scope_and_membership(world: World, client: TestClient) -> None:
    url = f"/v1.0/users/{INTERVIEWS}/events"
    assert client.post(url, json=booking(), headers=delegated(world, MEGAN, ["Calendars.ReadWrite"])).status_code == 403
    ok = client.post(url, json=booking(), headers=delegated(world, MEGAN, ["Calendars.ReadWrite.Shared"]))
    assert ok.status_code == 201
    # Alex is not in the recruiting group.
    assert (
        client.post(url, json=booking(), headers=delegated(world, ALEX, ["Calendars.ReadWrite.Shared"])).status_code
        == 403
    )
    read = client.get(
        f"/v1.0/users/{INTERVIEWS}/calendarView",
        params={"startDateTime": f"{DAY}T00:00:00Z", "endDateTime": f"{DAY}T23:00:00Z"},
        headers=delegated(world, MEGAN, ["Calendars.Read.Shared"]),
    )
    assert read.status_code == 200 and len(read.json()["value"]) == 1


def test_invalid_time_zone_is_rejected(world: World, client: TestClient) -> None:
    body = booking(start={"dateTime": f"{DAY}T10:00:00", "timeZone": "Mars/Olympus"})
    response = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=body, headers=app_headers(world))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "TimeZoneNotSupportedException"


# ---- controls ----------------------------------------------------------------------------------------
def test_controls_attendee_responses_and_proposals(
    world: World, client: TestClient, changes: list[tuple[str, str, str, str]]
) -> None:
    created = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=app_headers(world)).json()
    changes.clear()
    controls.tentatively_accept(world, created["id"], ALEX)
    assert changes and all(kind == "updated" for *_, kind, _ in changes)
    start = datetime(2030, 3, 4, 15, tzinfo=UTC)
    end = datetime(2030, 3, 4, 16, tzinfo=UTC)
    controls.propose_new_time(world, created["id"], ALEX, start, end)
    event = client.get(f"/v1.0/users/{INTERVIEWS}/events/{created['id']}", headers=app_headers(world)).json()
    alex = event["attendees"][0]
    assert alex["status"]["response"] == "tentativelyAccepted"
    assert alex["proposedNewTime"]["start"]["dateTime"] == "2030-03-04T15:00:00.0000000"
    controls.decline(world, created["id"], ALEX)
    assert not [e for e in world.mailbox_events(uid(world, ALEX)) if e.ical_uid == created["iCalUId"]]
    assert "deleted" in {kind for *_, kind, _ in changes}


def test_controls_over_http_move_edit_delete_and_add(
    world: World, client: TestClient, changes: list[tuple[str, str, str, str]]
) -> None:
    added = client.post(
        f"/_control/graph/mailboxes/{DIEGO}/events",
        json={
            "subject": "Dentist",
            "sensitivity": "private",
            "start": {"dateTime": f"{DAY}T08:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{DAY}T09:00:00", "timeZone": "UTC"},
        },
    )
    assert added.status_code == 201
    event_id = added.json()["id"]
    moved = client.post(
        f"/_control/graph/events/{event_id}/move",
        json={
            "start": {"dateTime": f"{DAY}T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{DAY}T11:00:00", "timeZone": "UTC"},
        },
    )
    assert moved.json()["start"].startswith(f"{DAY}T10:00:00")
    assert (
        client.patch(f"/_control/graph/events/{event_id}", json={"subject": "Dentist (edited)"}).json()["subject"]
        == "Dentist (edited)"
    )
    listed = client.get(f"/_control/graph/mailboxes/{DIEGO}/events").json()["value"]
    assert any(e["id"] == event_id for e in listed)
    assert client.delete(f"/_control/graph/events/{event_id}").status_code == 204
    assert [kind for _, _, kind, eid in changes if eid == event_id] == ["created", "updated", "updated", "deleted"]
    assert client.delete(f"/_control/graph/events/{event_id}").status_code == 404


def test_control_respond_over_http(world: World, client: TestClient) -> None:
    created = client.post(f"/v1.0/users/{INTERVIEWS}/events", json=booking(), headers=app_headers(world)).json()
    answer = client.post(
        f"/_control/graph/events/{created['id']}/respond",
        json={
            "attendee": ALEX,
            "response": "declined",
            "proposedNewTime": {
                "start": {"dateTime": f"{DAY}T18:00:00", "timeZone": "UTC"},
                "end": {"dateTime": f"{DAY}T19:00:00", "timeZone": "UTC"},
            },
        },
    )
    assert answer.status_code == 200
    assert answer.json()["attendees"][0] == {"address": ALEX, "response": "declined"}
    bad = client.post(f"/_control/graph/events/{created['id']}/respond", json={"attendee": ALEX, "response": "maybe"})
    assert bad.status_code == 400
