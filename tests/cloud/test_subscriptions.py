"""Graph subscriptions and change notifications: the routes in-process over a small world, a real webhook receiver.

Each test owns its world, so timing switches and subscriptions never leak between tests; the
end-to-end path over the running HTTPS cloud is in ``test_subscriptions_e2e.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from devtools.cloud import notify
from devtools.cloud.graph import subscriptions
from devtools.cloud.state import World
from tests.cloud.subscriptions_support import (
    ALICE,
    APP,
    BOB,
    CAROL,
    OTHER_APP,
    TENANT_A,
    TENANT_B,
    Behaviour,
    Receiver,
    app_token,
    create,
    in_minutes,
    user_token,
)
from tests.cloud.world_support import small_world


# ---- a world and a client ------------------------------------------------------------------------
def _world() -> World:
    world = small_world(
        {TENANT_A: "contoso.example", TENANT_B: "fabrikam.example"},
        [(TENANT_A, ALICE, "alice"), (TENANT_A, BOB, "bob"), (TENANT_B, CAROL, "carol")],
        [APP, OTHER_APP],
    )
    sw = world.switches
    # Only flush_notifications delivers first attempts in these tests, so batching is deterministic.
    sw.notification_batch_delay_seconds = 60.0
    sw.notification_retry_seconds = (0.05,)
    sw.notification_timeout_seconds = 0.5
    sw.validation_timeout_seconds = 2.0
    return world


@pytest.fixture()
def world() -> Iterator[World]:
    w = _world()
    yield w
    notify.stop_delivery(w)


@pytest.fixture()
def client(world: World) -> Iterator[TestClient]:
    app = Starlette(routes=[*subscriptions.routes(world), *subscriptions.control_routes(world)])
    with TestClient(app, base_url="https://graph.local") as test_client:
        yield test_client


# ---- create: validation handshake ------------------------------------------------------------------
def test_create_validates_both_endpoints_and_returns_the_subscription(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    response = create(
        client, app_token(world), receiver, lifecycleNotificationUrl=receiver.url("/notify?tenant=contoso")
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["@odata.context"] == "https://graph.local/v1.0/$metadata#subscriptions/$entity"
    assert body["resource"] == f"/users/{ALICE}/events"
    assert body["applicationId"] == APP
    assert body["changeType"] == "created,updated,deleted"
    assert body["clientState"] == "s3cret-state"
    assert body["notificationUrl"] == receiver.url("/notify?tenant=contoso")
    assert body["latestSupportedTlsVersion"] == "v1_2"
    assert body["includeResourceData"] is False
    assert body["encryptionCertificate"] is None and body["notificationQueryOptions"] is None
    assert body["expirationDateTime"].endswith("Z") and len(body["expirationDateTime"].split(".")[1]) == 8
    # Same URL for both endpoints: still two validation requests, query string kept.
    validations = receiver.validations()
    assert len(validations) == 2
    for request in validations:
        assert request.headers["content-type"] == "text/plain; charset=utf-8"
        assert request.query["tenant"] == ["contoso"]
        assert request.query["validationToken"][0].startswith("Validation: ")


@pytest.mark.parametrize(
    ("behaviour", "code", "message"),
    [
        ("encoded", "ValidationError", subscriptions.VALIDATION_MISMATCH),
        ("status500", "ValidationError", subscriptions.VALIDATION_NOT_OK),
    ],
)
def test_create_fails_and_stores_nothing_when_the_handshake_fails(
    client: TestClient, world: World, receiver: Receiver, behaviour: str, code: str, message: str
) -> None:
    receiver.behaviour["/notify"] = Behaviour(validation=behaviour)

    response = create(client, app_token(world), receiver)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"] == message
    assert client.get("/v1.0/subscriptions", headers=app_token(world)).json()["value"] == []


def test_create_fails_when_the_endpoint_answers_the_handshake_too_slowly(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    world.switches.validation_timeout_seconds = 0.3
    receiver.behaviour["/notify"] = Behaviour(validation_delay=1.0)

    response = create(client, app_token(world), receiver)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == subscriptions.VALIDATION_TIMEOUT
    assert notify.state(world).subscriptions == {}


def test_create_fails_when_only_the_lifecycle_endpoint_fails_validation(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    receiver.behaviour["/lifecycle"] = Behaviour(validation="encoded")

    response = create(client, app_token(world), receiver)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == subscriptions.VALIDATION_MISMATCH
    assert notify.state(world).subscriptions == {}


def test_create_rejects_plain_http_to_a_non_loopback_host(client: TestClient, world: World, receiver: Receiver) -> None:
    response = create(client, app_token(world), receiver, notificationUrl="http://webhook.example/notify")

    assert response.status_code == 400
    assert receiver.validations() == []


# ---- create: limits and permissions ------------------------------------------------------------------
def test_create_enforces_expiration_and_client_state_limits(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    headers = app_token(world)

    too_far = create(client, headers, receiver, expirationDateTime=in_minutes(10080 + 5))
    past = create(client, headers, receiver, expirationDateTime=in_minutes(-1))
    long_state = create(client, headers, receiver, clientState="x" * 129)
    max_state = create(client, headers, receiver, clientState="x" * 128, expirationDateTime=in_minutes(10079))

    assert too_far.status_code == 400
    assert "10080 minutes" in too_far.json()["error"]["message"]
    assert past.status_code == 400
    assert long_state.status_code == 400
    assert max_state.status_code == 201


def test_delegated_caller_may_subscribe_only_to_its_own_mailbox(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    alice = user_token(world, ALICE)

    own = create(client, alice, receiver, resource="me/events")
    by_upn = create(client, alice, receiver, resource="users/alice@contoso.example/events")
    other = create(client, alice, receiver, resource=f"users/{BOB}/events")

    assert own.status_code == 201 and by_upn.status_code == 201
    assert own.json()["creatorId"] == ALICE
    assert other.status_code == 403


def test_create_needs_calendars_read(client: TestClient, world: World, receiver: Receiver) -> None:
    no_role = create(client, app_token(world, roles=()), receiver)
    no_scope = create(client, user_token(world, ALICE, scopes=("User.Read",)), receiver, resource="/me/events")
    read_write = create(client, app_token(world, roles=("Calendars.ReadWrite",)), receiver)

    assert no_role.status_code == 403 and no_scope.status_code == 403
    assert read_write.status_code == 201


def test_create_cannot_reach_another_tenants_mailbox(client: TestClient, world: World, receiver: Receiver) -> None:
    response = create(client, app_token(world), receiver, resource=f"users/{CAROL}/events")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"


def test_create_enforces_the_per_mailbox_quota_across_apps(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    world.switches.subscriptions_per_mailbox = 1
    assert create(client, app_token(world), receiver).status_code == 201

    response = create(client, app_token(world, client_id=OTHER_APP), receiver)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ExtensionError"


# ---- read, renew, reauthorize, delete, isolation ---------------------------------------------------
def test_renew_reauthorize_and_delete(client: TestClient, world: World, receiver: Receiver) -> None:
    headers = app_token(world)
    sub_id = create(client, headers, receiver).json()["id"]
    new_expiry = in_minutes(3000)

    renewed = client.patch(f"/v1.0/subscriptions/{sub_id}", json={"expirationDateTime": new_expiry}, headers=headers)
    too_far = client.patch(
        f"/v1.0/subscriptions/{sub_id}", json={"expirationDateTime": in_minutes(20000)}, headers=headers
    )
    other_field = client.patch(f"/v1.0/subscriptions/{sub_id}", json={"clientState": "x"}, headers=headers)
    reauthorized = client.post(f"/v1.0/subscriptions/{sub_id}/reauthorize", headers=headers)
    fetched = client.get(f"/v1.0/subscriptions/{sub_id}", headers=headers)
    deleted = client.delete(f"/v1.0/subscriptions/{sub_id}", headers=headers)
    after = client.get(f"/v1.0/subscriptions/{sub_id}", headers=headers)

    assert renewed.status_code == 200
    assert datetime.fromisoformat(renewed.json()["expirationDateTime"]) == datetime.fromisoformat(new_expiry)
    assert too_far.status_code == 400 and other_field.status_code == 400
    assert reauthorized.status_code == 204
    assert fetched.json()["expirationDateTime"] == renewed.json()["expirationDateTime"]
    assert deleted.status_code == 204
    assert after.status_code == 404
    assert after.json()["error"] == {
        **after.json()["error"],
        "code": "ResourceNotFound",
        "message": "The object was not found.",
    }


def test_other_apps_and_tenants_never_see_a_subscription(client: TestClient, world: World, receiver: Receiver) -> None:
    sub_id = create(client, app_token(world), receiver).json()["id"]
    bob_sub = create(client, user_token(world, BOB), receiver, resource="/me/events").json()["id"]
    strangers = [
        app_token(world, client_id=OTHER_APP),
        app_token(world, tenant_id=TENANT_B),
        user_token(world, ALICE),  # same app, delegated: not her subscription
    ]

    for headers in strangers:
        assert client.get(f"/v1.0/subscriptions/{sub_id}", headers=headers).status_code == 404
        assert client.delete(f"/v1.0/subscriptions/{sub_id}", headers=headers).status_code == 404
        assert client.post(f"/v1.0/subscriptions/{sub_id}/reauthorize", headers=headers).status_code == 404
        assert client.get("/v1.0/subscriptions", headers=headers).json()["value"] == []
    # App-only sees every subscription of the app in the tenant; the delegated user only their own.
    assert {s["id"] for s in client.get("/v1.0/subscriptions", headers=app_token(world)).json()["value"]} == {
        sub_id,
        bob_sub,
    }
    assert [s["id"] for s in client.get("/v1.0/subscriptions", headers=user_token(world, BOB)).json()["value"]] == [
        bob_sub
    ]


def test_requests_without_a_valid_token_are_rejected(client: TestClient) -> None:
    assert client.get("/v1.0/subscriptions").status_code == 401
    assert client.post("/v1.0/subscriptions", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401


# ---- delivery --------------------------------------------------------------------------------------
def test_pending_changes_for_one_url_arrive_in_one_post_with_client_state(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    first = create(client, app_token(world), receiver).json()["id"]
    second = create(client, app_token(world, client_id=OTHER_APP), receiver, clientState="other-state").json()["id"]

    world.emit_change(TENANT_A, ALICE, "created", "evt-1")
    world.emit_change(TENANT_A, ALICE, "updated", "evt-2")
    world.emit_change(TENANT_A, BOB, "created", "evt-3")  # not a subscribed mailbox
    records = notify.flush_notifications(world, timeout=5)

    posts = receiver.notifications("/notify")
    assert len(posts) == 1 and [r.outcome for r in records] == ["delivered"]
    assert posts[0].query["tenant"] == ["contoso"]  # notificationUrl query string preserved
    items = posts[0].json()["value"]
    assert len(items) == 4
    assert {(i["subscriptionId"], i["changeType"], i["clientState"]) for i in items} == {
        (first, "created", "s3cret-state"),
        (first, "updated", "s3cret-state"),
        (second, "created", "other-state"),
        (second, "updated", "other-state"),
    }
    item = next(i for i in items if i["subscriptionId"] == first and i["changeType"] == "created")
    assert item["resource"] == f"Users/{ALICE}/Events/evt-1"
    assert item["tenantId"] == TENANT_A
    assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert item["resourceData"]["@odata.id"] == f"Users/{ALICE}/Events/evt-1"
    assert item["resourceData"]["id"] == "evt-1"
    assert item["resourceData"]["@odata.etag"].startswith('W/"')


def test_only_subscribed_change_types_are_sent(client: TestClient, world: World, receiver: Receiver) -> None:
    create(client, app_token(world), receiver, changeType="deleted")

    world.emit_change(TENANT_A, ALICE, "created", "evt-1")
    world.emit_change(TENANT_A, ALICE, "deleted", "evt-2")
    notify.flush_notifications(world, timeout=5)

    [post] = receiver.notifications("/notify")
    assert [i["changeType"] for i in post.json()["value"]] == ["deleted"]


@pytest.mark.parametrize("answers", [[(503, 0.0), (200, 0.0)], [(202, 1.0), (202, 0.0)]], ids=["5xx", "slow"])
def test_failed_delivery_is_retried_until_the_endpoint_accepts(
    client: TestClient, world: World, receiver: Receiver, answers: list[tuple[int, float]]
) -> None:
    receiver.behaviour["/notify"] = Behaviour(answers=answers)
    create(client, app_token(world), receiver)

    world.emit_change(TENANT_A, ALICE, "created", "evt-1")
    records = notify.flush_notifications(world, timeout=5)

    assert [(r.outcome, r.attempt) for r in records] == [("retrying", 1), ("delivered", 2)]
    posts = receiver.notifications("/notify")
    assert len(posts) == 2 and posts[0].json() == posts[1].json()


def test_notification_is_discarded_when_the_retry_window_closes(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    # The window is read on the cloud's clock, which only this test moves: however slowly the machine runs,
    # the first attempt and the retry fall inside it and the last one outside. (With a window of real time,
    # a loaded machine let the first attempt itself fall outside it: no retry was ever seen.)
    world.switches.notification_retry_window_seconds = 10.0
    receiver.behaviour["/notify"] = Behaviour(answers=[(500, 0.0)])
    create(client, app_token(world), receiver)
    notify.stop_delivery(world)  # every delivery round is this test's own, at the cloud time it set

    world.emit_change(TENANT_A, ALICE, "created", "evt-1")
    records = notify.deliver_now(world)  # the first attempt
    notify.advance_clock(world, 4)
    records += notify.deliver_now(world)  # a retry, 4 s into the window
    notify.advance_clock(world, 7)
    records += notify.deliver_now(world)  # 11 s: the next retry would fall outside it

    assert records[-1].outcome == "dropped"
    assert {r.outcome for r in records[:-1]} == {"retrying"}
    assert notify.pending_count(world) == 0


def test_expired_subscription_sends_nothing_and_disappears(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    headers = app_token(world)
    sub_id = create(client, headers, receiver).json()["id"]
    world.emit_change(TENANT_A, ALICE, "created", "queued-before-expiry")

    notify.expire_subscription(world, sub_id)
    world.emit_change(TENANT_A, ALICE, "created", "after-expiry")
    records = notify.flush_notifications(world, timeout=5)

    assert receiver.notifications("/notify") == []
    assert [(r.outcome, r.reason) for r in records] == [("dropped", "subscriptionGone")]
    assert client.get(f"/v1.0/subscriptions/{sub_id}", headers=headers).status_code == 404
    assert sub_id not in notify.state(world).subscriptions


def test_background_worker_delivers_without_a_flush(client: TestClient, world: World, receiver: Receiver) -> None:
    world.switches.notification_batch_delay_seconds = 0.05
    create(client, app_token(world), receiver)
    assert notify.delivery_running(world)

    world.emit_change(TENANT_A, ALICE, "updated", "evt-1")
    notify.wait_for_deliveries(
        world, lambda log: any(r.kind == "change" and r.outcome == "delivered" for r in log), timeout=5
    )

    assert len(receiver.notifications("/notify")) == 1


# ---- lifecycle -------------------------------------------------------------------------------------
def test_reauthorization_required_pauses_delivery_until_reauthorized(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    world.switches.reauthorization_grace_seconds = 0.0
    headers = app_token(world)
    sub_id = create(client, headers, receiver).json()["id"]

    assert notify.fire_lifecycle_event(world, sub_id, "reauthorizationRequired")
    world.emit_change(TENANT_A, ALICE, "created", "lost-while-paused")
    notify.flush_notifications(world, timeout=5)
    assert client.post(f"/v1.0/subscriptions/{sub_id}/reauthorize", headers=headers).status_code == 204
    world.emit_change(TENANT_A, ALICE, "created", "after-reauthorize")
    notify.flush_notifications(world, timeout=5)

    [lifecycle] = receiver.notifications("/lifecycle")
    [item] = lifecycle.json()["value"]
    assert set(item) == {
        "subscriptionId",
        "subscriptionExpirationDateTime",
        "tenantId",
        "clientState",
        "lifecycleEvent",
    }
    assert (item["subscriptionId"], item["lifecycleEvent"], item["clientState"]) == (
        sub_id,
        "reauthorizationRequired",
        "s3cret-state",
    )
    [change] = receiver.notifications("/notify")
    assert [i["resourceData"]["id"] for i in change.json()["value"]] == ["after-reauthorize"]


def test_subscription_removed_deletes_the_subscription(client: TestClient, world: World, receiver: Receiver) -> None:
    headers = app_token(world)
    sub_id = create(client, headers, receiver).json()["id"]

    notify.fire_lifecycle_event(world, sub_id, "subscriptionRemoved")
    world.emit_change(TENANT_A, ALICE, "created", "evt-1")
    notify.flush_notifications(world, timeout=5)

    [post] = receiver.notifications("/lifecycle")
    assert post.json()["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
    assert receiver.notifications("/notify") == []
    assert client.get(f"/v1.0/subscriptions/{sub_id}", headers=headers).status_code == 404


def test_missed_lifecycle_event_through_the_control_api(client: TestClient, world: World, receiver: Receiver) -> None:
    sub_id = create(client, app_token(world), receiver).json()["id"]

    fired = client.post(f"/_control/subscriptions/{sub_id}/lifecycle", json={"lifecycleEvent": "missed"})
    flushed = client.post("/_control/subscriptions/flush", json={"timeout": 5})
    log = client.get("/_control/subscriptions/deliveries").json()

    assert fired.status_code == 202
    assert flushed.status_code == 200
    [record] = [r for r in log["value"] if r["kind"] == "lifecycle"]
    assert record["outcome"] == "delivered"
    assert record["payload"]["value"][0]["lifecycleEvent"] == "missed"
    assert record["payload"]["value"][0]["clientState"] == "***"  # the control API never shows the secret
    assert receiver.notifications("/lifecycle")[0].json()["value"][0]["clientState"] == "s3cret-state"


def test_reauthorization_is_requested_automatically_before_expiry(
    client: TestClient, world: World, receiver: Receiver
) -> None:
    world.switches.reauthorization_before_expiry_seconds = 2 * 3600
    headers = app_token(world)
    sub_id = create(client, headers, receiver, expirationDateTime=in_minutes(90)).json()["id"]

    notify.flush_notifications(world, timeout=5)
    renewed = client.patch(
        f"/v1.0/subscriptions/{sub_id}", json={"expirationDateTime": in_minutes(3000)}, headers=headers
    )
    notify.flush_notifications(world, timeout=5)

    [post] = receiver.notifications("/lifecycle")
    assert post.json()["value"][0]["lifecycleEvent"] == "reauthorizationRequired"
    assert renewed.status_code == 200
    assert notify.state(world).subscriptions[sub_id].reauthorization_required_at is None
