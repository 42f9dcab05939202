"""Failure switches of the local Graph: throttling, faults, latency, access policies, on-premises mailboxes,
and Outlook's four-concurrent-requests-per-mailbox limit."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.testclient import TestClient

from devtools.cloud.graph import controls
from devtools.cloud.graph.testing import app_only, delegated, graph_app
from devtools.cloud.state import World

ALEX = "alex.wilber@contoso.example"
MEGAN = "megan.bowen@contoso.example"
NESTOR = "nestor.wilke@contoso.example"  # mailbox on premises in the directory fixture
VIEW = {"startDateTime": "2030-03-03T00:00:00Z", "endDateTime": "2030-03-04T00:00:00Z"}


def read(world: World) -> dict[str, str]:
    return app_only(world, "contoso.example", ["Calendars.Read", "User.Read.All"])


def test_throttle_next_requests_with_retry_after(world: World, client: TestClient) -> None:
    controls.throttle(world, count=2, retry_after=3)
    for _ in range(2):
        response = client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world))
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json()["error"]["code"] == "TooManyRequests"
    assert client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).status_code == 200


def test_throttle_one_mailbox_leaves_others_alone(world: World, client: TestClient) -> None:
    controls.throttle(world, count=1, retry_after=2.5, mailbox=ALEX)
    assert client.get(f"/v1.0/users/{MEGAN}/calendarView", params=VIEW, headers=read(world)).status_code == 200
    assert client.get("/v1.0/users", headers=read(world)).status_code == 200
    throttled = client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world))
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2.5"
    assert client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_faults_answer_the_chosen_5xx(world: World, client: TestClient, status: int) -> None:
    controls.fail(world, count=1, status=status)
    response = client.get("/v1.0/users", headers=read(world))
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "innerError"}
    assert client.get("/v1.0/users", headers=read(world)).status_code == 200


def test_fault_for_one_mailbox(world: World, client: TestClient) -> None:
    controls.fail(world, count=1, status=503, mailbox=ALEX)
    assert client.get(f"/v1.0/users/{MEGAN}/calendarView", params=VIEW, headers=read(world)).status_code == 200
    assert client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).status_code == 503


def test_application_access_policy_blocks_app_only_access(world: World, client: TestClient) -> None:
    controls.block_mailbox(world, ALEX)
    blocked = client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world))
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "ErrorAccessDenied"
    assert blocked.json()["error"]["message"] == "Access to OData is disabled."
    # delegated access is not scoped by application access policies
    own = client.get("/v1.0/me/calendarView", params=VIEW, headers=delegated(world, ALEX, ["Calendars.Read"]))
    assert own.status_code == 200
    controls.block_mailbox(world, ALEX, blocked=False)
    assert client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).status_code == 200


def test_on_premises_mailbox_is_unreachable_but_still_in_the_directory(world: World, client: TestClient) -> None:
    assert client.get(f"/v1.0/users/{NESTOR}", headers=read(world)).status_code == 200
    response = client.get(f"/v1.0/users/{NESTOR}/calendarView", params=VIEW, headers=read(world))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    info = client.post(
        f"/v1.0/users/{MEGAN}/calendar/getSchedule",
        headers=read(world),
        json={
            "schedules": [NESTOR],
            "startTime": {"dateTime": "2030-03-03T08:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2030-03-03T09:00:00", "timeZone": "UTC"},
        },
    ).json()["value"][0]
    assert info["error"]["responseCode"] == "MailboxNotEnabledForRESTAPI"
    controls.set_on_premises(world, ALEX)
    assert client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).status_code == 404


def test_latency_is_added_to_each_request(world: World, client: TestClient) -> None:
    controls.set_latency(world, 0.3)
    started = time.monotonic()
    assert client.get("/v1.0/users", headers=read(world)).status_code == 200
    assert time.monotonic() - started >= 0.3


def _concurrent(world: World, mailbox: str, count: int, headers: dict[str, str]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=graph_app(world))
        async with httpx.AsyncClient(transport=transport, base_url="https://graph.local") as http:
            return list(
                await asyncio.gather(
                    *[
                        http.get(f"/v1.0/users/{mailbox}/calendarView", params=VIEW, headers=headers)
                        for _ in range(count)
                    ]
                )
            )

    return asyncio.run(run())


def test_fifth_concurrent_request_to_one_mailbox_is_application_throttled(world: World) -> None:
    controls.set_latency(world, 0.5)
    responses = _concurrent(world, ALEX, 5, read(world))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 200, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.json()["error"]["code"] == "ApplicationThrottled"
    assert throttled.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
    assert "Retry-After" in throttled.headers
    # slots are released afterwards
    assert [r.status_code for r in _concurrent(world, ALEX, 4, read(world))] == [200] * 4


def test_concurrency_is_per_mailbox_and_per_app(world: World) -> None:
    controls.set_latency(world, 0.4)
    other_app = app_only(world, "contoso.example", ["Calendars.Read"], client_id="00000000-0000-4000-8000-00000000beef")

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=graph_app(world))
        async with httpx.AsyncClient(transport=transport, base_url="https://graph.local") as http:
            calls = [http.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)) for _ in range(4)]
            calls.append(http.get(f"/v1.0/users/{MEGAN}/calendarView", params=VIEW, headers=read(world)))
            calls.append(http.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=other_app))
            return list(await asyncio.gather(*calls))

    assert [r.status_code for r in asyncio.run(run())] == [200] * 6


def test_concurrency_limit_can_be_switched_off(world: World) -> None:
    controls.set_latency(world, 0.3)
    controls.enforce_mailbox_concurrency(world, False)
    assert [r.status_code for r in _concurrent(world, ALEX, 6, read(world))] == [200] * 6


def test_switches_over_http(world: World, client: TestClient) -> None:
    assert (
        client.post(
            "/_control/graph/switches/throttle", json={"count": 1, "retryAfter": 7, "mailbox": ALEX}
        ).status_code
        == 204
    )
    assert (
        client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).headers["Retry-After"] == "7"
    )
    assert client.post("/_control/graph/switches/faults", json={"count": 1, "status": 502}).status_code == 204
    assert client.get("/v1.0/users", headers=read(world)).status_code == 502
    assert client.post("/_control/graph/switches/access-policy", json={"mailbox": ALEX}).status_code == 204
    assert client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).status_code == 403
    assert client.post("/_control/graph/switches/on-premises", json={"mailbox": MEGAN}).status_code == 204
    assert client.get(f"/v1.0/users/{MEGAN}/calendarView", params=VIEW, headers=read(world)).status_code == 404
    assert client.post("/_control/graph/switches/latency", json={"seconds": 0.2}).status_code == 204
    assert world.switches.latency_seconds == 0.2
    assert client.post("/_control/graph/switches/mailbox-concurrency", json={"enforce": False}).status_code == 204
    assert world.switches.enforce_mailbox_concurrency is False
    assert client.delete("/_control/graph/switches").status_code == 204
    assert client.get(f"/v1.0/users/{ALEX}/calendarView", params=VIEW, headers=read(world)).status_code == 200
    assert world.switches.latency_seconds == 0.0 and world.switches.enforce_mailbox_concurrency is True
    assert client.post("/_control/graph/switches/faults", json={"count": 1, "status": 404}).status_code == 400
    assert (
        client.post("/_control/graph/switches/access-policy", json={"mailbox": "nobody@contoso.example"}).status_code
        == 404
    )


def test_delta_invalidation_over_http(world: World, client: TestClient) -> None:
    first = client.get(f"/v1.0/users/{ALEX}/calendarView/delta", params=VIEW, headers=read(world)).json()
    link = first.get("@odata.deltaLink") or first["@odata.nextLink"]
    assert client.post("/_control/graph/delta/invalidate", json={}).status_code == 204
    gone = client.get(link, headers=read(world))
    assert gone.status_code == 410
    assert gone.headers["Location"]


def test_get_schedule_counts_against_the_callers_own_mailbox_and_429s_are_counted(world: World) -> None:
    controls.set_latency(world, 0.5)
    megan = delegated(world, MEGAN, ["Calendars.Read"])
    before = controls.request_counts(world)
    body = {
        "schedules": [ALEX],
        "startTime": {"dateTime": "2030-03-03T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2030-03-04T00:00:00", "timeZone": "UTC"},
    }

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=graph_app(world))
        async with httpx.AsyncClient(transport=transport, base_url="https://graph.local") as http:
            # Five reads of five different people's free/busy: all count against Megan's own mailbox.
            calls = [http.post("/v1.0/me/calendar/getSchedule", json=body, headers=megan) for _ in range(5)]
            return list(await asyncio.gather(*calls))

    responses = asyncio.run(run())
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.json()["error"]["code"] == "ApplicationThrottled"
    assert float(throttled.headers["Retry-After"]) > 0
    after = controls.request_counts(world)
    assert after["answered"] - before["answered"] == 5
    assert after["throttled"] - before["throttled"] == 1
