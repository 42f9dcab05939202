"""PATCH /mailboxSettings and GET /mailboxSettings/{setting} of the local Graph, custom time zones included."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from devtools.cloud.graph.testing import app_only, delegated
from devtools.cloud.state import World

MEGAN = "megan.bowen@contoso.example"
ALEX = "alex.wilber@contoso.example"
MIRIAM = "miriam.graham@contoso.example"
TOM = "tom.ochieng@fabrikam.example"

# Example 2 of user-update-mailboxsettings.md, as documented.
CUSTOM = {
    "@odata.type": "#microsoft.graph.customTimeZone",
    "bias": -300,
    "name": "Customized Time Zone",
    "standardOffset": {"time": "02:00:00.0000000", "dayOccurrence": 2, "dayOfWeek": "Sunday", "month": 10, "year": 0},
    "daylightOffset": {
        "daylightBias": 100,
        "time": "02:00:00.0000000",
        "dayOccurrence": 4,
        "dayOfWeek": "Sunday",
        "month": 5,
        "year": 0,
    },
}


def patch(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], path: str = "/v1.0/me/mailboxSettings"
) -> Any:
    return client.patch(path, json=body, headers=headers)


def test_patch_working_hours_with_a_custom_zone_returns_the_updated_properties(
    world: World, client: TestClient
) -> None:
    headers = delegated(world, MEGAN, ["MailboxSettings.ReadWrite"])
    body = {
        "workingHours": {
            "endTime": "18:30:00.0000000",
            "daysOfWeek": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
            "timeZone": CUSTOM,
        }
    }
    response = patch(client, headers, body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["@odata.context"].endswith("/mailboxSettings")
    assert set(payload) == {"@odata.context", "workingHours"}  # only what was updated
    hours = payload["workingHours"]
    assert hours["daysOfWeek"] == ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    assert hours["startTime"] == "08:00:00.0000000"  # kept: not in the request
    assert hours["endTime"] == "18:30:00.0000000"
    assert hours["timeZone"]["@odata.type"] == "#microsoft.graph.customTimeZone"
    assert hours["timeZone"]["bias"] == -300
    assert hours["timeZone"]["daylightOffset"]["dayOfWeek"] == "sunday"
    assert hours["timeZone"]["daylightOffset"]["daylightBias"] == 100

    again = client.get("/v1.0/me/mailboxSettings/workingHours", headers=headers)
    assert again.status_code == 200
    assert again.json()["@odata.context"].endswith("/mailboxSettings/workingHours")
    assert {k: v for k, v in again.json().items() if k != "@odata.context"} == hours


def test_single_settings_read_as_documented(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["MailboxSettings.Read"])
    zone = client.get(f"/v1.0/users/{MIRIAM}/mailboxSettings/timeZone", headers=headers)
    assert zone.status_code == 200
    assert zone.json()["value"] == "AUS Eastern Standard Time"
    assert zone.json()["@odata.context"].endswith(f"users('{MIRIAM}')/mailboxSettings/timeZone")
    hours = client.get(f"/v1.0/users/{MIRIAM}/mailboxSettings/workingHours", headers=headers).json()
    assert hours["timeZone"]["@odata.type"] == "#microsoft.graph.customTimeZone"
    assert client.get(f"/v1.0/users/{MIRIAM}/mailboxSettings/workinghours", headers=headers).status_code == 200
    unknown = client.get(f"/v1.0/users/{MIRIAM}/mailboxSettings/favouriteColour", headers=headers)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "Resource not found for the segment 'favouriteColour'."


def test_patch_needs_mailbox_settings_read_write(world: World, client: TestClient) -> None:
    read_only = delegated(world, MEGAN, ["MailboxSettings.Read"])
    response = patch(client, read_only, {"timeZone": "UTC"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ErrorAccessDenied"
    app_read = app_only(world, "contoso.example", ["MailboxSettings.Read"])
    assert patch(client, app_read, {"timeZone": "UTC"}, f"/v1.0/users/{ALEX}/mailboxSettings").status_code == 403


def test_app_only_patch_sets_any_users_hours_and_zone_and_get_schedule_shows_them(
    world: World, client: TestClient
) -> None:
    headers = app_only(world, "contoso.example", ["MailboxSettings.ReadWrite", "Calendars.Read"])
    body = {
        "timeZone": "Asia/Tokyo",
        "workingHours": {"startTime": "07:00", "endTime": "15:00:00", "timeZone": {"name": "Tokyo Standard Time"}},
    }
    response = patch(client, headers, body, f"/v1.0/users/{ALEX}/mailboxSettings")
    assert response.status_code == 200, response.text
    assert response.json()["timeZone"] == "Asia/Tokyo"
    assert response.json()["workingHours"]["startTime"] == "07:00:00.0000000"
    schedule = client.post(
        f"/v1.0/users/{ALEX}/calendar/getSchedule",
        json={
            "schedules": [ALEX],
            "startTime": {"dateTime": "2030-03-04T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2030-03-05T00:00:00", "timeZone": "UTC"},
        },
        headers=headers,
    ).json()
    assert schedule["value"][0]["workingHours"]["timeZone"] == {"name": "Tokyo Standard Time"}
    assert schedule["value"][0]["workingHours"]["startTime"] == "07:00:00.0000000"


def test_delegated_patch_of_someone_elses_settings_is_denied(world: World, client: TestClient) -> None:
    headers = delegated(world, MEGAN, ["MailboxSettings.ReadWrite"])
    response = patch(client, headers, {"timeZone": "UTC"}, f"/v1.0/users/{ALEX}/mailboxSettings")
    assert response.status_code == 403


def test_patch_of_another_tenants_user_is_error_invalid_user(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["MailboxSettings.ReadWrite"])
    response = patch(client, headers, {"timeZone": "UTC"}, f"/v1.0/users/{TOM}/mailboxSettings")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ErrorInvalidUser"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"workingHours": {"startTime": "08"}}, "RequestBodyRead"),
        ({"workingHours": {"startTime": "18:00:00", "endTime": "09:00:00"}}, "ErrorInvalidTimeSettings"),
        ({"workingHours": {"daysOfWeek": ["RandomDay"]}}, "InvalidArguments"),
        ({"workingHours": {"timeZone": {"name": "Mars Standard Time"}}}, "InvalidTimeZone"),
        ({"workingHours": {"timeZone": {**CUSTOM, "standardOffset": {"month": 13}}}}, "InvalidTimeZone"),
        ({"timeZone": "Atlantis/Capital"}, "InvalidTimeZone"),
        ({"archiveFolder": "x"}, "RequestBodyRead"),
    ],
)
def test_patch_refuses_what_graph_documents_as_errors(
    world: World, client: TestClient, body: dict[str, Any], code: str
) -> None:
    headers = delegated(world, MEGAN, ["MailboxSettings.ReadWrite"])
    before = client.get("/v1.0/me/mailboxSettings", headers=headers).json()
    response = patch(client, headers, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert client.get("/v1.0/me/mailboxSettings", headers=headers).json() == before


def test_patch_of_the_mailbox_zone_accepts_windows_and_iana_names(world: World, client: TestClient) -> None:
    headers = delegated(world, MEGAN, ["MailboxSettings.ReadWrite"])
    for name in ("W. Europe Standard Time", "Europe/Berlin", "Asia/Kolkata"):
        response = patch(client, headers, {"timeZone": name})
        assert response.status_code == 200
        assert client.get("/v1.0/me/mailboxSettings/timeZone", headers=headers).json()["value"] == name
