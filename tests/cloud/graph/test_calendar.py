"""getSchedule, calendarView and calendarView/delta of the local Graph, with recurrence and time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from devtools.cloud.graph import controls
from devtools.cloud.graph.fixtures import current_monday
from devtools.cloud.graph.testing import app_only, delegated
from devtools.cloud.state import World

ALEX = "alex.wilber@contoso.example"
MEGAN = "megan.bowen@contoso.example"
DIEGO = "diego.siciliani@contoso.example"
LIDIA = "lidia.holloway@contoso.example"
JOHANNA = "johanna.lorenz@contoso.example"
TOM = "tom.ochieng@fabrikam.example"
DAY = "2030-03-03"  # a Sunday, far from the fixture weeks and clear of their weekday series
PT = "Pacific Standard Time"


def at(clock: str, tz: str = "UTC", day: str = DAY) -> dict[str, str]:
    return {"dateTime": f"{day}T{clock}:00", "timeZone": tz}


def add(world: World, mailbox: str, subject: str, start: str, end: str, tz: str = PT, **extra: Any) -> str:
    return controls.add_event(
        world, mailbox, {"subject": subject, "start": at(start, tz), "end": at(end, tz), **extra}
    ).id


def schedule(
    client: TestClient,
    headers: dict[str, str],
    body: dict[str, Any],
    *,
    tz: str | None = None,
    path: str = "/v1.0/me/calendar/getSchedule",
) -> Any:
    if tz:
        headers = {**headers, "Prefer": f'outlook.timezone="{tz}"'}
    return client.post(path, json=body, headers=headers)


def first_as_app(world: World, client: TestClient, body: dict[str, Any]) -> Any:
    """The first scheduleInformation of an app-only getSchedule (through Megan's mailbox)."""
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    return schedule(client, headers, body, path=f"/v1.0/users/{MEGAN}/calendar/getSchedule").json()["value"][0]


# ---- getSchedule -----------------------------------------------------------------------------------
def test_get_schedule_matches_the_documented_shape_and_view(world: World, client: TestClient) -> None:
    add(world, ALEX, "Busy block", "09:00", "10:00", location={"displayName": "Room 1"})
    add(world, ALEX, "Maybe", "11:00", "11:30", showAs="tentative")
    add(world, ALEX, "Away", "13:00", "14:00", showAs="oof")
    add(world, ALEX, "Elsewhere", "15:00", "16:00", showAs="workingElsewhere")
    body = {
        "schedules": [ALEX],
        "startTime": at("08:00", PT),
        "endTime": at("17:00", PT),
        "availabilityViewInterval": 60,
    }
    response = schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body, tz=PT)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["@odata.context"].endswith("$metadata#Collection(microsoft.graph.scheduleInformation)")
    info = payload["value"][0]
    assert info["scheduleId"] == ALEX
    # 08 free, 09 busy, 10 free, 11 tentative, 12 free, 13 oof, 14 free, 15 working elsewhere (0), 16 free
    assert info["availabilityView"] == "020103000"
    first = info["scheduleItems"][0]
    # Alex shares details with Megan: subject/location/isPrivate of a normal event are shown.
    assert first == {
        "isPrivate": False,
        "status": "busy",
        "subject": "Busy block",
        "location": "Room 1",
        "start": {"dateTime": f"{DAY}T09:00:00.0000000", "timeZone": PT},
        "end": {"dateTime": f"{DAY}T10:00:00.0000000", "timeZone": PT},
    }
    assert [i["status"] for i in info["scheduleItems"]] == ["busy", "tentative", "oof", "workingElsewhere"]
    assert info["workingHours"]["daysOfWeek"][0] == "monday"
    assert info["workingHours"]["timeZone"] == {"name": PT}


def test_get_schedule_hides_details_without_a_share_and_for_private_events(world: World, client: TestClient) -> None:
    add(world, ALEX, "Doctor", "09:00", "10:00", sensitivity="private")
    add(world, ALEX, "Kids", "10:00", "11:00", sensitivity="personal")
    add(world, JOHANNA, "Crit", "09:00", "10:00")
    body = {"schedules": [ALEX, JOHANNA], "startTime": at("08:00", PT), "endTime": at("12:00", PT)}
    values = schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body).json()["value"]
    alex, johanna = values
    assert set(alex["scheduleItems"][0]) == {"status", "start", "end"}  # private
    assert alex["scheduleItems"][1]["subject"] == "Kids"  # personal, shared with Megan
    assert set(johanna["scheduleItems"][0]) == {"status", "start", "end"}  # Johanna shares nothing with Megan
    # default time zone of the output is UTC
    assert alex["scheduleItems"][0]["start"] == {"dateTime": f"{DAY}T17:00:00.0000000", "timeZone": "UTC"}
    # default interval 30 minutes over 4 hours
    assert len(alex["availabilityView"]) == 8


def test_get_schedule_owner_sees_own_details_and_app_only_sees_none(world: World, client: TestClient) -> None:
    add(world, ALEX, "Mine", "09:00", "10:00")
    body = {"schedules": [ALEX], "startTime": at("08:00", PT), "endTime": at("12:00", PT)}
    own = schedule(client, delegated(world, ALEX, ["Calendars.Read"]), body).json()["value"][0]
    assert own["scheduleItems"][0]["subject"] == "Mine"
    app = first_as_app(world, client, body)
    assert set(app["scheduleItems"][0]) == {"status", "start", "end"}


def test_get_schedule_unknown_and_foreign_users_get_an_error_item(world: World, client: TestClient) -> None:
    body = {"schedules": ["nobody@contoso.example", TOM], "startTime": at("08:00"), "endTime": at("09:00")}
    values = schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body).json()["value"]
    for value, address in zip(values, ["nobody@contoso.example", TOM], strict=True):
        assert value["scheduleId"] == address
        assert set(value) == {"scheduleId", "error"}
        assert set(value["error"]) == {"message", "responseCode"}


@pytest.mark.dates
def test_get_schedule_expands_recurring_fixture_events(world: World, client: TestClient) -> None:
    monday = current_monday(PT) + timedelta(days=7)  # next week: the standup recurs every weekday
    body = {
        "schedules": [ALEX],
        "startTime": at("09:00", PT, monday.isoformat()),
        "endTime": at("10:00", PT, monday.isoformat()),
        "availabilityViewInterval": 15,
    }
    info = schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body).json()["value"][0]
    standup = [i for i in info["scheduleItems"] if i.get("subject") == "Team standup"]
    assert len(standup) == 1
    assert info["availabilityView"][2] in "12"  # 09:30-09:45 taken


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"schedules": [f"u{i}@contoso.example" for i in range(21)]}, "20"),
        ({"endTime": at("08:00", "UTC", "2030-05-06")}, "62 days"),
        ({"availabilityViewInterval": 4}, "availabilityViewInterval"),
        ({"availabilityViewInterval": 1441}, "availabilityViewInterval"),
    ],
)
def test_get_schedule_limits(world: World, client: TestClient, patch: dict[str, Any], fragment: str) -> None:
    body = {"schedules": [ALEX], "startTime": at("08:00"), "endTime": at("09:00"), **patch}
    response = schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_get_schedule_window_just_under_62_days_is_fine(world: World, client: TestClient) -> None:
    start = datetime(2030, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=61, hours=23)
    body = {
        "schedules": [ALEX],
        "availabilityViewInterval": 1440,
        "startTime": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "endTime": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    }
    response = schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body)
    assert response.status_code == 200
    assert len(response.json()["value"][0]["availabilityView"]) == 62


def test_get_schedule_needs_only_calendars_read(world: World, client: TestClient) -> None:
    body = {"schedules": [ALEX], "startTime": at("08:00"), "endTime": at("09:00")}
    assert schedule(client, delegated(world, MEGAN, ["User.Read"]), body).status_code == 403
    assert schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body).status_code == 200


# ---- calendarView -----------------------------------------------------------------------------------
def view(client: TestClient, headers: dict[str, str], path: str, start: str, end: str, **params: str) -> Any:
    return client.get(path, params={"startDateTime": start, "endDateTime": end, **params}, headers=headers)


def test_calendar_view_requires_the_window(world: World, client: TestClient) -> None:
    response = client.get(
        f"/v1.0/users/{ALEX}/calendarView", headers=app_only(world, "contoso.example", ["Calendars.Read"])
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ErrorInvalidParameter"


def test_calendar_view_bounds_use_their_offset_not_prefer(world: World, client: TestClient) -> None:
    add(world, ALEX, "Early", "08:00", "09:00")  # 16:00-17:00 UTC
    headers = {
        **app_only(world, "contoso.example", ["Calendars.Read"]),
        "Prefer": 'outlook.timezone="Pacific Standard Time"',
    }
    # Without an offset the bounds are UTC: 15:00-16:00 UTC does not reach the event.
    miss = view(client, headers, f"/v1.0/users/{ALEX}/calendarView", f"{DAY}T15:00:00", f"{DAY}T16:00:00").json()
    assert miss["value"] == []
    hit = view(client, headers, f"/v1.0/users/{ALEX}/calendarView", f"{DAY}T08:30:00-08:00", f"{DAY}T08:45:00-08:00")
    body = hit.json()
    assert [e["subject"] for e in body["value"]] == ["Early"]
    assert body["value"][0]["start"] == {"dateTime": f"{DAY}T08:00:00.0000000", "timeZone": PT}
    assert hit.headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'


def test_calendar_view_event_has_the_documented_properties(world: World, client: TestClient) -> None:
    add(world, ALEX, "Props", "08:00", "09:00")
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    event = view(client, headers, f"/v1.0/users/{ALEX}/calendarView", f"{DAY}T00:00:00Z", f"{DAY}T23:59:59Z").json()[
        "value"
    ][0]
    for key in (
        "@odata.etag",
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "originalStartTimeZone",
        "iCalUId",
        "subject",
        "bodyPreview",
        "importance",
        "sensitivity",
        "isAllDay",
        "isCancelled",
        "isOrganizer",
        "responseRequested",
        "seriesMasterId",
        "showAs",
        "type",
        "webLink",
        "responseStatus",
        "body",
        "start",
        "end",
        "location",
        "locations",
        "recurrence",
        "attendees",
        "organizer",
        "isOnlineMeeting",
        "onlineMeetingProvider",
    ):
        assert key in event, key
    assert "transactionId" not in event
    assert event["type"] == "singleInstance"
    assert event["responseStatus"] == {"response": "organizer", "time": "0001-01-01T00:00:00Z"}
    assert event["organizer"]["emailAddress"]["address"] == ALEX
    assert event["@odata.etag"] == f'W/"{event["changeKey"]}"'


def test_calendar_view_expands_daily_weekly_and_monthly_series(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    controls.add_event(
        world,
        DIEGO,
        {
            "subject": "Daily",
            "start": at("09:00", "W. Europe Standard Time", "2030-03-04"),
            "end": at("09:15", "W. Europe Standard Time", "2030-03-04"),
            "recurrence": {
                "pattern": {"type": "daily", "interval": 2},
                "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 3},
            },
        },
    )
    controls.add_event(
        world,
        DIEGO,
        {
            "subject": "Weekly",
            "start": at("10:00", "W. Europe Standard Time", "2030-03-05"),
            "end": at("11:00", "W. Europe Standard Time", "2030-03-05"),
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday", "thursday"]},
                "range": {"type": "endDate", "startDate": "2030-03-05", "endDate": "2030-04-02"},
            },
        },
    )
    controls.add_event(
        world,
        DIEGO,
        {
            "subject": "Monthly",
            "start": at("12:00", "W. Europe Standard Time", "2030-01-15"),
            "end": at("13:00", "W. Europe Standard Time", "2030-01-15"),
            "recurrence": {
                "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15},
                "range": {"type": "noEnd", "startDate": "2030-01-15"},
            },
        },
    )
    items = view(
        client,
        headers,
        f"/v1.0/users/{DIEGO}/calendarView",
        "2030-03-01T00:00:00Z",
        "2030-04-30T00:00:00Z",
        **{"$top": "100"},
    ).json()["value"]
    mine = [i for i in items if i["subject"] in ("Daily", "Weekly", "Monthly")]
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for item in mine:
        by_subject.setdefault(item["subject"], []).append(item)
    assert [i["start"]["dateTime"][:16] for i in by_subject["Daily"]] == [
        "2030-03-04T08:00",
        "2030-03-06T08:00",
        "2030-03-08T08:00",
    ]
    # Tuesdays and Thursdays from 5 March to 2 April: 9 occurrences; the clock follows CET -> CEST on 31 March.
    weekly = [i["start"]["dateTime"][:16] for i in by_subject["Weekly"]]
    assert len(weekly) == 9 and weekly[0] == "2030-03-05T09:00" and weekly[-1] == "2030-04-02T08:00"
    assert [i["start"]["dateTime"][:10] for i in by_subject["Monthly"]] == ["2030-03-15", "2030-04-15"]
    occurrence = by_subject["Daily"][0]
    assert occurrence["type"] == "occurrence"
    assert occurrence["seriesMasterId"] and occurrence["recurrence"] is None
    master = client.get(f"/v1.0/users/{DIEGO}/events/{occurrence['seriesMasterId']}", headers=headers).json()
    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["pattern"]["type"] == "daily"
    single = client.get(f"/v1.0/users/{DIEGO}/events/{occurrence['id']}", headers=headers).json()
    assert single["id"] == occurrence["id"] and single["type"] == "occurrence"


def test_calendar_view_pages_with_maxpagesize_select_and_orderby(world: World, client: TestClient) -> None:
    for hour in range(8, 13):
        add(world, LIDIA, f"Slot {hour}", f"{hour:02d}:00", f"{hour:02d}:30", tz="UTC")
    headers = {**app_only(world, "contoso.example", ["Calendars.Read"]), "Prefer": "odata.maxpagesize=2"}
    response = view(
        client,
        headers,
        f"/v1.0/users/{LIDIA}/calendar/calendarView",
        f"{DAY}T00:00:00Z",
        f"{DAY}T23:00:00Z",
        **{"$select": "subject,start", "$orderby": "start/dateTime desc"},
    )
    assert response.headers["Preference-Applied"] == "odata.maxpagesize=2"
    body = response.json()
    subjects = [e["subject"] for e in body["value"]]
    assert set(body["value"][0]) == {"@odata.etag", "id", "subject", "start"}
    link = body.get("@odata.nextLink")
    while link:
        page = client.get(link, headers=headers).json()
        assert len(page["value"]) <= 2
        subjects += [e["subject"] for e in page["value"]]
        link = page.get("@odata.nextLink")
    assert subjects == [f"Slot {h}" for h in range(12, 7, -1)]


def test_calendar_view_by_calendar_id(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    calendars = client.get(f"/v1.0/users/{ALEX}/calendars", headers=headers).json()["value"]
    cid = calendars[0]["id"]
    assert client.get(f"/v1.0/users/{ALEX}/calendar", headers=headers).json()["id"] == cid
    add(world, ALEX, "In calendar", "08:00", "09:00")
    ok = view(
        client, headers, f"/v1.0/users/{ALEX}/calendars/{cid}/calendarView", f"{DAY}T00:00:00Z", f"{DAY}T23:00:00Z"
    )
    assert [e["subject"] for e in ok.json()["value"]] == ["In calendar"]
    missing = view(
        client, headers, f"/v1.0/users/{ALEX}/calendars/nope/calendarView", f"{DAY}T00:00:00Z", f"{DAY}T23:00:00Z"
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ErrorItemNotFound"


# ---- delta ----------------------------------------------------------------------------------------
def sync(client: TestClient, headers: dict[str, str], url: str) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        body = client.get(url, headers=headers).json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]
        assert "$skiptoken=" in url


def test_delta_initial_pages_then_only_changes(world: World, client: TestClient) -> None:
    headers = {**app_only(world, "contoso.example", ["Calendars.Read"]), "Prefer": "odata.maxpagesize=3"}
    ids = [add(world, LIDIA, f"D{i}", f"{8 + i:02d}:00", f"{8 + i:02d}:30", tz="UTC") for i in range(5)]
    start_url = f"/v1.0/users/{LIDIA}/calendarView/delta?startDateTime={DAY}T00:00:00Z&endDateTime={DAY}T23:00:00Z"
    items, delta_link = sync(client, headers, start_url)
    assert sorted(i["id"] for i in items) == sorted(ids)
    assert "$deltatoken=" in delta_link
    empty, delta_link = sync(client, headers, delta_link)
    assert empty == []
    controls.edit_event(world, ids[0], {"subject": "D0 renamed"})
    controls.delete_event(world, ids[1])
    new_id = add(world, LIDIA, "D5", "20:00", "20:30", tz="UTC")
    outside = controls.add_event(
        world,
        LIDIA,
        {"subject": "Next day", "start": at("10:00", "UTC", "2030-03-04"), "end": at("10:30", "UTC", "2030-03-04")},
    ).id
    changes, delta_link = sync(client, headers, delta_link)
    by_id = {c["id"]: c for c in changes}
    assert outside not in by_id
    assert by_id[ids[0]]["subject"] == "D0 renamed"
    assert by_id[ids[1]]["@removed"] == {"reason": "deleted"}
    assert by_id[new_id]["subject"] == "D5"
    assert ids[2] not in by_id


def test_invalidated_delta_token_is_410_with_location(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    start_url = f"/v1.0/users/{LIDIA}/calendarView/delta?startDateTime={DAY}T00:00:00Z&endDateTime={DAY}T23:00:00Z"
    _, delta_link = sync(client, headers, start_url)
    controls.invalidate_delta_tokens(world, LIDIA)
    gone = client.get(delta_link, headers=headers)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "resyncRequired"
    restart = gone.headers["Location"]
    assert "startDateTime=" in restart and "$deltatoken" not in restart
    again, _ = sync(client, headers, restart)
    assert isinstance(again, list)


def test_a_series_edited_in_place_is_expanded_anew_in_the_same_window(world: World) -> None:
    # Occurrences are remembered per series content and window: an edit that changes the series in place
    # (its range here) must not be answered from what was remembered before it.
    from devtools.cloud.graph import store

    event = controls.add_event(
        world,
        DIEGO,
        {
            "subject": "Stand-up",
            "start": at("09:00", "W. Europe Standard Time", "2030-03-04"),
            "end": at("09:15", "W. Europe Standard Time", "2030-03-04"),
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 5},
            },
        },
    )
    window = (datetime(2030, 3, 1, tzinfo=UTC), datetime(2030, 3, 31, tzinfo=UTC))
    assert len(list(store.expand(event, *window))) == 5
    assert len(list(store.expand(event, *window))) == 5
    assert event.recurrence is not None
    event.recurrence["range"]["numberOfOccurrences"] = 2
    assert len(list(store.expand(event, *window))) == 2


def test_get_schedule_answers_anew_after_any_change_to_a_calendar(world: World, client: TestClient) -> None:
    # What a person's items look like is remembered per calendar content: a change through Graph, a change
    # made to the event in place, a new event and a deleted one are each seen by the very next answer.
    from devtools.cloud.graph import store

    body = {
        "schedules": [ALEX],
        "startTime": at("08:00", PT),
        "endTime": at("17:00", PT),
        "availabilityViewInterval": 60,
    }
    headers = delegated(world, MEGAN, ["Calendars.Read"])

    def items() -> list[tuple[str, str, str]]:
        info = schedule(client, headers, body, tz=PT).json()["value"][0]
        return [(i["status"], i.get("subject", ""), i["start"]["dateTime"][11:16]) for i in info["scheduleItems"]]

    first = add(world, ALEX, "Sync", "09:00", "10:00")
    assert items() == [("busy", "Sync", "09:00")]
    assert items() == [("busy", "Sync", "09:00")]  # asked again: the same
    owner = delegated(world, ALEX, ["Calendars.ReadWrite"])
    moved = client.patch(
        f"/v1.0/me/events/{first}", json={"start": at("11:00", PT), "end": at("12:00", PT)}, headers=owner
    )
    assert moved.status_code == 200, moved.text
    assert items() == [("busy", "Sync", "11:00")]
    world.events[first].show_as = "tentative"  # in place, without the store
    world.events[first].subject = "Renamed"
    assert items() == [("tentative", "Renamed", "11:00")]
    second = add(world, ALEX, "Lunch", "12:30", "13:00")
    assert items() == [("tentative", "Renamed", "11:00"), ("busy", "Lunch", "12:30")]
    store.delete_event(world, world.events[second])
    assert items() == [("tentative", "Renamed", "11:00")]


def test_get_schedule_remembers_answers_per_viewer(world: World, client: TestClient) -> None:
    # The same calendar asked by one who may see details and by one who may not: each gets their own.
    add(world, ALEX, "Board review", "09:00", "10:00")
    body = {"schedules": [ALEX], "startTime": at("08:00", PT), "endTime": at("17:00", PT)}
    for _ in range(2):
        shared = schedule(client, delegated(world, MEGAN, ["Calendars.Read"]), body).json()["value"][0]
        hidden = first_as_app(world, client, body)
        assert shared["scheduleItems"][0]["subject"] == "Board review"
        assert "subject" not in hidden["scheduleItems"][0]
