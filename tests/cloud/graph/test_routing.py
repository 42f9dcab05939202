"""Graph's front door in the local cloud: JSON errors for what is not modelled, names matched without case."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from devtools.cloud.graph import controls
from devtools.cloud.graph.routing import canonical_query_string, unknown_segment
from devtools.cloud.graph.testing import app_only, delegated
from devtools.cloud.state import World

ALEX = "alex.wilber@contoso.example"
MEGAN = "megan.bowen@contoso.example"


def assert_graph_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("/v1.0/nothingHere", "nothingHere"),
        ("/v1.0/me/nothingHere", "nothingHere"),
        (f"/v1.0/users/{ALEX}/calendar/nothingHere", "nothingHere"),
        ("/v1.0/me/events/AAMk/nothingHere/deeper", "nothingHere"),
        ("/beta/me/nothingHere", "nothingHere"),
    ],
)
def test_a_path_nothing_models_is_graphs_bad_request_naming_the_segment(
    world: World, client: TestClient, path: str, segment: str
) -> None:
    response = client.get(path, headers=delegated(world, MEGAN, ["Calendars.Read"]))
    error = assert_graph_error(response, 400, "BadRequest")
    assert error["message"] == f"Resource not found for the segment '{segment}'."


def test_an_unknown_path_still_needs_a_token(client: TestClient) -> None:
    response = client.get("/v1.0/nothingHere")
    assert response.status_code == 401
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1.0/me/calendarView"),
        ("PUT", "/v1.0/me/mailboxSettings"),
        ("GET", "/v1.0/me/calendar/getSchedule"),
    ],
)
def test_a_method_a_known_path_does_not_take_is_a_json_405(
    world: World, client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, headers=delegated(world, MEGAN, ["Calendars.Read"]))
    assert_graph_error(response, 405, "Request_BadRequest")
    assert response.headers["allow"]


def test_unmodelled_paths_are_json_errors_inside_a_batch(world: World, client: TestClient) -> None:
    headers = delegated(world, MEGAN, ["Calendars.Read"])
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/me/nothingHere"},
            {"id": "2", "method": "DELETE", "url": "/me/calendarView"},
            {
                "id": "3",
                "method": "GET",
                "url": "/me/calendarview?startdatetime=2030-03-04T00:00:00Z&ENDDATETIME=2030-03-05T00:00:00Z",
            },
        ]
    }
    response = client.post("/v1.0/$batch", json=batch, headers=headers)
    assert response.status_code == 200
    results = {r["id"]: r for r in response.json()["responses"]}
    assert results["1"]["status"] == 400
    assert results["1"]["body"]["error"]["message"] == "Resource not found for the segment 'nothingHere'."
    assert results["2"]["status"] == 405
    assert results["2"]["body"]["error"]["code"] == "Request_BadRequest"
    assert results["3"]["status"] == 200 and isinstance(results["3"]["body"]["value"], list)


@pytest.mark.parametrize(
    "names", [("startDateTime", "endDateTime"), ("startdatetime", "enddatetime"), ("STARTDATETIME", "EndDateTime")]
)
def test_calendar_view_window_names_match_without_case(
    world: World, client: TestClient, names: tuple[str, str]
) -> None:
    controls.add_event(
        world,
        ALEX,
        {
            "subject": "Probe",
            "start": {"dateTime": "2030-03-03T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-03-03T11:00:00", "timeZone": "UTC"},
        },
    )
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    params = {names[0]: "2030-03-03T00:00:00Z", names[1]: "2030-03-04T00:00:00Z", "$SELECT": "subject"}
    response = client.get(f"/v1.0/users/{ALEX}/calendarView", params=params, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["value"]
    assert [i["subject"] for i in items] == ["Probe"]
    assert {k for k in items[0] if not k.startswith("@")} == {"id", "subject"}  # $SELECT applied


def test_delta_window_names_match_without_case_and_links_use_one_spelling(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    response = client.get(
        f"/v1.0/users/{ALEX}/calendarView/delta?startdatetime=2030-03-04T00:00:00Z&enddatetime=2030-03-05T00:00:00Z",
        headers=headers,
    )
    assert response.status_code == 200, response.text
    link = response.json()["@odata.deltaLink"]
    assert "startdatetime" not in link
    assert client.get(link, headers=headers).status_code == 200


def test_path_segments_match_without_case(world: World, client: TestClient) -> None:
    headers = delegated(world, MEGAN, ["MailboxSettings.Read", "Calendars.Read"])
    assert client.get("/v1.0/ME/MailboxSettings", headers=headers).status_code == 200
    response = client.get(
        "/v1.0/me/calendarview?startDateTime=2030-03-04T00:00:00Z&endDateTime=2030-03-05T00:00:00Z", headers=headers
    )
    assert response.status_code == 200, response.text


def test_canonical_query_string_rewrites_only_known_names() -> None:
    raw = b"STARTDATETIME=a&%24Select=b&other=C&$TOP=3&startDateTime=x"
    assert canonical_query_string(raw) == b"startDateTime=a&$select=b&other=C&$top=3&startDateTime=x"


def test_unknown_segment_names_the_first_segment_no_template_knows() -> None:
    templates = ["/v1.0/users/{user}/calendar/getSchedule", "/v1.0/me/events/{event}"]
    assert unknown_segment("/v1.0/users/x/calendar/foo", templates) == "foo"
    assert unknown_segment("/v1.0/groups/x", templates) == "groups"
