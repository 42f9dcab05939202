"""Notification delivery at Graph's documented pace, on the cloud's clock: a failed POST is resent later for
up to 4 hours, delivery stops when the subscription expires, and the handshake waits the documented 10 s.

The clock is moved (``notify.advance_clock``) rather than waited on; ``notify.deliver_now`` runs one
delivery round at the cloud's current time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from devtools.cloud import notify
from devtools.cloud.graph import subscriptions
from devtools.cloud.state import Switches, World
from tests.cloud.subscriptions_support import ALICE, TENANT_A, Behaviour, Receiver, app_token, create, in_minutes
from tests.cloud.world_support import small_world

FOUR_HOURS = 4 * 3600


@pytest.fixture()
def world() -> Iterator[World]:
    w = small_world(
        {TENANT_A: "contoso.example"}, [(TENANT_A, ALICE, "alice")], ["aaaaaaaa-0000-4000-8000-000000000001"]
    )
    # Documented timings stay as they are, except: first attempts only go out when a test delivers,
    # and a POST counts as unanswered after 0.3 s instead of 3 s (the receiver answers slowly on purpose).
    w.switches.notification_batch_delay_seconds = 3600.0
    w.switches.notification_timeout_seconds = 0.3
    yield w
    notify.stop_delivery(w)


@pytest.fixture()
def client(world: World) -> Iterator[TestClient]:
    app = Starlette(routes=[*subscriptions.routes(world), *subscriptions.control_routes(world)])
    with TestClient(app, base_url="https://graph.local") as test_client:
        yield test_client


def subscribe(client: TestClient, world: World, receiver: Receiver, minutes: float = 3 * 24 * 60) -> str:
    response = create(client, app_token(world), receiver, expirationDateTime=in_minutes(minutes))
    assert response.status_code == 201, response.text
    notify.stop_delivery(world)  # only deliver_now delivers in these tests
    sub_id: str = response.json()["id"]
    return sub_id


def test_the_documented_timings_are_the_defaults() -> None:
    switches = Switches()
    assert switches.validation_timeout_seconds == 10.0
    assert switches.notification_timeout_seconds == 3.0
    assert switches.notification_retry_window_seconds == FOUR_HOURS


def test_the_handshake_client_has_no_timeout_shorter_than_the_documented_budget() -> None:
    # httpx's own default (5 s) would cut the documented 10 s short; the budget is applied around the call.
    client = subscriptions.validation_client()
    timeout = client.timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (None, None, None, None)


def test_an_unanswered_notification_is_resent_later_and_delivered_once_the_endpoint_answers(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    receiver.behaviour["/notify"] = Behaviour(answers=[(202, 1.0), (500, 0.0), (202, 0.0)])
    subscribe(client, world, receiver)
    world.emit_change(TENANT_A, ALICE, "updated", "evt-1")

    first = notify.deliver_now(world)
    assert [(r.outcome, r.attempt, r.reason) for r in first] == [("retrying", 1, "timeout")]
    assert notify.deliver_now(world) == []  # the resend is not due yet

    notify.advance_clock(world, world.switches.notification_retry_seconds[0])
    second = notify.deliver_now(world)
    assert [(r.outcome, r.attempt, r.status) for r in second] == [("retrying", 2, 500)]

    notify.advance_clock(world, world.switches.notification_retry_seconds[1])
    third = notify.deliver_now(world)
    assert [(r.outcome, r.attempt, r.status) for r in third] == [("delivered", 3, 202)]
    posts = receiver.notifications("/notify")
    assert len(posts) == 3 and posts[0].json() == posts[2].json()
    assert notify.pending_count(world) == 0


def test_a_notification_is_resent_for_up_to_four_hours_then_discarded(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    receiver.behaviour["/notify"] = Behaviour(answers=[(503, 0.0)])
    subscribe(client, world, receiver)
    queued_at = world.now()
    world.emit_change(TENANT_A, ALICE, "updated", "evt-1")

    records = notify.deliver_now(world)
    while notify.pending_count(world):
        notify.advance_clock(world, 600)
        records += notify.deliver_now(world)

    outcomes = [r.outcome for r in records]
    assert outcomes[-1] == "dropped" and set(outcomes[:-1]) == {"retrying"}
    assert len(records) > 5  # resent many times, not once
    attempts_at = [r.at - queued_at for r in records]
    assert all(at <= timedelta(seconds=FOUR_HOURS) for at in attempts_at[:-1])
    assert attempts_at[-1] >= timedelta(seconds=FOUR_HOURS) - timedelta(seconds=600 + 900)
    assert len(receiver.notifications("/notify")) == len(records)


def test_delivery_stops_when_the_subscription_expires(client: TestClient, world: World, receiver: Receiver) -> None:
    receiver.behaviour["/notify"] = Behaviour(answers=[(500, 0.0)])
    sub_id = subscribe(client, world, receiver, minutes=60)
    world.emit_change(TENANT_A, ALICE, "updated", "evt-1")
    assert [r.outcome for r in changes(notify.deliver_now(world))] == ["retrying"]

    notify.advance_clock(world, 61 * 60)
    records = changes(notify.deliver_now(world))

    assert [(r.outcome, r.reason) for r in records] == [("dropped", "subscriptionGone")]
    assert len(receiver.notifications("/notify")) == 1
    assert client.get(f"/v1.0/subscriptions/{sub_id}", headers=app_token(world)).status_code == 404
    world.emit_change(TENANT_A, ALICE, "updated", "evt-2")
    assert changes(notify.deliver_now(world)) == [] and notify.pending_count(world) == 0


def changes(records: list[notify.DeliveryRecord]) -> list[notify.DeliveryRecord]:
    # A subscription this close to expiry also gets its reauthorizationRequired lifecycle notification.
    return [r for r in records if r.kind == "change"]


def test_the_clock_and_a_delivery_round_over_the_control_api(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    receiver.behaviour["/notify"] = Behaviour(answers=[(500, 0.0), (202, 0.0)])
    subscribe(client, world, receiver)
    world.emit_change(TENANT_A, ALICE, "created", "evt-1")
    before = world.now()

    assert client.post("/_control/subscriptions/deliver").json()["pending"] == 1
    moved = client.post("/_control/clock/advance", json={"advanceSeconds": 3600})
    assert moved.status_code == 200
    assert world.now() - before >= timedelta(hours=1)
    delivered = client.post("/_control/subscriptions/deliver").json()
    assert [r["outcome"] for r in delivered["value"]] == ["delivered"] and delivered["pending"] == 0
    assert client.post("/_control/clock/advance", json={"advanceSeconds": -1}).status_code == 400
