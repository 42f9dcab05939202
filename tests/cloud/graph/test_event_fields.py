"""Event properties the local Graph keeps as sent (reminders, time proposals, hidden attendees, location
address and coordinates), the onlineMeetingInfo of Teams meetings, and the meeting-drop switch."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from devtools.cloud.graph import controls
from devtools.cloud.graph.testing import app_only
from devtools.cloud.state import World

ALEX = "alex.wilber@contoso.example"
INTERVIEWS = "interviews@contoso.example"
DAY = "2030-03-04"
EVENTS = f"/v1.0/users/{INTERVIEWS}/events"


def headers(world: World) -> dict[str, str]:
    return app_only(world, "contoso.example", ("Calendars.ReadWrite",))


def event_body(**extra: Any) -> dict[str, Any]:
    return {
        "subject": "Interview: Sam Candidate",
        "start": {"dateTime": f"{DAY}T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{DAY}T11:00:00", "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": ALEX}, "type": "required"}],
        **extra,
    }


def teams(**extra: Any) -> dict[str, Any]:
    return event_body(isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness", **extra)


def create(client: TestClient, world: World, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(EVENTS, json=body, headers=headers(world))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def patch(client: TestClient, world: World, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.patch(f"{EVENTS}/{event_id}", json=body, headers=headers(world))
    assert response.status_code == 200, response.text
    patched: dict[str, Any] = response.json()
    return patched


def get(client: TestClient, world: World, event_id: str) -> dict[str, Any]:
    response = client.get(f"{EVENTS}/{event_id}", headers=headers(world))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def moved(hour: int) -> dict[str, Any]:
    return {
        "start": {"dateTime": f"{DAY}T{hour:02d}:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{DAY}T{hour + 1:02d}:00:00", "timeZone": "UTC"},
    }


# ---- stored as sent ---------------------------------------------------------------------------------
def test_reminder_time_proposals_and_hidden_attendees_are_stored_as_sent(world: World, client: TestClient) -> None:
    created = create(
        client,
        world,
        event_body(
            allowNewTimeProposals=False,
            reminderMinutesBeforeStart=30,
            isReminderOn=False,
            responseRequested=False,
            hideAttendees=True,
        ),
    )
    for seen in (created, get(client, world, created["id"])):
        assert seen["allowNewTimeProposals"] is False
        assert seen["reminderMinutesBeforeStart"] == 30
        assert seen["isReminderOn"] is False
        assert seen["responseRequested"] is False
        assert seen["hideAttendees"] is True

    patched = patch(client, world, created["id"], {"allowNewTimeProposals": True, "reminderMinutesBeforeStart": 5})
    assert patched["allowNewTimeProposals"] is True and patched["reminderMinutesBeforeStart"] == 5
    assert patched["isReminderOn"] is False and patched["hideAttendees"] is True  # not sent: unchanged


def test_defaults_are_the_documented_ones(world: World, client: TestClient) -> None:
    created = create(client, world, event_body())
    assert created["allowNewTimeProposals"] is True
    assert created["reminderMinutesBeforeStart"] == 15 and created["isReminderOn"] is True
    assert created["hideAttendees"] is False and created["responseRequested"] is True


def test_a_bad_reminder_or_flag_is_refused(world: World, client: TestClient) -> None:
    for bad in ({"reminderMinutesBeforeStart": "15"}, {"reminderMinutesBeforeStart": -1}, {"allowNewTimeProposals": 1}):
        response = client.post(EVENTS, json=event_body(**bad), headers=headers(world))
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "ErrorInvalidRequest"


def test_attendee_copies_carry_the_organizers_time_proposal_setting(world: World, client: TestClient) -> None:
    created = create(client, world, event_body(allowNewTimeProposals=False))
    alex = controls.resolve_user(world, ALEX)
    copy = next(e for e in world.mailbox_events(alex.id) if e.ical_uid == created["iCalUId"])
    assert copy.allow_new_time_proposals is False


def test_a_proposal_is_refused_when_the_organizer_allows_none(world: World, client: TestClient) -> None:
    created = create(client, world, event_body(allowNewTimeProposals=False))
    alex = controls.resolve_user(world, ALEX)
    copy = next(e for e in world.mailbox_events(alex.id) if e.ical_uid == created["iCalUId"])
    proposal = {
        "proposedNewTime": {
            "start": {"dateTime": f"{DAY}T14:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{DAY}T15:00:00", "timeZone": "UTC"},
        }
    }
    response = client.post(
        f"/v1.0/users/{ALEX}/events/{copy.id}/tentativelyAccept", json=proposal, headers=headers(world)
    )
    assert response.status_code == 400
    assert world.events[created["id"]].attendees[0].response == "none"


# ---- location -----------------------------------------------------------------------------------------
ADDRESS = {
    "street": "1 Microsoft Way",
    "city": "Redmond",
    "state": "WA",
    "countryOrRegion": "United States",
    "postalCode": "98052",
}
COORDINATES = {"latitude": 47.6396, "longitude": -122.1283}


def test_location_address_and_coordinates_are_kept_on_create_patch_and_get(world: World, client: TestClient) -> None:
    location = {"displayName": "Building 92", "address": ADDRESS, "coordinates": COORDINATES}
    created = create(client, world, event_body(location=location))
    assert created["location"]["address"] == ADDRESS
    assert created["location"]["coordinates"] == COORDINATES
    assert created["locations"][0]["address"] == ADDRESS
    assert get(client, world, created["id"])["location"]["address"] == ADDRESS

    other = {**ADDRESS, "street": "2 Microsoft Way"}
    patched = patch(client, world, created["id"], {"location": {"displayName": "Building 93", "address": other}})
    assert patched["location"]["displayName"] == "Building 93"
    assert patched["location"]["address"] == other
    assert "coordinates" not in patched["location"]  # the location was replaced as a whole

    # a PATCH of something else leaves the location alone
    assert patch(client, world, created["id"], {"subject": "Renamed"})["location"]["address"] == other


def test_an_unknown_address_field_is_refused(world: World, client: TestClient) -> None:
    location = {"displayName": "Somewhere", "address": {**ADDRESS, "planet": "Earth"}}
    response = client.post(EVENTS, json=event_body(location=location), headers=headers(world))
    assert response.status_code == 400


# ---- online meetings ----------------------------------------------------------------------------------
def test_a_teams_meeting_carries_the_documented_online_meeting_fields(world: World, client: TestClient) -> None:
    created = create(client, world, teams())
    meeting = created["onlineMeeting"]
    assert set(meeting) == {"joinUrl", "conferenceId", "tollNumber", "tollFreeNumbers", "quickDial", "phones"}
    assert meeting["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert meeting["conferenceId"].isdigit()
    assert meeting["quickDial"].endswith(f",,{meeting['conferenceId']}#")
    assert meeting["tollNumber"] and meeting["tollFreeNumbers"]
    assert {p["number"] for p in meeting["phones"]} == {meeting["tollNumber"], *meeting["tollFreeNumbers"]}
    assert created["onlineMeetingUrl"] is None  # Teams meetings: read onlineMeeting.joinUrl instead
    assert created["isOnlineMeeting"] is True and created["onlineMeetingProvider"] == "teamsForBusiness"


def test_is_online_meeting_false_is_ignored_once_a_meeting_exists(world: World, client: TestClient) -> None:
    created = create(client, world, teams())
    patched = patch(client, world, created["id"], {"isOnlineMeeting": False, "onlineMeetingProvider": "unknown"})
    assert patched["isOnlineMeeting"] is True
    assert patched["onlineMeetingProvider"] == "teamsForBusiness"
    assert patched["onlineMeeting"]["joinUrl"] == created["onlineMeeting"]["joinUrl"]


def test_without_the_switch_a_move_keeps_the_meeting(world: World, client: TestClient) -> None:
    created = create(client, world, teams())
    patched = patch(client, world, created["id"], moved(14))
    assert patched["onlineMeeting"]["joinUrl"] == created["onlineMeeting"]["joinUrl"]


def test_the_drop_switch_loses_the_meeting_on_a_move_and_a_restore_brings_the_same_join_url(
    world: World, client: TestClient
) -> None:
    created = create(client, world, teams())
    join_url = created["onlineMeeting"]["joinUrl"]
    controls.drop_online_meetings(world, count=1, mailbox=INTERVIEWS)

    # a PATCH that does not move the event does not use up the switch
    assert patch(client, world, created["id"], {"subject": "Renamed"})["onlineMeeting"]["joinUrl"] == join_url

    dropped = patch(client, world, created["id"], moved(14))
    assert dropped["isOnlineMeeting"] is False and dropped["onlineMeeting"] is None
    assert get(client, world, created["id"])["onlineMeeting"] is None
    alex = controls.resolve_user(world, ALEX)
    copy = next(e for e in world.mailbox_events(alex.id) if e.ical_uid == created["iCalUId"])
    assert copy.online_meeting is None  # attendees lose the link too

    restored = patch(
        client, world, created["id"], {"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}
    )
    assert restored["isOnlineMeeting"] is True
    assert restored["onlineMeeting"]["joinUrl"] == join_url
    assert copy.join_url == join_url

    # the switch was for one PATCH only
    assert patch(client, world, created["id"], moved(16))["onlineMeeting"]["joinUrl"] == join_url


def test_a_deleted_meeting_is_restored_with_a_new_join_url(world: World, client: TestClient) -> None:
    created = create(client, world, teams())
    controls.drop_online_meetings(world, count=2, delete=True)

    patch(client, world, created["id"], moved(14))
    restored = patch(client, world, created["id"], {"isOnlineMeeting": True})
    assert restored["onlineMeeting"]["joinUrl"] != created["onlineMeeting"]["joinUrl"]

    again = patch(client, world, created["id"], moved(15))
    assert again["onlineMeeting"] is None


def test_the_drop_switch_over_the_control_api(world: World, client: TestClient) -> None:
    created = create(client, world, teams())
    response = client.post("/_control/graph/switches/meeting-drop", json={"count": 1, "mailbox": INTERVIEWS})
    assert response.status_code == 204
    assert patch(client, world, created["id"], moved(9))["onlineMeeting"] is None
    assert client.delete("/_control/graph/switches").status_code == 204
    assert world.switches.meeting_drops == {}
