"""Webhook intake over fakes: the clientState check, one queue write per request, nothing acknowledged unpersisted."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from functions._contract import check_body
from shared.errors import InvalidRequest, UpstreamUnavailable
from shared.models import Subscription
from shared.sync import intake as webhooks
from shared.sync.intake import (
    DROP_FLUSH_INTERVAL,
    UNATTRIBUTED,
    UNKNOWN_MAX_ENTRIES,
    UNKNOWN_TTL,
    IntakeResult,
    accept_notifications,
    client_state_hash,
    flush_drops,
    forget_unknown_subscriptions,
    validation_answer,
)
from tests.kit import TENANT_A, TENANT_B, FakeDeps

SECRET = "s3cret-client-state-for-tests-0123456789abcdef"


def subscribed(deps: FakeDeps, sub_id: str = "sub-1", tenant: str = TENANT_A) -> Subscription:
    return deps.subscriptions.create_subscription(
        Subscription(
            tenant_id=tenant,
            subscription_id=sub_id,
            resource="users/interviews@contoso.example/events",
            mailbox="interviews@contoso.example",
            expires_at=deps.clock.now() + timedelta(days=7),
            client_state_hash=client_state_hash(SECRET),
        )
    )


def change(sub_id: str = "sub-1", event_id: str = "AAMkEvent1", state: str = SECRET, tenant: str = TENANT_A) -> dict:
    return {
        "subscriptionId": sub_id,
        "clientState": state,
        "changeType": "updated",
        "resource": f"Users/x/Events/{event_id}",
        "resourceData": {"id": event_id},
        "tenantId": tenant,
    }


def test_handshake_answers_the_token_exactly_and_refuses_an_overlong_one() -> None:
    token = "Validation: Testing client application reachability <script>&amp;"
    assert validation_answer(token) == token
    with pytest.raises(InvalidRequest):
        validation_answer("x" * 1025)
    with pytest.raises(InvalidRequest):
        validation_answer("")


def test_valid_notifications_are_persisted_in_one_queue_write() -> None:
    deps = FakeDeps()
    subscribed(deps)

    result = accept_notifications(deps, {"value": [change(event_id=f"AAMk{i}") for i in range(10)]}, lifecycle=False)

    assert (result.queued, result.dropped, result.messages) == (10, 0, 1)
    [message] = deps.notification_queue.messages
    body = json.loads(message)
    assert body["k"] == "change" and len(body["n"]) == 10
    assert body["n"][0] == {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk0"}
    assert SECRET not in message  # the secret never reaches the queue


def drained() -> FakeDeps:
    """Fresh fakes, with whatever earlier tests left in this worker's drop counters flushed elsewhere."""
    flush_drops(FakeDeps(), force=True)
    return FakeDeps()


def test_forged_client_state_is_dropped_counted_against_its_tenant_and_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps = drained()
    subscribed(deps)
    caplog.set_level(logging.DEBUG)

    result = accept_notifications(deps, {"value": [change(state="forged-state-value")]}, lifecycle=False)
    flush_drops(deps, force=True)

    assert (result.queued, result.dropped) == (0, 1)
    assert deps.notification_queue.messages == []
    assert deps.subscriptions.get_dropped(TENANT_A) == {"client_state_mismatch": 1}
    assert "forged-state-value" not in caplog.text and SECRET not in caplog.text


def test_drops_reach_storage_at_most_once_per_interval_and_survive_a_failed_write() -> None:
    deps = drained()
    subscribed(deps)
    deps.clock.advance(seconds=DROP_FLUSH_INTERVAL.total_seconds())  # the last flush (by drained) is an interval ago

    accept_notifications(deps, {"value": [change(sub_id="sub-unknown")]}, lifecycle=False)
    assert deps.subscriptions.get_dropped(UNATTRIBUTED) == {"unknown_subscription": 1}  # the first: at once

    deps.subscriptions.down = True
    deps.clock.advance(seconds=DROP_FLUSH_INTERVAL.total_seconds())
    accept_notifications(deps, {"value": [change(state="forged")]}, lifecycle=False)  # the write fails: kept
    deps.subscriptions.down = False
    accept_notifications(deps, {"value": [change(state="forged")] * 2}, lifecycle=False)  # inside the interval
    assert deps.subscriptions.get_dropped(TENANT_A) == {}

    deps.clock.advance(seconds=DROP_FLUSH_INTERVAL.total_seconds())
    accept_notifications(deps, {"value": [change()]}, lifecycle=False)  # any request flushes once it is due
    assert deps.subscriptions.get_dropped(TENANT_A) == {"client_state_mismatch": 3}
    assert deps.subscriptions.get_dropped(UNATTRIBUTED) == {"unknown_subscription": 1}


def test_unknown_subscription_and_a_missing_client_state_are_dropped() -> None:
    deps = FakeDeps()
    subscribed(deps)
    no_state = change()
    del no_state["clientState"]

    result = accept_notifications(deps, {"value": [change(sub_id="sub-unknown"), no_state, "junk"]}, lifecycle=False)

    assert (result.queued, result.dropped) == (0, 3)
    assert deps.notification_queue.messages == []


def test_the_tenant_comes_from_our_record_not_from_the_notification() -> None:
    deps = FakeDeps()
    subscribed(deps)

    accept_notifications(deps, {"value": [change(tenant=TENANT_B)]}, lifecycle=False)

    assert json.loads(deps.notification_queue.messages[0])["n"][0]["t"] == TENANT_A


def test_queue_down_raises_so_nothing_is_acknowledged() -> None:
    deps = FakeDeps()
    subscribed(deps)
    deps.notification_queue.down = True

    with pytest.raises(UpstreamUnavailable):
        accept_notifications(deps, {"value": [change()]}, lifecycle=False)


@pytest.mark.parametrize("body", [{}, {"value": "x"}, {"value": [{}] * 1001}])
def test_a_body_that_is_not_a_notification_collection_is_refused(body: dict) -> None:
    deps = FakeDeps()
    # The body's shape is checked against openapi.yaml, as the handler does, before the intake reads it.
    with pytest.raises(InvalidRequest):
        accept_notifications(deps, check_body("graph_webhook", body), lifecycle=False)
    assert deps.notification_queue.messages == []


def test_lifecycle_notifications_are_queued_with_their_event() -> None:
    deps = FakeDeps()
    subscribed(deps)
    item = {"subscriptionId": "sub-1", "clientState": SECRET, "lifecycleEvent": "missed", "tenantId": TENANT_A}

    accept_notifications(deps, {"value": [item]}, lifecycle=True)

    body = json.loads(deps.notification_queue.messages[0])
    assert body["k"] == "lifecycle" and body["n"] == [{"t": TENANT_A, "s": "sub-1", "l": "missed"}]


def test_secret_lookups_are_answered_from_the_worker_memory() -> None:
    from shared.worker_cache import CachedSubscriptions

    deps = FakeDeps()
    subscribed(deps)
    inner = deps.subscriptions
    deps.subscriptions = CachedSubscriptions(inner, deps.clock)  # type: ignore[assignment]

    for _ in range(5):
        accept_notifications(deps, {"value": [change()]}, lifecycle=False)

    assert inner.secret_reads == 1


# ---- an anonymous flood costs one lookup per distinct id and one log line -------------------------------
@pytest.fixture
def no_unknown_memory() -> None:
    forget_unknown_subscriptions()


def test_a_flood_naming_one_unknown_subscription_costs_one_read_and_one_log_line(
    no_unknown_memory: None, caplog: pytest.LogCaptureFixture
) -> None:
    deps = drained()
    caplog.set_level(logging.DEBUG, logger="shared.sync.intake")
    flood = {"value": [change(sub_id="sub-unknown", event_id=f"AAMk{i}") for i in range(1000)]}

    result = accept_notifications(deps, flood, lifecycle=False)

    assert (result.queued, result.dropped) == (0, 1000)
    assert deps.subscriptions.secret_reads == 1
    [line] = [r for r in caplog.records if r.name == "shared.sync.intake"]
    assert "1000" in line.getMessage() and len(line.getMessage()) < 300

    accept_notifications(deps, flood, lifecycle=False)  # the next flood, inside the memory's TTL
    assert deps.subscriptions.secret_reads == 1
    deps.clock.advance(seconds=UNKNOWN_TTL.total_seconds())
    accept_notifications(deps, flood, lifecycle=False)
    assert deps.subscriptions.secret_reads == 2
    flush_drops(deps, force=True)
    assert deps.subscriptions.get_dropped(UNATTRIBUTED) == {"unknown_subscription": 3000}


def test_each_distinct_subscription_is_looked_up_once_per_request(no_unknown_memory: None) -> None:
    deps = FakeDeps()
    subscribed(deps, "sub-1")
    subscribed(deps, "sub-2")
    body = {"value": [change(sub_id=s, event_id=f"AAMk{i}") for i in range(100) for s in ("sub-1", "sub-2", "sub-x")]}

    result = accept_notifications(deps, body, lifecycle=False)

    assert (result.queued, result.dropped) == (200, 100)
    assert deps.subscriptions.secret_reads == 3


def test_the_unknown_memory_is_small_and_forgets_an_id_once_it_is_stored(no_unknown_memory: None) -> None:
    deps = FakeDeps()
    for i in range(UNKNOWN_MAX_ENTRIES + 10):
        accept_notifications(deps, {"value": [change(sub_id=f"sub-gone-{i}")]}, lifecycle=False)
    assert len(webhooks._unknown) == UNKNOWN_MAX_ENTRIES

    accept_notifications(deps, {"value": [change(sub_id="sub-1")]}, lifecycle=False)
    subscribed(deps, "sub-1")
    forget_unknown_subscriptions("sub-1")  # what subscribing does in this worker
    assert accept_notifications(deps, {"value": [change(sub_id="sub-1")]}, lifecycle=False).queued == 1


# ---- a resource naming another mailbox -------------------------------------------------------------------
def test_a_resource_naming_another_mailbox_is_dropped_and_counted() -> None:
    deps = drained()
    sub = subscribed(deps)
    deps.subscriptions.update_subscription(replace(sub, mailbox_id="id-interviews"))

    def posted(resource: str, event_id: str = "AAMk1") -> IntakeResult:
        item = {**change(event_id=event_id), "resource": resource}
        return accept_notifications(deps, {"value": [item]}, lifecycle=False)

    assert posted("Users/id-interviews/Events/AAMk1").queued == 1
    assert posted("Users('ID-INTERVIEWS')/Events('AAMk1')").queued == 1
    assert posted("users/interviews@contoso.example/events/AAMk1").queued == 1
    assert posted("Users/id-lynne/Events/AAMk1").dropped == 1
    assert posted("Users/lynne.robbins@contoso.example/Events/AAMk1").dropped == 1
    assert posted("Users/id-interviews/Events/AAMkOther").dropped == 1  # the event named twice, differently
    flush_drops(deps, force=True)
    assert deps.subscriptions.get_dropped(TENANT_A) == {"wrong_mailbox": 2, "malformed": 1}


def test_without_a_recorded_user_id_only_another_address_can_be_told_apart() -> None:
    deps = drained()
    subscribed(deps)  # a record written before the user id was kept

    assert accept_notifications(deps, {"value": [change()]}, lifecycle=False).queued == 1  # "Users/x/..."
    other = {**change(), "resource": "Users/lynne.robbins@contoso.example/Events/AAMkEvent1"}
    assert accept_notifications(deps, {"value": [other]}, lifecycle=False).dropped == 1
