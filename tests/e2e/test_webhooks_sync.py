"""Two-way sync end to end: what people do in Outlook reaches the booking through Graph's notifications,
the queue and the worker on the local host; queue outages, poison messages and lost subscriptions heal.

The app's clock is the cloud's (one container override), so moving the cloud's clock moves both: a
subscription that lapses at the cloud has lapsed for the app too. The queue worker is polled for with a
short bounded wait; nothing sleeps for long.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from devtools.azurite import connection_string, free_port
from devtools.cloud import notify
from devtools.cloud.graph import controls as graph
from shared.bootstrap import Container, set_container
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO, CONTOSO_ADMIN, KEY, RECRUITER, browser_sign_in, consent, stack_today

pytestmark = pytest.mark.e2e

INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"
ALEX = "alex.wilber@contoso.example"
LYNNE = "lynne.robbins@contoso.example"
WAIT_SECONDS = 20.0  # the worker polls the queue at least every 2 s (host.json)
T = TypeVar("T")


class CloudClock:
    """The app's clock reads the cloud's, so both move together."""

    def __init__(self, stack: Stack) -> None:
        self._world = stack.world

    def now(self) -> datetime:
        return self._world.now()


def wait_for(what: str, fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = WAIT_SECONDS) -> T:
    """Fetch until ``done`` holds for what was fetched (short steps, bounded); returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}; last seen: {value!r}")
        time.sleep(0.1)


def slot(days: int, hour: int) -> tuple[datetime, datetime]:
    day = stack_today() + timedelta(days=days)
    while day.weekday() != 1:  # a Tuesday, clear of the fixtures' meetings
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return start, start + timedelta(hours=1)


class Synced:
    """A consented tenant whose Interviews and Sync mailboxes are subscribed, with a recruiter and an admin."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        consent(stack)
        self.admin = browser_sign_in(stack, CONTOSO_ADMIN)
        put = self.admin.request(
            "PUT",
            "/api/tenants/me/settings",
            headers=KEY,
            json={"interviews_mailbox": INTERVIEWS, "sync_mailbox": SYNC},
        )
        assert put.status_code == 200, put.text
        self.recruiter = browser_sign_in(stack, RECRUITER)

    def sign_in_again(self) -> None:
        self.admin = browser_sign_in(self.stack, CONTOSO_ADMIN)
        self.recruiter = browser_sign_in(self.stack, RECRUITER)

    def book(self, *, days: int = 21, hour: int = 21, **extra: Any) -> dict[str, Any]:
        start, end = slot(days, hour)
        body = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "interviewers": [ALEX, LYNNE],
            "candidate": {"name": "Sam Candidate", "email": "sam@example.org"},
            "subject": "Interview: Sam Candidate",
            "online_meeting": False,
            **extra,
        }
        headers = {**KEY, "Idempotency-Key": f"key-{uuid.uuid4()}"}
        response = self.recruiter.request("POST", "/api/bookings", headers=headers, json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def booking(self, booking_id: str) -> dict[str, Any]:
        response = self.recruiter.request("GET", f"/api/bookings/{booking_id}", headers=KEY)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def attendee(self, booking_id: str, email: str) -> dict[str, Any]:
        return next(a for a in self.booking(booking_id)["attendees"] if a["email"] == email)

    def health(self) -> dict[str, Any]:
        response = self.admin.request("GET", "/api/subscriptions/health", headers=KEY)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def subscription_of(self, mailbox: str) -> dict[str, Any]:
        [sub] = [s for s in self.health()["subscriptions"] if s["mailbox"] == mailbox]
        return sub

    def cloud_subscriptions(self, mailbox: str) -> list[Any]:
        user = graph.resolve_user(self.stack.world, mailbox)
        with self.stack.world.lock:
            subs = list(notify.state(self.stack.world).subscriptions.values())
        return [s for s in subs if s.mailbox_id == user.id and not s.expired(self.stack.world.now())]

    def wait_for_response(self, booking_id: str, email: str, response: str) -> dict[str, Any]:
        return wait_for(
            f"{email}'s {response} on the booking",
            lambda: self.attendee(booking_id, email),
            lambda a: a["response"] == response,
        )


@pytest.fixture
def synced(e2e: Stack) -> Iterator[Synced]:
    set_container(Container(clock=CloudClock(e2e)))
    try:
        yield Synced(e2e)
    finally:
        set_container(None)


def run_timer(name: str) -> None:
    """Run a timer function as the host does when its schedule comes due (the schedules are hours apart)."""
    from azure.functions.timer import TimerRequest

    from tests.app_functions import app_functions

    [fn] = [f for f in app_functions() if f.get_function_name() == name]
    fn.get_user_function()(TimerRequest(past_due=True))


@pytest.mark.dates
def test_a_decline_and_a_proposed_new_time_reach_the_booking_and_a_duplicate_delivery_changes_nothing(
    synced: Synced,
) -> None:
    booking = synced.book()
    world = synced.stack.world
    proposed = datetime.fromisoformat(booking["start"]) + timedelta(days=1)

    graph.decline(world, booking["event_id"], ALEX)
    graph.propose_new_time(world, booking["event_id"], LYNNE, proposed, proposed + timedelta(hours=1))

    alex = synced.wait_for_response(booking["id"], ALEX, "declined")
    lynne = synced.wait_for_response(booking["id"], LYNNE, "tentativelyAccepted")
    assert alex["responded_at"]
    assert datetime.fromisoformat(lynne["proposed_start"]) == proposed
    settled = wait_for(
        "both answers in the history",
        lambda: synced.booking(booking["id"]),
        lambda b: len([h for h in b["history"] if h["action"] == "responded"]) == 2,
    )
    assert settled["status"] == "booked"

    # Graph delivers the same notification again (its retry after a lost answer, say).
    [delivered] = [
        r for r in notify.delivery_log(world) if r.kind == "change" and r.outcome == "delivered" and r.payload
    ][-1:]
    sub_id = delivered.subscription_ids[0]
    seen_before = synced.subscription_of(INTERVIEWS)["last_notification_at"]
    again = httpx.post(f"{synced.stack.base_url}/api/webhooks/graph", json=delivered.payload)
    assert again.status_code == 202
    wait_for(
        "the worker to take the duplicate",
        lambda: [s for s in synced.health()["subscriptions"] if s["subscription_id"] == sub_id][0],
        lambda sub: sub["last_notification_at"] != seen_before,
    )
    after = synced.booking(booking["id"])
    assert (after["etag"], after["history"], after["attendees"]) == (
        settled["etag"],
        settled["history"],
        settled["attendees"],
    )


def test_a_moved_and_a_deleted_interview_are_recorded_as_drift(synced: Synced) -> None:
    moved = synced.book(hour=20)
    deleted = synced.book(hour=22)
    world = synced.stack.world
    new_start = datetime.fromisoformat(moved["start"]) + timedelta(hours=2, days=1)

    graph.move_event(world, moved["event_id"], new_start, new_start + timedelta(hours=1))
    graph.delete_event(world, deleted["event_id"])

    drifted = wait_for("the move", lambda: synced.booking(moved["id"]), lambda b: b["status"] == "drifted")
    assert datetime.fromisoformat(drifted["start"]) == new_start
    assert any(h["action"] == "drifted" and "moved" in h["detail"] for h in drifted["history"])
    gone = wait_for("the deletion", lambda: synced.booking(deleted["id"]), lambda b: b["status"] == "cancelled")
    assert any(h["action"] == "drifted" and "deleted in Outlook" in h["detail"] for h in gone["history"])


def redeliver_everything(world: Any) -> None:
    """Make Graph's retries fall due until none is left: a redelivery that a loaded machine answers after
    Graph's 3 s is retried like any other, so the cloud's clock moves on until the queue is empty."""
    for _ in range(5):
        notify.advance_clock(world, max(world.switches.notification_retry_seconds) + 1)
        try:
            notify.wait_for_deliveries(world, lambda log: notify.pending_count(world) == 0)
            return
        except TimeoutError:
            continue
    raise AssertionError(f"{notify.pending_count(world)} notifications still pending at the cloud")


def test_queue_storage_down_answers_503_and_every_redelivered_notification_is_processed(synced: Synced) -> None:
    first = synced.book(hour=19)
    second = synced.book(hour=21)
    world = synced.stack.world
    settings = synced.stack.settings
    # Each booking's own "created" notification was queued at the cloud by the create itself. One still in
    # flight when the queue breaks was taken with working storage and is answered 202 after the log below
    # is cleared: wait until the cloud has none pending or in flight, so the outage sees only the responses.
    redeliver_everything(world)
    # The queue adapter itself, pointed at a storage endpoint where nothing listens: what an outage looks like.
    from shared.adapters.queues import StorageQueue

    azurite = synced.stack.azurite
    dead = connection_string(azurite.blob_port, free_port(), azurite.table_port)
    outage = StorageQueue(dead, settings["NOTIFICATION_QUEUE"])
    set_container(Container(clock=CloudClock(synced.stack), notification_queue=outage))
    notify.clear_delivery_log(world)

    graph.decline(world, first["event_id"], ALEX)
    graph.accept(world, second["event_id"], LYNNE)
    graph.tentatively_accept(world, second["event_id"], ALEX)

    failed = notify.wait_for_deliveries(
        world,
        lambda log: (
            sum(1 for r in log if r.kind == "change" and r.status == 503) >= 1 and notify.pending_count(world) > 0
        ),
    )
    assert not [r for r in failed if r.kind == "change" and r.status is not None and 200 <= r.status < 300]
    pending = notify.pending_count(world)

    set_container(Container(clock=CloudClock(synced.stack)))  # storage is back
    redeliver_everything(world)

    synced.wait_for_response(first["id"], ALEX, "declined")
    synced.wait_for_response(second["id"], LYNNE, "accepted")
    synced.wait_for_response(second["id"], ALEX, "tentativelyAccepted")
    redelivered = [r for r in notify.delivery_log(world) if r.kind == "change" and r.outcome == "delivered"]
    assert redelivered and all(r.status == 202 for r in redelivered)
    assert sum(len(r.payload["value"]) for r in redelivered if r.payload) >= pending


def test_a_message_that_keeps_failing_goes_to_the_poison_queue_after_5_attempts_and_shows_in_health(
    synced: Synced, caplog: pytest.LogCaptureFixture
) -> None:
    booking = synced.book()
    world = synced.stack.world
    before = synced.health()["poison_queue"]["count"]
    notify.clear_delivery_log(world)
    # An application access policy now keeps the app out of the Interviews mailbox: every read fails alike.
    graph.block_mailbox(world, INTERVIEWS)
    try:
        graph.decline(world, booking["event_id"], ALEX)
        log = notify.wait_for_deliveries(
            world, lambda log: any(r.kind == "change" for r in log) and notify.pending_count(world) == 0
        )
        accepted = [r for r in log if r.kind == "change" and r.status == 202]  # one queue message each
        health = wait_for(
            "the poison queue",
            synced.health,
            lambda h: h["poison_queue"]["count"] == before + len(accepted),
            timeout=40,
        )
    finally:
        graph.block_mailbox(world, INTERVIEWS, blocked=False)
    assert accepted
    assert health["poison_queue"]["queue"] == synced.stack.settings["NOTIFICATION_QUEUE"] + "-poison"
    assert caplog.text.count("because it failed 5 times") >= len(accepted)
    assert synced.attendee(booking["id"], ALEX)["response"] == "none"


def test_an_expired_subscription_is_recreated_by_a_late_renewal_and_notifications_flow_again(synced: Synced) -> None:
    booking = synced.book()
    world = synced.stack.world
    old = synced.subscription_of(INTERVIEWS)
    lapsed = datetime.fromisoformat(old["expires_at"]) - world.now() + timedelta(hours=1)

    notify.advance_clock(world, lapsed.total_seconds())  # the renewal timer did not run for a week
    wait_for("Graph to drop the lapsed subscription", lambda: synced.cloud_subscriptions(INTERVIEWS), lambda s: not s)
    synced.sign_in_again()  # the sessions lapsed with the week
    assert synced.subscription_of(INTERVIEWS)["expired"] is True

    run_timer("renew_subscriptions")

    healed = synced.subscription_of(INTERVIEWS)
    assert healed["subscription_id"] != old["subscription_id"] and healed["expired"] is False
    assert [s.id for s in synced.cloud_subscriptions(INTERVIEWS)] == [healed["subscription_id"]]
    graph.decline(world, booking["event_id"], ALEX)
    synced.wait_for_response(booking["id"], ALEX, "declined")


def test_two_concurrent_renewal_runs_leave_one_subscription_per_mailbox(synced: Synced) -> None:
    world = synced.stack.world
    old = synced.subscription_of(INTERVIEWS)
    lapsed = datetime.fromisoformat(old["expires_at"]) - world.now() + timedelta(hours=1)
    notify.advance_clock(world, lapsed.total_seconds())
    wait_for("Graph to drop the lapsed subscriptions", lambda: synced.cloud_subscriptions(INTERVIEWS), lambda s: not s)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for run in [pool.submit(run_timer, "renew_subscriptions") for _ in range(2)]:
            run.result()
    run_timer("renew_subscriptions")  # and a late third run on top

    synced.sign_in_again()
    subs = synced.health()["subscriptions"]
    for mailbox in (INTERVIEWS, SYNC):
        ours = [s for s in subs if s["mailbox"] == mailbox]
        graphs = synced.cloud_subscriptions(mailbox)
        assert len(ours) == 1 and len(graphs) == 1, (mailbox, ours, graphs)
        assert ours[0]["subscription_id"] == graphs[0].id and ours[0]["expired"] is False


def test_a_removed_subscription_is_recreated_from_its_lifecycle_notification(synced: Synced) -> None:
    booking = synced.book()
    world = synced.stack.world
    old = synced.subscription_of(INTERVIEWS)

    assert notify.fire_lifecycle_event(world, old["subscription_id"], "subscriptionRemoved")

    # For a moment both are on record: the new one is stored before the one it replaces is removed.
    [healed] = wait_for(
        "a new subscription, alone",
        lambda: [s for s in synced.health()["subscriptions"] if s["mailbox"] == INTERVIEWS],
        lambda subs: len(subs) == 1 and subs[0]["subscription_id"] != old["subscription_id"],
    )
    assert [s.id for s in synced.cloud_subscriptions(INTERVIEWS)] == [healed["subscription_id"]]
    graph.decline(world, booking["event_id"], ALEX)
    synced.wait_for_response(booking["id"], ALEX, "declined")


def test_a_missed_lifecycle_notification_catches_up_what_graph_did_not_deliver(synced: Synced) -> None:
    booking = synced.book()
    world = synced.stack.world
    sub = synced.subscription_of(INTERVIEWS)
    notify.stop_delivery(world)
    try:
        graph.decline(world, booking["event_id"], ALEX)
        with world.lock:  # Graph lost the change notification
            notify.state(world).pending.clear()
    finally:
        notify.start_delivery(world)
    assert synced.attendee(booking["id"], ALEX)["response"] == "none"

    assert notify.fire_lifecycle_event(world, sub["subscription_id"], "missed")

    synced.wait_for_response(booking["id"], ALEX, "declined")
    assert synced.subscription_of(INTERVIEWS)["last_delta_at"] != sub["last_delta_at"]


def test_a_secondary_calendar_booking_is_covered_by_reconciliation(synced: Synced) -> None:
    from devtools.cloud.graph import store
    from devtools.cloud.graph.calendars import SecondaryCalendar
    from devtools.cloud.state import new_id

    world = synced.stack.world
    calendar = SecondaryCalendar(
        id="AAMkSecondary" + new_id().replace("-", ""), mailbox_id=graph.resolve_user(world, ALEX).id, name="Hiring"
    )
    with world.lock:
        store.graph_state(world).calendars[calendar.id] = calendar
    booking = synced.book(interviewers=[ALEX, LYNNE], calendar=ALEX, calendar_id=calendar.id)
    assert any("reconciliation only" in w for w in booking["warnings"])
    assert synced.health()["secondary_calendar_bookings"] == 1

    graph.decline(world, booking["event_id"], LYNNE)
    assert synced.attendee(booking["id"], LYNNE)["response"] == "none"  # no notification for that calendar

    run_timer("reconcile_subscriptions")

    synced.wait_for_response(booking["id"], LYNNE, "declined")


def test_a_booking_in_an_interviewers_own_calendar_subscribes_it_and_their_decline_arrives(synced: Synced) -> None:
    # The event lives in Lynne's calendar, organised there: only a subscription on her mailbox sees it.
    booking = synced.book(days=28, interviewers=[ALEX, LYNNE], calendar=LYNNE)
    assert booking["organizer"] == LYNNE
    assert synced.subscription_of(LYNNE)["resource"].endswith("/events")
    assert len(synced.cloud_subscriptions(LYNNE)) == 1
    graph.decline(synced.stack.world, booking["event_id"], ALEX)
    assert synced.wait_for_response(booking["id"], ALEX, "declined")["responded_at"]
    # The renewal timer keeps organizers of upcoming bookings subscribed, and never twice.
    run_timer("renew_subscriptions")
    assert len(synced.cloud_subscriptions(LYNNE)) == 1


# ---- a notification touches only its own subscription's mailbox ------------------------------------------
def test_a_notification_on_one_subscription_never_cancels_a_booking_in_another_mailbox(synced: Synced) -> None:
    # Lynne's interview lives in her own mailbox; the forged notifications come with the Interviews
    # subscription's id and clientState (as someone who learned that one secret could send them).
    booking = synced.book(days=28, interviewers=[ALEX, LYNNE], calendar=LYNNE)
    world = synced.stack.world
    ours = synced.subscription_of(INTERVIEWS)
    [at_graph] = synced.cloud_subscriptions(INTERVIEWS)

    def forged(change: str, mailbox: str) -> dict[str, Any]:
        user_id = graph.resolve_user(world, mailbox).id
        return {
            "subscriptionId": ours["subscription_id"],
            "clientState": at_graph.client_state,
            "changeType": change,
            "resource": f"Users/{user_id}/Events/{booking['event_id']}",
            "resourceData": {"id": booking["event_id"]},
            "tenantId": at_graph.tenant_id,
        }

    posted = httpx.post(
        f"{synced.stack.base_url}/api/webhooks/graph",
        json={"value": [forged("deleted", LYNNE), forged("updated", INTERVIEWS), forged("deleted", INTERVIEWS)]},
    )
    assert posted.status_code == 202
    wait_for(
        "the worker to take the forged notifications",
        lambda: synced.subscription_of(INTERVIEWS)["last_notification_at"],
        lambda seen: seen != ours["last_notification_at"],
    )

    after = synced.booking(booking["id"])
    assert after["status"] == "booked"
    assert not [h for h in after["history"] if h["action"] == "drifted"]
    lynne = graph.resolve_user(world, LYNNE)
    with world.lock:
        live = {e.id for e in world.mailbox_events(lynne.id)}
    assert booking["event_id"] in live  # the event is still live at Graph
    assert synced.health()["dropped_notifications"]["wrong_mailbox"] == 1  # the one naming Lynne's mailbox


# ---- a Graph outage: delayed retries, and the poison queue replayed ---------------------------------------
def test_a_graph_outage_longer_than_the_hosts_quick_tries_loses_no_notification(
    synced: Synced, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    from shared.config import Settings

    booking = synced.book()
    world = synced.stack.world
    poison_before = synced.health()["poison_queue"]["count"]
    # The retry delays start at 1 s here (4 s by default), so the outage need not last minutes.
    settings = Settings.from_env({**os.environ, "NOTIFICATION_RETRY_SECONDS": "1"})
    set_container(Container(settings, clock=CloudClock(synced.stack)))
    graph.fail(world, count=1_000_000, status=503, mailbox=INTERVIEWS)
    try:
        graph.decline(world, booking["event_id"], ALEX)
        # Four failed attempts, the last about 15 s into the outage: the host's own five quick tries
        # (visibilityTimeout 0) would have put the message in the poison queue by then.
        wait_for("four failed attempts", lambda: caplog.text, lambda text: "failed on attempt 4 " in text, 60)
    finally:
        graph.clear_switches(world)

    wait_for("the decline", lambda: synced.attendee(booking["id"], ALEX)["response"], lambda r: r == "declined", 40)
    retries = {
        (int(line.split("failed on attempt ")[1].split()[0]), int(line.rsplit("due in ", 1)[1].split()[0]))
        for line in caplog.text.splitlines()
        if "queued again, due in" in line
    }
    assert {(1, 1), (2, 2), (3, 4), (4, 8)} <= retries  # each retry waits twice as long as the one before
    assert synced.health()["poison_queue"]["count"] == poison_before


def test_what_reaches_the_poison_queue_is_replayed_by_reconciliation_once_graph_answers(synced: Synced) -> None:
    booking = synced.book()
    world = synced.stack.world
    before = synced.health()["poison_queue"]
    notify.clear_delivery_log(world)
    graph.block_mailbox(world, INTERVIEWS)  # no retry mends this: straight to the host's tries, then poison
    try:
        graph.decline(world, booking["event_id"], ALEX)
        notify.wait_for_deliveries(
            world, lambda log: any(r.kind == "change" for r in log) and notify.pending_count(world) == 0
        )
        wait_for("the poison queue", synced.health, lambda h: h["poison_queue"]["count"] > before["count"], 40)

        run_timer("reconcile_subscriptions")  # Graph still refuses the Interviews mailbox: the message waits

        held = synced.health()["poison_queue"]
        assert held["count"] >= 1 and synced.attendee(booking["id"], ALEX)["response"] == "none"
    finally:
        graph.block_mailbox(world, INTERVIEWS, blocked=False)

    run_timer("reconcile_subscriptions")

    synced.wait_for_response(booking["id"], ALEX, "declined")
    replayed = wait_for("the poison queue emptied", synced.health, lambda h: h["poison_queue"]["count"] == 0)
    assert replayed["poison_queue"]["replayed"] >= 1


# ---- an anonymous flood costs one lookup per distinct id and one log line ----------------------------------
def test_an_anonymous_flood_naming_one_unknown_subscription_logs_one_line(
    e2e: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = str(uuid.uuid4())
    body = {
        "value": [
            {
                "subscriptionId": unknown,
                "clientState": "guessed",
                "changeType": "updated",
                "resource": f"Users/{uuid.uuid4()}/Events/AAMk{i}",
                "resourceData": {"id": f"AAMk{i}"},
                "tenantId": str(uuid.uuid4()),
            }
            for i in range(1000)
        ]
    }
    caplog.clear()

    posted = httpx.post(f"{e2e.base_url}/api/webhooks/graph", json=body)

    assert posted.status_code == 202
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.sync.intake"]
    assert len(lines) == 1 and "1000" in lines[0]
    assert sum(len(line) for line in lines) < 400  # not 1,000 lines (152 KiB)


class BothReadFirst:
    """Holds the first write of one booking (up to a few seconds) until two requests have each read it twice
    (the handler's read and the core's): the window in which two changes with the same If-Match race."""

    def __init__(self, store: Any, booking_id: str, reads: int = 4) -> None:
        self._store = store
        self._booking_id = booking_id
        self._wanted = reads
        self._reads = 0
        self._lock = threading.Lock()
        self._all_read = threading.Event()
        self._get = store.get_booking
        self._update = store.update_booking

    def get_booking(self, tenant_id: str, booking_id: str) -> Any:
        found = self._get(tenant_id, booking_id)
        if booking_id == self._booking_id:
            with self._lock:
                self._reads += 1
                if self._reads >= self._wanted:
                    self._all_read.set()
        return found

    def update_booking(self, booking: Any) -> Any:
        if booking.booking_id == self._booking_id:
            self._all_read.wait(timeout=5)
        return self._update(booking)


def settle(synced: Synced) -> None:
    """Every change notification Graph holds delivered, and every queued message taken by the worker."""
    from azure.storage.queue import QueueClient

    notify.flush_notifications(synced.stack.world)
    queue = QueueClient.from_connection_string(
        synced.stack.azurite.connection_string, synced.stack.settings["NOTIFICATION_QUEUE"]
    )
    wait_for(
        "the worker to empty the queue",
        lambda: queue.get_queue_properties().approximate_message_count,
        lambda count: count == 0,
    )


def test_two_moves_with_the_same_if_match_one_wins_and_graph_holds_its_time_without_drift(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.bootstrap import get_container

    booking = synced.book(online_meeting=True)
    settle(synced)
    store = get_container().bookings
    pair = BothReadFirst(store, booking["id"])
    monkeypatch.setattr(store, "get_booking", pair.get_booking)
    monkeypatch.setattr(store, "update_booking", pair.update_booking)
    targets = [slot(days=22, hour=19), slot(days=22, hour=22)]

    def move(target: tuple[datetime, datetime]) -> httpx.Response:
        return synced.recruiter.request(  # type: ignore[no-any-return]
            "PATCH",
            f"/api/bookings/{booking['id']}",
            headers={**KEY, "If-Match": booking["etag"]},
            json={"start": target[0].isoformat(), "end": target[1].isoformat()},
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(move, targets))
    monkeypatch.undo()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 412], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200).json()
    lost = next(a for a in answers if a.status_code == 412).json()["error"]
    assert lost["code"] == "precondition_failed"
    winner, loser = (targets[0], targets[1]) if answers[0].status_code == 200 else (targets[1], targets[0])
    assert (datetime.fromisoformat(won["start"]), datetime.fromisoformat(won["end"])) == winner
    event = graph._event(synced.stack.world, booking["event_id"])
    assert (event.start, event.end) == winner  # what the answer says is what Graph holds

    # The loser's slot is free for anyone (its claims are gone); the winner's is held.
    from shared.booking.claims import grid_cells
    from shared.errors import ConcurrencyConflict

    store = get_container().bookings
    probe = "probe" * 5 + "x"  # another booking's id
    for person in (ALEX, LYNNE):
        store.claim_slots(CONTOSO, person, probe, grid_cells(*loser))
        store.release_slots(CONTOSO, person, probe, grid_cells(*loser))
        with pytest.raises(ConcurrencyConflict):
            store.claim_slots(CONTOSO, person, probe, grid_cells(*winner))

    settle(synced)
    after = synced.booking(booking["id"])
    assert after["status"] == "booked", after["history"]
    assert not [h for h in after["history"] if h["action"] == "drifted"]
    assert (datetime.fromisoformat(after["start"]), datetime.fromisoformat(after["end"])) == winner


def test_times_with_fractional_seconds_are_kept_to_the_second_and_never_seen_as_drift(synced: Synced) -> None:
    start, end = slot(days=21, hour=20)
    fraction = timedelta(microseconds=654321)
    booking = synced.book(start=(start + fraction).isoformat(), end=(end + fraction).isoformat())
    assert (datetime.fromisoformat(booking["start"]), datetime.fromisoformat(booking["end"])) == (start, end)
    later, later_end = slot(days=22, hour=19)
    moved = synced.recruiter.request(
        "PATCH",
        f"/api/bookings/{booking['id']}",
        headers={**KEY, "If-Match": booking["etag"]},
        json={"start": (later + fraction).isoformat(), "end": (later_end + fraction).isoformat()},
    )
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["start"]) == later
    event = graph._event(synced.stack.world, booking["event_id"])
    assert (event.start, event.end) == (later, later_end)
    settle(synced)
    after = synced.booking(booking["id"])
    assert after["status"] == "booked", after["history"]
    assert [h["action"] for h in after["history"]] == ["created", "moved"]
