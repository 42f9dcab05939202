"""Graph JSON batching of the local cloud, dispatched in-process to a recording downstream app."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from devtools.cloud import tokens
from devtools.cloud.graph import batch, switches
from devtools.cloud.graph.testing import app_only
from devtools.cloud.state import World
from tests.cloud.world_support import small_world

TENANT = "11111111-1111-4111-8111-111111111111"
APP = "aaaaaaaa-0000-4000-8000-000000000001"
ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"


class Downstream:
    """Graph-like routes that record order and per-mailbox concurrency of the requests they serve."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.active: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)
        self.overlap = False
        self.authorizations: list[str] = []

    async def user(self, request: Request) -> Response:
        user_id = request.path_params["id"]
        self.order.append(request.url.path)
        self.authorizations.append(request.headers.get("authorization", ""))
        self.active[user_id] += 1
        self.peak[user_id] = max(self.peak[user_id], self.active[user_id])
        self.overlap = self.overlap or sum(1 for n in self.active.values() if n) > 1
        await asyncio.sleep(0.05)
        self.active[user_id] -= 1
        return JSONResponse({"id": user_id, "query": request.url.query})

    async def missing(self, request: Request) -> Response:
        self.order.append(request.url.path)
        body = {"error": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}}
        return JSONResponse(body, status_code=404)

    async def echo(self, request: Request) -> Response:
        self.order.append(request.url.path)
        return JSONResponse(
            {"contentType": request.headers.get("content-type"), "body": (await request.body()).decode()},
            status_code=201,
        )

    async def throttled(self, request: Request) -> Response:
        body = {"error": {"code": "TooManyRequests", "message": "Too many requests. Please try again later."}}
        return JSONResponse(body, status_code=429, headers={"Retry-After": "7"})

    async def crash(self, request: Request) -> Response:
        raise RuntimeError("handler bug")

    def routes(self) -> list[Route]:
        return [
            Route("/v1.0/users/{id}", self.user, methods=["GET"]),
            Route("/v1.0/users/{id}/missing", self.missing, methods=["GET"]),
            Route("/v1.0/users/{id}/events", self.echo, methods=["POST"]),
            Route("/v1.0/users/{id}/calendar/getSchedule", self.throttled, methods=["POST"]),
            Route("/v1.0/crash", self.crash, methods=["GET"]),
        ]


@pytest.fixture()
def world() -> World:
    return small_world({TENANT: "contoso.example"}, [(TENANT, ALICE, "alice"), (TENANT, BOB, "bob")], [APP])


@pytest.fixture()
def downstream() -> Downstream:
    return Downstream()


@pytest.fixture()
def client(world: World, downstream: Downstream) -> Iterator[TestClient]:
    app = Starlette(routes=[*batch.routes(world), *downstream.routes()])
    with TestClient(app, base_url="https://graph.local") as test_client:
        yield test_client


@pytest.fixture()
def auth(world: World) -> dict[str, str]:
    token = tokens.issue_access_token(world, tenant_id=TENANT, client_id=APP, roles={"Calendars.ReadWrite"})
    return {"Authorization": f"Bearer {token}"}


def post_batch(client: TestClient, auth: dict[str, str], requests: list[dict[str, Any]]) -> Any:
    return client.post("/v1.0/$batch", json={"requests": requests}, headers=auth)


def by_id(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {r["id"]: r for r in response.json()["responses"]}


def test_batch_returns_one_response_per_request_with_status_headers_and_body(
    client: TestClient, auth: dict[str, str], downstream: Downstream
) -> None:
    response = post_batch(
        client,
        auth,
        [
            {"id": "1", "method": "GET", "url": f"/users/{ALICE}?$select=id"},
            {"id": "2", "method": "GET", "url": f"users/{BOB}/missing"},
            {
                "id": "3",
                "method": "POST",
                "url": f"/users/{ALICE}/events",
                "body": {"subject": "Interview"},
                "headers": {"Content-Type": "application/json"},
            },
        ],
    )

    results = by_id(response)
    assert results["1"]["status"] == 200
    assert results["1"]["body"] == {"id": ALICE, "query": "$select=id"}
    assert results["1"]["headers"]["content-type"] == "application/json"
    assert results["2"]["status"] == 404
    assert results["2"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert results["3"]["status"] == 201
    assert results["3"]["body"] == {"contentType": "application/json", "body": '{"subject": "Interview"}'}
    # The batch's own token reached every request.
    assert set(downstream.authorizations) == {auth["Authorization"]}


def test_dependents_of_a_failed_request_fail_with_424(
    client: TestClient, auth: dict[str, str], downstream: Downstream
) -> None:
    response = post_batch(
        client,
        auth,
        [
            {"id": "1", "method": "GET", "url": f"/users/{ALICE}"},
            {"id": "2", "method": "GET", "url": f"/users/{ALICE}/missing", "dependsOn": ["1"]},
            {"id": "3", "method": "GET", "url": f"/users/{BOB}", "dependsOn": ["2"]},
        ],
    )

    results = by_id(response)
    assert [results[i]["status"] for i in ("1", "2", "3")] == [200, 404, 424]
    assert results["3"]["body"]["error"]["code"] == "FailedDependency"
    assert downstream.order == [f"/v1.0/users/{ALICE}", f"/v1.0/users/{ALICE}/missing"]  # 3 never ran


def test_sequential_batch_runs_in_dependency_order(
    client: TestClient, auth: dict[str, str], downstream: Downstream
) -> None:
    response = post_batch(
        client,
        auth,
        [
            {"id": "1", "method": "GET", "url": "/users/u1"},
            {"id": "2", "method": "GET", "url": "/users/u2", "dependsOn": ["1"]},
            {"id": "4", "method": "GET", "url": "/users/u4", "dependsOn": ["2"]},
            {"id": "3", "method": "GET", "url": "/users/u3", "dependsOn": ["4"]},
        ],
    )

    assert {r["status"] for r in by_id(response).values()} == {200}
    assert downstream.order == ["/v1.0/users/u1", "/v1.0/users/u2", "/v1.0/users/u4", "/v1.0/users/u3"]


def test_more_than_twenty_requests_are_rejected(
    client: TestClient, auth: dict[str, str], downstream: Downstream
) -> None:
    response = post_batch(client, auth, [{"id": str(i), "method": "GET", "url": f"/users/u{i}"} for i in range(21)])

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert downstream.order == []
    assert (
        post_batch(
            client, auth, [{"id": str(i), "method": "GET", "url": f"/users/u{i}"} for i in range(20)]
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"value": []}',
        b'{"requests": []}',
        (
            b'{"requests": [{"id": "a", "method": "GET", "url": "/users/x"},'
            b' {"id": "A", "method": "GET", "url": "/users/y"}]}'
        ),
        b'{"requests": [{"id": "1", "method": "GET", "url": "/users/x", "dependsOn": ["9"]}]}',
        b'{"requests": [{"id": "1", "url": "/users/x"}]}',
        # 1 and 2 could run side by side, 3 after both: neither fully parallel nor fully sequential.
        (
            b'{"requests": [{"id": "1", "method": "GET", "url": "/users/x"},'
            b' {"id": "2", "method": "GET", "url": "/users/y"},'
            b' {"id": "3", "method": "GET", "url": "/users/z", "dependsOn": ["1", "2"]}]}'
        ),
    ],
    ids=["not-json", "no-requests", "empty", "duplicate-id", "unknown-dependency", "no-method", "mixed-order"],
)
def test_malformed_batches_are_rejected_with_400(client: TestClient, auth: dict[str, str], payload: bytes) -> None:
    response = client.post("/v1.0/$batch", content=payload, headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


def test_body_without_content_type_fails_only_that_request(client: TestClient, auth: dict[str, str]) -> None:
    response = post_batch(
        client,
        auth,
        [
            {"id": "1", "method": "POST", "url": f"/users/{ALICE}/events", "body": {"subject": "x"}},
            {"id": "2", "method": "GET", "url": f"/users/{ALICE}"},
        ],
    )

    results = by_id(response)
    assert results["1"]["status"] == 400
    assert results["1"]["body"]["error"]["code"] == "BadRequest"
    assert results["2"]["status"] == 200


def test_throttled_request_answers_429_inside_a_successful_batch(client: TestClient, auth: dict[str, str]) -> None:
    response = post_batch(
        client,
        auth,
        [
            {
                "id": "1",
                "method": "POST",
                "url": f"/users/{ALICE}/calendar/getSchedule",
                "body": {},
                "headers": {"Content-Type": "application/json"},
            },
            {"id": "2", "method": "GET", "url": f"/users/{ALICE}"},
        ],
    )

    results = by_id(response)
    assert results["1"]["status"] == 429
    assert results["1"]["headers"]["retry-after"] == "7"
    assert results["2"]["status"] == 200


def test_unhandled_error_in_one_request_is_its_own_500(client: TestClient, auth: dict[str, str]) -> None:
    results = by_id(
        post_batch(
            client,
            auth,
            [
                {"id": "1", "method": "GET", "url": "/crash"},
                {"id": "2", "method": "GET", "url": f"/users/{BOB}"},
            ],
        )
    )

    assert results["1"]["status"] == 500 and results["2"]["status"] == 200


def test_at_most_four_requests_per_mailbox_run_at_once(
    client: TestClient, auth: dict[str, str], downstream: Downstream
) -> None:
    requests = [{"id": f"a{i}", "method": "GET", "url": f"/users/{ALICE}"} for i in range(10)]
    requests += [{"id": f"b{i}", "method": "GET", "url": "/users/bob@contoso.example"} for i in range(6)]

    results = by_id(post_batch(client, auth, requests))

    assert len(results) == 16 and {r["status"] for r in results.values()} == {200}
    assert downstream.peak[ALICE] == 4
    assert downstream.peak["bob@contoso.example"] == 4  # UPN and id name the same mailbox for the cap
    assert downstream.overlap  # different mailboxes still run side by side


def test_batch_needs_a_valid_token(client: TestClient, downstream: Downstream) -> None:
    response = client.post("/v1.0/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/users/x"}]})

    assert response.status_code == 401
    assert downstream.order == []


# ---- through the real Graph pipeline: throttling and the four-concurrent-requests limit -----------
CONTOSO = "9ede9f80-1655-48eb-ac0c-abec2d7295a7"
ADELE = "8e715cdf-74d3-409b-8145-2916038342f1"
MEGAN = "3a951ec0-b92d-4737-8162-6bf6abc5f3c5"


def test_throttling_applies_to_each_request_of_a_batch(graph_client: TestClient, graph_world: World) -> None:
    switches.set_throttle(graph_world, count=1, retry_after=3, mailbox_id=ADELE)
    auth = app_only(graph_world, CONTOSO, ["Calendars.Read"])

    response = post_batch(
        graph_client,
        auth,
        [
            {"id": "1", "method": "GET", "url": f"/users/{ADELE}/events?$select=subject"},
            {"id": "2", "method": "GET", "url": f"/users/{ADELE}/events?$select=subject"},
            {"id": "3", "method": "GET", "url": f"/users/{MEGAN}/events?$select=subject"},
        ],
    )

    results = by_id(response)
    statuses = sorted(results[i]["status"] for i in ("1", "2"))
    assert statuses == [200, 429]
    throttled = next(r for r in results.values() if r["status"] == 429)
    assert throttled["headers"]["retry-after"] == "3"
    assert throttled["body"]["error"]["code"] == "TooManyRequests"
    assert results["3"]["status"] == 200


def test_a_batch_alone_never_trips_the_mailbox_concurrency_limit(graph_client: TestClient, graph_world: World) -> None:
    switches.set_latency(graph_world, 0.1)  # keeps every request's mailbox slot busy for a while
    auth = app_only(graph_world, CONTOSO, ["Calendars.Read"])
    requests = [{"id": str(i), "method": "GET", "url": f"/users/{ADELE}/events?$top=1"} for i in range(12)]

    started = time.monotonic()
    results = by_id(post_batch(graph_client, auth, requests))
    elapsed = time.monotonic() - started

    assert {r["status"] for r in results.values()} == {200}
    assert elapsed >= 0.3  # 12 requests, four at a time, 0.1 s each


def test_batch_requests_keep_the_callers_permissions(graph_client: TestClient, graph_world: World) -> None:
    auth = app_only(graph_world, CONTOSO, ["Calendars.Read"])

    results = by_id(
        post_batch(
            graph_client,
            auth,
            [
                {
                    "id": "1",
                    "method": "POST",
                    "url": f"/users/{ADELE}/events",
                    "headers": {"Content-Type": "application/json"},
                    "body": {
                        "subject": "x",
                        "start": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
                        "end": {"dateTime": "2030-01-07T11:00:00", "timeZone": "UTC"},
                    },
                },
                {"id": "2", "method": "GET", "url": "/users/nobody@contoso.example/events"},
            ],
        )
    )

    assert results["1"]["status"] == 403  # Calendars.Read cannot write
    assert results["2"]["status"] == 404
