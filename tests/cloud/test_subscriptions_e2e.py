"""Subscriptions end to end: the running HTTPS cloud, events changed through the Graph API, a real webhook."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from devtools.cloud import controls, notify, tokens
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from tests.cloud.subscriptions_support import Receiver, in_minutes

CONTOSO = "9ede9f80-1655-48eb-ac0c-abec2d7295a7"
ADELE = "8e715cdf-74d3-409b-8145-2916038342f1"
SERVICE_APP = "6731de76-14a6-49ae-97bc-6eba6914391e"


@pytest.fixture()
def graph(cloud: RunningCloud, world: World) -> Iterator[httpx.Client]:
    token = tokens.issue_access_token(world, tenant_id=CONTOSO, client_id=SERVICE_APP, roles={"Calendars.ReadWrite"})
    verify = ssl.create_default_context(cafile=str(cloud.ca_bundle))
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=cloud.graph_url, verify=verify, headers=headers) as client:
        yield client


def subscribe(graph: httpx.Client, receiver: Receiver) -> httpx.Response:
    return graph.post(
        "/subscriptions",
        json={
            "changeType": "created,updated,deleted",
            "notificationUrl": receiver.url("/notify"),
            "lifecycleNotificationUrl": receiver.url("/lifecycle"),
            "resource": f"users/{ADELE}/events",
            "expirationDateTime": in_minutes(3 * 24 * 60),  # far from the reauthorization lead time
            "clientState": "e2e-state",
        },
    )


def new_event(graph: httpx.Client) -> httpx.Response:
    return graph.post(
        f"/users/{ADELE}/events",
        json={
            "subject": "Interview",
            "start": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-07T11:00:00", "timeZone": "UTC"},
        },
    )


def test_event_changes_made_through_graph_are_notified(
    cloud: RunningCloud, world: World, graph: httpx.Client, receiver: Receiver
) -> None:
    world.switches.notification_batch_delay_seconds = 60.0  # only the flush below delivers
    # The handshake is an outbound call made while the cloud serves this request: it must not deadlock.
    assert subscribe(graph, receiver).status_code == 201

    event = new_event(graph)
    assert event.status_code == 201, event.text
    event_id = event.json()["id"]
    assert graph.patch(f"/users/{ADELE}/events/{event_id}", json={"subject": "Moved"}).status_code == 200
    assert graph.delete(f"/users/{ADELE}/events/{event_id}").status_code == 204
    notify.flush_notifications(world, timeout=5)

    [post] = receiver.notifications("/notify")
    items = post.json()["value"]
    assert [i["changeType"] for i in items] == ["created", "updated", "deleted"]
    assert {i["resourceData"]["id"] for i in items} == {event_id}
    assert {(i["clientState"], i["tenantId"]) for i in items} == {("e2e-state", CONTOSO)}
    assert items[0]["resourceData"]["@odata.etag"] == event.json()["@odata.etag"]


def test_control_api_fires_lifecycle_events_and_shows_deliveries(
    cloud: RunningCloud, world: World, graph: httpx.Client, receiver: Receiver
) -> None:
    sub_id = subscribe(graph, receiver).json()["id"]
    control = f"{cloud.base_url}/_control/subscriptions"

    fired = graph.post(f"{control}/{sub_id}/lifecycle", json={"lifecycleEvent": "subscriptionRemoved"})
    flushed = graph.post(f"{control}/flush", json={"timeout": 5})
    deliveries = graph.get(f"{control}/deliveries").json()["value"]

    assert fired.status_code == 202 and flushed.status_code == 200
    assert [(d["kind"], d["outcome"]) for d in deliveries if d["kind"] != "validation"] == [("lifecycle", "delivered")]
    assert receiver.notifications("/lifecycle")[0].json()["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
    assert graph.get(f"/subscriptions/{sub_id}").status_code == 404


def test_world_reset_forgets_subscriptions(world: World, graph: httpx.Client, receiver: Receiver) -> None:
    assert subscribe(graph, receiver).status_code == 201

    controls.reset_world(world)

    assert graph.get("/subscriptions").json()["value"] == []
    assert notify.delivery_log(world) == [] and notify.pending_count(world) == 0
