"""Subscription lifecycle over fakes: claims settle creators, renewal through one batch, healing, delta, health."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from functions._views import subscriptions_health_json
from shared.models import DeltaChange
from shared.sync import delta, reconcile, renewal, report
from shared.sync import subscriptions as core
from tests.kit import TENANT_A, FakeDeps, consented

INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"


def health_view(deps: Any, tenant_id: str) -> dict[str, Any]:
    """The subscriptions' health as GET /api/subscriptions/health answers it."""
    return subscriptions_health_json(report.subscriptions_health(deps, tenant_id))


@pytest.fixture(autouse=True)
def _fresh_worker_memory() -> None:
    core.forget_worker_memory()


def tenant_with_mailboxes(deps: FakeDeps) -> None:
    tenant = consented(deps)
    deps.tenants.update_tenant(replace(tenant, interviews_mailbox=INTERVIEWS, sync_mailbox=SYNC))


def deps_with_schedule() -> FakeDeps:
    deps = FakeDeps(renewal_schedule="0 0 */6 * * *")
    tenant_with_mailboxes(deps)
    return deps


def queued_items(deps: FakeDeps) -> list[dict[str, str]]:
    return [item for m in deps.notification_queue.messages for item in json.loads(m)["n"]]


def test_ensure_creates_one_subscription_with_graphs_expiry_and_a_hashed_secret() -> None:
    deps = deps_with_schedule()
    deps.graph.granted_minutes = 4230  # Graph may grant less than asked: what it answers is kept

    core.ensure_mailbox_subscription(deps, TENANT_A, INTERVIEWS)
    core.ensure_mailbox_subscription(deps, TENANT_A, INTERVIEWS)

    [sub] = deps.subscriptions.list_subscriptions(TENANT_A)
    assert deps.graph.subscription_calls == ["create"]
    assert sub.expires_at == deps.clock.now() + timedelta(minutes=4230)
    secret = deps.graph.client_states[sub.subscription_id]
    assert len(secret) >= 43 and sub.client_state_hash != secret
    assert deps.subscriptions.get_mailbox_sync(TENANT_A, INTERVIEWS).subscription_id == sub.subscription_id


def test_a_live_claim_of_another_writer_keeps_this_one_off() -> None:
    deps = deps_with_schedule()
    from shared.models import MailboxSync

    deps.subscriptions.create_mailbox_sync(
        MailboxSync(TENANT_A, INTERVIEWS, claimed_until=deps.clock.now() + timedelta(minutes=1))
    )

    core.ensure_mailbox_subscription(deps, TENANT_A, INTERVIEWS)
    assert deps.graph.subscription_calls == []

    deps.clock.advance(minutes=2)  # the other writer died: its claim lapses
    core.ensure_mailbox_subscription(deps, TENANT_A, INTERVIEWS)
    assert deps.graph.subscription_calls == ["create"]


def test_renewal_subscribes_missing_mailboxes_and_renews_due_ones_in_one_batch() -> None:
    deps = deps_with_schedule()
    first = renewal.renew_subscriptions(deps)
    assert first.created == 2

    deps.clock.advance(days=6, hours=20)  # within two 6-hour runs of the 7-day expiry
    second = renewal.renew_subscriptions(deps)

    assert second.renewed == 2 and second.recreated == 0
    assert deps.graph.subscription_calls[-1] == "renew:2"
    for sub in deps.subscriptions.list_subscriptions(TENANT_A):
        assert sub.expires_at == deps.clock.now() + timedelta(minutes=10080)
        assert sub.last_renewed_at == deps.clock.now()


def test_renewal_leaves_subscriptions_far_from_expiry_alone() -> None:
    deps = deps_with_schedule()
    renewal.renew_subscriptions(deps)
    calls = list(deps.graph.subscription_calls)

    deps.clock.advance(hours=6)
    renewal.renew_subscriptions(deps)

    assert deps.graph.subscription_calls == calls


def test_renewal_recreates_subscription_that_graph_no_longer_knows_and_catches_up() -> None:
    deps = deps_with_schedule()
    renewal.renew_subscriptions(deps)
    lost = next(s for s in deps.subscriptions.list_subscriptions(TENANT_A) if s.mailbox == INTERVIEWS)
    deps.graph.live_subscriptions.pop(lost.subscription_id)
    deps.graph.pending_delta[INTERVIEWS] = [DeltaChange("AAMkMoved")]
    deps.clock.advance(days=6, hours=20)

    report = renewal.renew_subscriptions(deps)

    assert report.recreated == 1
    current = {s.mailbox: s for s in deps.subscriptions.list_subscriptions(TENANT_A)}
    assert current[INTERVIEWS].subscription_id != lost.subscription_id
    assert len(current) == 2
    assert {"t": TENANT_A, "m": INTERVIEWS, "e": "AAMkMoved", "c": "updated"} in queued_items(deps)


def test_two_renewal_runs_racing_leave_one_subscription_per_mailbox() -> None:
    deps = deps_with_schedule()
    real_create = deps.graph.create_subscription

    def create_while_another_run_starts(*args: object, **kwargs: object) -> object:
        # The second run starts while the first is between its claim and Graph's answer.
        deps.graph.create_subscription = real_create  # type: ignore[method-assign]
        core.forget_worker_memory()
        renewal.renew_subscriptions(deps)
        return real_create(*args, **kwargs)  # type: ignore[arg-type]

    deps.graph.create_subscription = create_while_another_run_starts  # type: ignore[method-assign]
    renewal.renew_subscriptions(deps)

    mailboxes = [s.mailbox for s in deps.subscriptions.list_subscriptions(TENANT_A)]
    assert sorted(mailboxes) == [INTERVIEWS, SYNC]
    assert len(deps.graph.live_subscriptions) == 2


def test_lifecycle_events_renew_recreate_catch_up_or_are_ignored() -> None:
    deps = deps_with_schedule()
    renewal.renew_subscriptions(deps)
    sub = next(s for s in deps.subscriptions.list_subscriptions(TENANT_A) if s.mailbox == INTERVIEWS)

    deps.clock.advance(days=1)
    renewal.handle_lifecycle(deps, TENANT_A, sub.subscription_id, "reauthorizationRequired")
    renewed = deps.subscriptions.get_subscription(TENANT_A, sub.subscription_id)
    assert renewed.expires_at == deps.clock.now() + timedelta(minutes=10080)

    deps.graph.pending_delta[INTERVIEWS] = [DeltaChange("AAMkGone", removed=True)]
    renewal.handle_lifecycle(deps, TENANT_A, sub.subscription_id, "missed")
    assert {"t": TENANT_A, "m": INTERVIEWS, "e": "AAMkGone", "c": "deleted"} in queued_items(deps)

    deps.graph.live_subscriptions.pop(sub.subscription_id)
    renewal.handle_lifecycle(deps, TENANT_A, sub.subscription_id, "subscriptionRemoved")
    [replacement] = [s for s in deps.subscriptions.list_subscriptions(TENANT_A) if s.mailbox == INTERVIEWS]
    assert replacement.subscription_id != sub.subscription_id

    calls = list(deps.graph.subscription_calls)
    renewal.handle_lifecycle(deps, TENANT_A, replacement.subscription_id, "somethingNew")
    assert deps.graph.subscription_calls == calls


def test_an_expired_delta_link_starts_a_full_resync_of_the_window() -> None:
    deps = deps_with_schedule()
    core.ensure_mailbox_subscription(deps, TENANT_A, INTERVIEWS)
    link = deps.subscriptions.get_mailbox_sync(TENANT_A, INTERVIEWS).delta_link
    assert link is not None and queued_items(deps) == []  # the first baseline queues nothing
    deps.graph.expired_delta_links.add(link)
    deps.graph.mailbox_events[INTERVIEWS] = {"AAMkA": object(), "AAMkB": object()}

    queued = delta.catch_up(deps, TENANT_A, INTERVIEWS)

    assert queued == 2
    assert {i["e"] for i in queued_items(deps)} == {"AAMkA", "AAMkB"}
    assert deps.subscriptions.get_mailbox_sync(TENANT_A, INTERVIEWS).delta_link != link


def test_health_lists_each_subscription_and_the_poison_count() -> None:
    deps = deps_with_schedule()
    renewal.renew_subscriptions(deps)
    deps.notification_queue.poison.append("m")

    view = health_view(deps, TENANT_A)

    assert {s["mailbox"] for s in view["subscriptions"]} == {INTERVIEWS, SYNC}
    assert all(s["expires_at"] and s["last_renewed_at"] for s in view["subscriptions"])
    assert view["poison_queue"]["count"] == 1
    assert "secondary calendar" in view["secondary_calendars"]


def test_renewal_horizon_covers_the_next_two_runs() -> None:
    deps = deps_with_schedule()  # 09:00 now; runs at 12:00 and 18:00
    assert renewal.renewal_horizon(deps) == timedelta(hours=9, minutes=10)


def booked(deps: FakeDeps, booking_id: str, *, calendar_id: str | None, status: str = "booked", days: int = 2) -> None:
    from shared.models import Booking, BookingStatus

    start = deps.clock.now() + timedelta(days=days)
    deps.bookings.create_booking(
        Booking(
            tenant_id=TENANT_A,
            booking_id=booking_id,
            mailbox="alex.wilber@contoso.example",
            start=start,
            end=start + timedelta(hours=1),
            subject="Interview",
            status=BookingStatus(status),
            event_id="AAMk" + booking_id,
            calendar="alex.wilber@contoso.example",
            calendar_id=calendar_id,
        )
    )


def test_reconciliation_queues_each_live_secondary_calendar_booking_for_a_direct_read() -> None:
    deps = deps_with_schedule()
    booked(deps, "b1", calendar_id="AAMkCalendarSecondary")
    booked(deps, "b2", calendar_id=None)  # primary calendar: notifications and delta cover it
    booked(deps, "b3", calendar_id="AAMkCalendarSecondary", status="cancelled")
    booked(deps, "b4", calendar_id="AAMkCalendarSecondary", days=400)  # outside the window

    queued = reconcile.reconcile(deps)

    assert queued == 1
    assert queued_items(deps) == [{"t": TENANT_A, "m": "alex.wilber@contoso.example", "e": "AAMkb1", "c": "updated"}]
    view = health_view(deps, TENANT_A)
    assert view["secondary_calendar_bookings"] == 1
    assert "reconciliation only" in view["secondary_calendars"]


def test_health_shows_dropped_notifications_of_the_tenant_and_those_of_no_tenant() -> None:
    from shared.sync.intake import UNATTRIBUTED

    deps = deps_with_schedule()
    deps.subscriptions.add_dropped(TENANT_A, {"client_state_mismatch": 3})
    deps.subscriptions.add_dropped("another-tenant", {"client_state_mismatch": 7})
    deps.subscriptions.add_dropped(UNATTRIBUTED, {"unknown_subscription": 2})

    dropped = health_view(deps, TENANT_A)["dropped_notifications"]

    assert (dropped["client_state_mismatch"], dropped["unknown_subscription_all_tenants"]) == (3, 2)
    assert "30 seconds" in dropped["note"]


def test_organizers_of_upcoming_bookings_are_among_the_mailboxes_to_keep_subscribed() -> None:
    from shared.models import Booking, BookingStatus

    deps = FakeDeps()
    consented(deps)
    now = deps.clock.now()

    def booking(booking_id: str, mailbox: str, *, days: int, status: BookingStatus) -> Booking:
        return Booking(
            tenant_id=TENANT_A,
            booking_id=booking_id,
            mailbox=mailbox,
            start=now + timedelta(days=days),
            end=now + timedelta(days=days, hours=1),
            subject="Interview",
            status=status,
            event_id=f"event-{booking_id}",
        )

    deps.bookings.create_booking(booking("b1", "lynne@contoso.example", days=3, status=BookingStatus.BOOKED))
    deps.bookings.create_booking(booking("b2", "gone@contoso.example", days=3, status=BookingStatus.CANCELLED))
    deps.bookings.create_booking(booking("b3", "past@contoso.example", days=-30, status=BookingStatus.BOOKED))
    mailboxes = core.tenant_mailboxes(deps, TENANT_A)
    assert "lynne@contoso.example" in mailboxes
    assert "gone@contoso.example" not in mailboxes and "past@contoso.example" not in mailboxes


# ---- the poison queue is replayed once Graph answers again ------------------------------------------------
def poisoned(deps: FakeDeps, mailbox: str, *, attempt: int = 5) -> str:
    from shared.sync.intake import QueueEnvelope

    [sub] = [s for s in deps.subscriptions.list_subscriptions(TENANT_A) if s.mailbox == mailbox]
    item = {"t": TENANT_A, "s": sub.subscription_id, "c": "updated", "e": "AAMkDeclined"}
    text = QueueEnvelope("change", (item,), deps.clock.now().isoformat(), attempt=attempt).encode()
    deps.notification_queue.poison.append(text)
    return text


def test_reconciliation_holds_poison_while_graph_fails_its_mailbox_then_replays_it() -> None:
    from shared.errors import GraphRequestFailed

    deps = deps_with_schedule()
    renewal.renew_subscriptions(deps)
    text = poisoned(deps, INTERVIEWS)
    near_expiry = deps.clock.now() + timedelta(days=1)
    deps.notification_queue.poison_expiry[text] = near_expiry  # the host's copy expires 7 days after it was made
    deps.graph.failures[INTERVIEWS] = GraphRequestFailed("down", status=503, reason="unavailable")
    deps.notification_queue.messages.clear()

    reconcile.reconcile(deps)

    assert deps.notification_queue.poison == [text]  # held: Graph did not answer that mailbox
    assert deps.notification_queue.poison_expiry[text] is None  # and rewritten without an expiry
    assert deps.notification_queue.messages == []
    assert health_view(deps, TENANT_A)["poison_queue"]["replayed"] == 0

    del deps.graph.failures[INTERVIEWS]
    assert deps.notification_queue.leased == set()  # the held message is visible again for the next run
    reconcile.reconcile(deps)

    assert deps.notification_queue.poison == []
    [replayed] = [json.loads(m) for m in deps.notification_queue.messages if json.loads(m)["k"] == "change"]
    assert replayed["n"] == json.loads(text)["n"]
    assert (replayed.get("a", 0), replayed["r"]) == (0, 1)  # a fresh round of retries, and counted as a replay
    poison = health_view(deps, TENANT_A)["poison_queue"]
    assert (poison["count"], poison["replayed"]) == (0, 1)


def test_a_poison_message_we_did_not_write_is_left_alone() -> None:
    deps = deps_with_schedule()
    deps.notification_queue.poison.append("not ours")

    report = reconcile.replay_poison(deps)

    assert (report.replayed, report.unreadable) == (0, 1)
    assert deps.notification_queue.poison == ["not ours"] and deps.notification_queue.messages == []


def test_replay_never_raises_when_the_poison_queue_cannot_be_read() -> None:
    deps = deps_with_schedule()
    deps.notification_queue.down = True

    assert reconcile.replay_poison(deps) == reconcile.ReplayReport()


def test_a_new_subscription_records_its_mailboxs_user_id_for_the_webhook() -> None:
    from shared.models import DirectoryUser

    deps = deps_with_schedule()
    deps.graph.users[TENANT_A] = {INTERVIEWS: DirectoryUser("id-interviews", INTERVIEWS, "Interviews")}

    core.ensure_mailbox_subscription(deps, TENANT_A, INTERVIEWS)

    [sub] = deps.subscriptions.list_subscriptions(TENANT_A)
    secret = deps.subscriptions.find_secret(sub.subscription_id)
    assert (sub.mailbox_id, secret.mailbox_id, secret.mailbox) == ("id-interviews", "id-interviews", INTERVIEWS)
