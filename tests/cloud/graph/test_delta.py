"""calendarView/delta of the local Graph as a busy cache uses it (app token on another user's mailbox,
paging, removals, 410 on unusable tokens) and the request log tests and benchmarks count calls with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from devtools.cloud.graph import controls
from devtools.cloud.graph.odata import encode_token
from devtools.cloud.graph.testing import SERVICE_CLIENT_ID, app_only, delegated
from devtools.cloud.state import World

LIDIA = "lidia.holloway@contoso.example"
DIEGO = "diego.siciliani@contoso.example"
ALEX = "alex.wilber@contoso.example"
TOM = "tom.ochieng@fabrikam.example"
DAY = "2030-03-03"  # a Sunday clear of the fixture series
WINDOW = f"startDateTime={DAY}T00:00:00Z&endDateTime={DAY}T23:00:00Z"


def at(clock: str, day: str = DAY) -> dict[str, str]:
    return {"dateTime": f"{day}T{clock}:00", "timeZone": "UTC"}


def add(world: World, mailbox: str, subject: str, start: str, end: str, **extra: Any) -> str:
    return controls.add_event(world, mailbox, {"subject": subject, "start": at(start), "end": at(end), **extra}).id


def sync(client: TestClient, headers: dict[str, str], url: str) -> tuple[list[dict[str, Any]], str, int]:
    """Follow every nextLink to the deltaLink: (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def test_app_token_reads_another_users_delta_with_maxpagesize_pages(world: World, client: TestClient) -> None:
    headers = {**app_only(world, "contoso.example", ["Calendars.Read"]), "Prefer": "odata.maxpagesize=2"}
    ids = [add(world, LIDIA, f"D{i}", f"{8 + i:02d}:00", f"{8 + i:02d}:30") for i in range(5)]
    first = client.get(f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}", headers=headers)
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=2"
    assert len(first.json()["value"]) == 2 and "@odata.nextLink" in first.json()
    items, delta_link, pages = sync(client, headers, f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}")
    assert pages == 3
    assert sorted(i["id"] for i in items) == sorted(ids)
    assert all(i["@odata.type"] == "#microsoft.graph.event" for i in items)


@pytest.mark.parametrize("roles", [["Calendars.ReadWrite"], ["Calendars.Read"]])
def test_delta_needs_an_application_calendars_permission(world: World, client: TestClient, roles: list[str]) -> None:
    url = f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}"
    assert client.get(url, headers=app_only(world, "contoso.example", roles)).status_code == 200
    denied = client.get(url, headers=app_only(world, "contoso.example", ["MailboxSettings.Read"]))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "ErrorAccessDenied"
    # A delegated token of someone else without a share is refused too; a tenant wall stands for apps.
    other = client.get(url, headers=delegated(world, ALEX, ["Calendars.Read"]))
    assert other.status_code == 403
    foreign = client.get(
        f"/v1.0/users/{TOM}/calendarView/delta?{WINDOW}", headers=app_only(world, "contoso.example", roles)
    )
    assert foreign.status_code == 404


def test_delta_names_removed_items_including_ones_moved_out_of_the_window(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    kept = add(world, LIDIA, "Kept", "08:00", "08:30")
    moved_out = add(world, LIDIA, "Moved out", "09:00", "09:30")
    deleted = add(world, LIDIA, "Deleted", "10:00", "10:30")
    _, link, _ = sync(client, headers, f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}")
    controls.move_event(world, moved_out, datetime(2030, 3, 5, 9, tzinfo=UTC), datetime(2030, 3, 5, 9, 30, tzinfo=UTC))
    controls.delete_event(world, deleted)
    changes, next_link, _ = sync(client, headers, link)
    by_id = {c["id"]: c for c in changes}
    assert by_id[moved_out]["@removed"] == {"reason": "deleted"}
    assert by_id[deleted]["@removed"] == {"reason": "deleted"}
    assert kept not in by_id
    # The same link followed twice brings the same changes twice; the new link brings none.
    again, _, _ = sync(client, headers, link)
    assert again == changes
    assert sync(client, headers, next_link)[0] == []


def test_moving_a_series_removes_its_old_occurrences(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    window = "startDateTime=2030-03-04T00:00:00Z&endDateTime=2030-03-09T00:00:00Z"
    series = controls.add_event(
        world,
        DIEGO,
        {
            "subject": "Daily",
            "start": at("09:00", "2030-03-04"),
            "end": at("09:30", "2030-03-04"),
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 3},
            },
        },
    ).id
    items, link, _ = sync(client, headers, f"/v1.0/users/{DIEGO}/calendarView/delta?{window}")
    old = {i["id"] for i in items if i.get("seriesMasterId") == series}
    assert len(old) == 3
    controls.move_event(world, series, datetime(2030, 3, 4, 14, tzinfo=UTC), datetime(2030, 3, 4, 14, 30, tzinfo=UTC))
    changes, _, _ = sync(client, headers, link)
    removed = {c["id"] for c in changes if "@removed" in c}
    current = {c["id"] for c in changes if "@removed" not in c and c.get("seriesMasterId") == series}
    assert removed == old
    assert len(current) == 3 and not current & old
    assert all(c["start"]["dateTime"][11:16] == "14:00" for c in changes if c["id"] in current)


def test_declined_meeting_leaves_the_attendees_delta(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    meeting = add(
        world,
        ALEX,
        "Panel",
        "11:00",
        "12:00",
        attendees=[{"emailAddress": {"address": LIDIA}, "type": "required"}],
    )
    items, link, _ = sync(client, headers, f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}")
    copy = next(i for i in items if i["subject"] == "Panel")
    assert copy["showAs"] == "tentative"
    controls.decline(world, meeting, LIDIA)
    changes, _, _ = sync(client, headers, link)
    assert {"id": copy["id"], "@removed": {"reason": "deleted"}}.items() <= changes[0].items()


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        encode_token({"m": "someone-else", "s": f"{DAY}T00:00:00+00:00", "e": f"{DAY}T23:00:00+00:00", "seq": 0}),
    ],
)
def test_unknown_delta_token_is_410_sync_state_not_found(world: World, client: TestClient, token: str) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    gone = client.get(f"/v1.0/users/{LIDIA}/calendarView/delta?$deltatoken={token}", headers=headers)
    assert gone.status_code == 410
    error = gone.json()["error"]
    assert error["code"] == "syncStateNotFound"
    assert "synchronized again" in error["message"]
    assert "$deltatoken" not in gone.headers["Location"]
    assert "/calendarView/delta" in gone.headers["Location"]


def test_another_mailboxs_token_is_410_and_not_read(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    add(world, DIEGO, "Diego's", "08:00", "08:30")
    _, link, _ = sync(client, headers, f"/v1.0/users/{DIEGO}/calendarView/delta?{WINDOW}")
    token = link.split("$deltatoken=")[1]
    gone = client.get(f"/v1.0/users/{LIDIA}/calendarView/delta?$deltatoken={token}", headers=headers)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "syncStateNotFound"


def test_expiring_one_mailboxs_tokens_leaves_others_and_restarts_with_the_window(
    world: World, client: TestClient
) -> None:
    headers = {**app_only(world, "contoso.example", ["Calendars.Read"]), "Prefer": "odata.maxpagesize=1"}
    add(world, LIDIA, "L1", "08:00", "08:30")
    add(world, LIDIA, "L2", "09:00", "09:30")
    add(world, DIEGO, "D1", "08:00", "08:30")
    _, lidia_link, _ = sync(client, headers, f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}")
    _, diego_link, _ = sync(client, headers, f"/v1.0/users/{DIEGO}/calendarView/delta?{WINDOW}")
    half = client.get(f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}", headers=headers).json()["@odata.nextLink"]
    controls.expire_delta_tokens(world, LIDIA, code="syncStateNotFound")
    for stale in (lidia_link, half):  # a delta link and a half-followed next link alike
        gone = client.get(stale, headers=headers)
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "syncStateNotFound"
    assert client.get(diego_link, headers=headers).status_code == 200
    restart = client.get(lidia_link, headers=headers).headers["Location"]
    items, _, _ = sync(client, headers, restart)
    assert sorted(i["subject"] for i in items) == ["L1", "L2"]
    controls.expire_delta_tokens(world)
    everyone = client.get(diego_link, headers=headers)
    assert everyone.status_code == 410 and everyone.json()["error"]["code"] == "resyncRequired"
    with pytest.raises(ValueError):
        controls.expire_delta_tokens(world, code="tokenTired")


def test_expire_control_over_http(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Calendars.Read"])
    _, link, _ = sync(client, headers, f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}")
    answer = client.post("/_control/graph/delta/invalidate", json={"mailbox": LIDIA, "code": "syncStateNotFound"})
    assert answer.status_code == 204
    assert client.get(link, headers=headers).json()["error"]["code"] == "syncStateNotFound"


# ---- request log ----------------------------------------------------------------------------------
def test_request_log_counts_per_path_and_caller_and_resets(world: World, client: TestClient) -> None:
    app = app_only(world, "contoso.example", ["Calendars.Read"])
    user = delegated(world, ALEX, ["Calendars.Read"])
    controls.reset_graph_requests(world)
    for _ in range(3):
        client.get(f"/v1.0/users/{LIDIA}/calendarView/delta?{WINDOW}", headers=app)
    client.get(f"/v1.0/me/calendarView?{WINDOW}", headers=user)
    client.get(f"/v1.0/me/calendarView?{WINDOW}")  # no token: 401, counted with no caller
    log = controls.graph_requests(world)
    assert log["total"] == 5 and log["roundTrips"] == 5
    rows = {(r["path"], r["userId"], r["clientId"]): r["count"] for r in log["requests"]}
    alex = world.find_user(world.tenant_by_id_or_domain("contoso.example").tenant_id, ALEX)  # type: ignore[union-attr]
    assert alex is not None
    assert rows[(f"/v1.0/users/{LIDIA}/calendarView/delta", None, SERVICE_CLIENT_ID)] == 3
    assert rows[("/v1.0/me/calendarView", alex.id, SERVICE_CLIENT_ID)] == 1
    assert rows[("/v1.0/me/calendarView", None, None)] == 1
    assert controls.graph_requests(world, path="calendarView/delta")["total"] == 3
    assert controls.graph_requests(world, caller=alex.id)["total"] == 1
    controls.reset_graph_requests(world)
    assert controls.graph_requests(world) == {"total": 0, "roundTrips": 0, "requests": []}


def test_request_log_tells_batched_requests_from_round_trips(world: World, client: TestClient) -> None:
    app = app_only(world, "contoso.example", ["Calendars.Read", "MailboxSettings.Read"])
    client.delete("/_control/graph/requests")
    body = {
        "requests": [
            {"id": str(i), "method": "GET", "url": f"/users/{who}/mailboxSettings/timeZone"}
            for i, who in enumerate((LIDIA, DIEGO))
        ]
    }
    assert client.post("/v1.0/$batch", json=body, headers=app).status_code == 200
    log = client.get("/_control/graph/requests").json()
    assert log["total"] == 3 and log["roundTrips"] == 1
    batched = [r for r in log["requests"] if r["batched"]]
    assert sorted(r["path"] for r in batched) == sorted(
        f"/v1.0/users/{who}/mailboxSettings/timeZone" for who in (LIDIA, DIEGO)
    )
    only_settings = client.get("/_control/graph/requests", params={"path": "mailboxSettings"}).json()
    assert only_settings["total"] == 2
    assert client.delete("/_control/graph/requests").status_code == 204
    assert client.get("/_control/graph/requests").json()["total"] == 0
