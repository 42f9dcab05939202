"""The notification worker over fakes: reads the event, hands it to the booking core, retries by raising."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import GraphRequestFailed, InvalidRequest, UpstreamUnavailable
from shared.models import AttendeeResponse, Booking, BookingStatus, ObservedAttendee, ObservedEvent, Subscription
from shared.sync.intake import encode_messages
from shared.sync.worker import MAX_DELAYED_RETRIES, process_message, retry_delay, run_message
from tests.kit import TENANT_A, FakeDeps, consented

MAILBOX = "interviews@contoso.example"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, ObservedEvent | None]] = []

    def __call__(
        self, deps: Any, tenant_id: str, *, event_id: str, observed: ObservedEvent | None, seen_at: datetime
    ) -> Booking | None:
        self.calls.append((tenant_id, event_id, observed))
        return None


def setup() -> FakeDeps:
    deps = FakeDeps()
    consented(deps)
    deps.subscriptions.create_subscription(
        Subscription(TENANT_A, "sub-1", f"users/{MAILBOX}/events", MAILBOX, deps.clock.now() + timedelta(days=7))
    )
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    deps.events.add(ObservedEvent("AAMk1", MAILBOX, start, start + timedelta(hours=1), booking_id="b1"))
    deps.bookings.create_booking(  # the booking that event belongs to
        Booking(
            TENANT_A,
            "b1",
            MAILBOX,
            start,
            start + timedelta(hours=1),
            "Interview",
            BookingStatus.BOOKED,
            event_id="AAMk1",
        )
    )
    return deps


def message(*items: dict[str, str], kind: str = "change") -> str:
    [text] = encode_messages(kind, list(items), datetime(2026, 11, 25, tzinfo=UTC))
    return text


def test_a_changed_event_is_read_and_applied_once_per_message() -> None:
    deps, apply = setup(), Recorder()
    item = {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}

    report = process_message(deps, message(item, item), apply=apply)

    assert report.events == 1
    [(tenant, event_id, observed)] = apply.calls
    assert (tenant, event_id) == (TENANT_A, "AAMk1") and observed is not None and observed.booking_id == "b1"
    assert deps.subscriptions.get_subscription(TENANT_A, "sub-1").last_notification_at == deps.clock.now()


def test_a_deleted_or_vanished_event_is_applied_as_gone() -> None:
    deps, apply = setup(), Recorder()
    booked_in(deps, MAILBOX, "AAMkX")  # a booking whose event Graph no longer holds

    process_message(
        deps,
        message(
            {"t": TENANT_A, "s": "sub-1", "c": "deleted", "e": "AAMk1"},
            {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkX"},
        ),
        apply=apply,
    )

    assert [(e, o) for _, e, o in apply.calls] == [("AAMk1", None), ("AAMkX", None)]


def test_notifications_of_a_replaced_subscription_are_skipped() -> None:
    deps, apply = setup(), Recorder()

    report = process_message(deps, message({"t": TENANT_A, "s": "sub-old", "c": "updated", "e": "AAMk1"}), apply=apply)

    assert report.skipped == 1 and apply.calls == []


def test_catch_up_items_name_the_mailbox_themselves() -> None:
    deps, apply = setup(), Recorder()

    process_message(
        deps, message({"t": TENANT_A, "m": MAILBOX, "c": "updated", "e": "AAMk1"}, kind="sync"), apply=apply
    )

    assert apply.calls[0][2] is not None


def test_a_failure_raises_so_the_queue_delivers_again() -> None:
    deps = setup()

    def failing(*args: Any, **kwargs: Any) -> Booking | None:
        raise UpstreamUnavailable("storage is down")

    with pytest.raises(UpstreamUnavailable):
        process_message(deps, message({"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}), apply=failing)


def test_a_message_we_did_not_write_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        process_message(setup(), '{"hello": 1}', apply=Recorder())


# ---- a notification touches only its own subscription's mailbox ----------------------------------------
LYNNE = "lynne.robbins@contoso.example"


def booked_in(deps: FakeDeps, mailbox: str, event_id: str) -> Booking:
    start = datetime(2026, 12, 2, 10, tzinfo=UTC)
    return deps.bookings.create_booking(
        Booking(
            TENANT_A,
            f"b-{event_id}",
            mailbox,
            start,
            start + timedelta(hours=1),
            "Interview",
            status=BookingStatus.BOOKED,
            event_id=event_id,
        )
    )


def test_a_notification_naming_another_mailboxs_event_cancels_nothing() -> None:
    deps = setup()
    booking = booked_in(deps, LYNNE, "AAMkLynne")  # the event lives in Lynne's mailbox, not in sub-1's
    start = booking.start
    deps.events.add(ObservedEvent("AAMkLynne", LYNNE, start, start + timedelta(hours=1), booking_id=booking.booking_id))

    for change in ("updated", "deleted"):  # read in the Interviews mailbox: 404 there; or reported deleted
        report = process_message(deps, message({"t": TENANT_A, "s": "sub-1", "c": change, "e": "AAMkLynne"}))
        assert (report.foreign, report.bookings_updated) == (1, 0)

    assert deps.bookings.get_booking(TENANT_A, booking.booking_id).status is BookingStatus.BOOKED


def test_a_deletion_seen_in_the_bookings_own_mailbox_still_cancels_it() -> None:
    deps = setup()
    booking = booked_in(deps, MAILBOX, "AAMkGone")

    report = process_message(deps, message({"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkGone"}))

    assert (report.foreign, report.bookings_updated) == (0, 1)
    assert deps.bookings.get_booking(TENANT_A, booking.booking_id).status is BookingStatus.CANCELLED


# ---- retries back off; the last one goes to the host and the poison queue -------------------------------
def unavailable(*args: Any, **kwargs: Any) -> Booking | None:
    raise GraphRequestFailed("Graph is unavailable", status=503, reason="unavailable")


def test_a_transient_failure_is_queued_again_with_a_doubling_delay_past_a_minute_then_raised() -> None:
    deps = setup()
    text = message({"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"})

    for attempt in range(MAX_DELAYED_RETRIES):
        report = run_message(deps, text, apply=unavailable)
        assert report.retried == 1
        text = deps.notification_queue.messages[-1]
        assert json.loads(text)["a"] == attempt + 1
    with pytest.raises(GraphRequestFailed):
        run_message(deps, text, apply=unavailable)  # the host's tries, then the poison queue

    delays = [d.total_seconds() for d in deps.notification_queue.delays if d is not None]
    assert delays == [4, 8, 16, 32, 64]
    assert sum(delays) > 60
    assert json.loads(text)["n"] == [{"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}]


def test_a_retried_message_is_applied_once_graph_answers() -> None:
    deps, apply = setup(), Recorder()
    run_message(deps, message({"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}), apply=unavailable)

    report = run_message(deps, deps.notification_queue.messages[-1], apply=apply)

    assert (report.events, report.retried) == (1, 0) and len(apply.calls) == 1


def test_a_failure_that_a_retry_cannot_mend_raises_at_once() -> None:
    deps = setup()

    def blocked(*args: Any, **kwargs: Any) -> Booking | None:
        raise GraphRequestFailed("an access policy", status=403, reason="access_policy")

    with pytest.raises(GraphRequestFailed):
        run_message(deps, message({"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}), apply=blocked)
    assert deps.notification_queue.messages == []


def test_when_the_retry_cannot_be_queued_the_failure_raises_so_the_host_keeps_the_message() -> None:
    deps = setup()
    deps.notification_queue.down = True

    with pytest.raises(UpstreamUnavailable):
        run_message(deps, message({"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}), apply=unavailable)


def test_the_retry_delay_doubles_from_the_setting_in_whole_seconds() -> None:
    assert [retry_delay(1.5, a).total_seconds() for a in range(4)] == [2, 3, 6, 12]


# ---- an event that is none of our bookings costs no Graph read ------------------------------------------
ALEX = "alex.wilber@contoso.example"


def now_message(deps: FakeDeps, *items: dict[str, str]) -> str:
    [text] = encode_messages("change", list(items), deps.clock.now())
    return text


def test_an_event_that_is_none_of_our_bookings_is_not_read_from_graph() -> None:
    deps, apply = setup(), Recorder()
    start = datetime(2026, 12, 3, 9, tzinfo=UTC)
    deps.events.add(ObservedEvent("AAMkLunch", MAILBOX, start, start + timedelta(hours=1), subject="Lunch"))

    report = process_message(
        deps,
        now_message(
            deps,
            {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkLunch"},
            {"t": TENANT_A, "s": "sub-1", "c": "deleted", "e": "AAMkGym"},
        ),
        apply=apply,
    )

    assert (report.unrelated, report.events, report.deferred) == (2, 0, 0)
    assert deps.events.calls == [] and apply.calls == [] and deps.notification_queue.messages == []
    assert deps.subscriptions.get_subscription(TENANT_A, "sub-1").last_notification_at == deps.clock.now()


def pending_in(deps: FakeDeps, mailbox: str, *, lease_seconds: int = 40) -> Booking:
    start = datetime(2026, 12, 4, 10, tzinfo=UTC)
    return deps.bookings.create_booking(
        Booking(
            TENANT_A,
            "b-in-flight",
            mailbox,
            start,
            start + timedelta(hours=1),
            "Interview",
            interviewers=(ALEX,),
            attendees=(ALEX,),
            created_at=deps.clock.now(),
            claimed_until=deps.clock.now() + timedelta(seconds=lease_seconds),
        )
    )


def test_a_notification_for_the_event_of_a_booking_still_being_made_waits_for_it_and_is_then_applied() -> None:
    deps = setup()
    pending = pending_in(deps, MAILBOX)
    # Graph holds the event (Alex already declined) but the request has not stored its id yet.
    event = deps.events.add(
        ObservedEvent(
            "AAMkNew",
            MAILBOX,
            pending.start,
            pending.end,
            subject="Interview",
            booking_id=pending.booking_id,
            attendees=(ObservedAttendee(ALEX, response=AttendeeResponse.DECLINED),),
        )
    )
    deps.clock.advance(seconds=1)
    item = {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkNew"}

    report = process_message(deps, now_message(deps, item))

    assert (report.deferred, report.unrelated, report.events) == (1, 0, 0)
    assert deps.events.calls == []  # nothing read while the booking is being made
    [again] = deps.notification_queue.messages
    assert json.loads(again)["n"] == [item]
    [delay] = deps.notification_queue.delays
    assert delay == timedelta(seconds=39 + 2)  # the rest of the request's lease, and a little more

    # The request stores the booking with its event id; the waiting notification now applies the decline.
    current = deps.bookings.get_booking(TENANT_A, pending.booking_id)
    deps.bookings.update_booking(
        replace(current, status=BookingStatus.BOOKED, event_id=event.event_id, claimed_until=None)
    )
    deps.clock.advance(seconds=41)
    report = process_message(deps, again)

    assert (report.events, report.bookings_updated, report.deferred) == (1, 1, 0)
    [alex] = deps.bookings.get_booking(TENANT_A, pending.booking_id).responses
    assert alex.response is AttendeeResponse.DECLINED


def test_a_booking_begun_after_the_notification_arrived_cannot_own_its_event() -> None:
    deps = setup()
    item = {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkOld"}
    text = now_message(deps, item)
    deps.clock.advance(minutes=6)  # later than any clock difference between instances
    pending_in(deps, MAILBOX)

    report = process_message(deps, text)

    assert (report.unrelated, report.deferred) == (1, 0) and deps.events.calls == []


def test_a_booking_being_made_in_another_mailbox_does_not_hold_a_notification_back() -> None:
    deps = setup()
    pending_in(deps, ALEX)

    report = process_message(deps, now_message(deps, {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkOther"}))

    assert (report.unrelated, report.deferred) == (1, 0)


def test_a_waiting_notification_looks_again_every_30_s_while_the_request_is_dead_and_gives_up_after_15_minutes() -> (
    None
):
    deps = setup()
    pending_in(deps, MAILBOX, lease_seconds=-5)  # its request died: the recovery timer will settle it
    text = now_message(deps, {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkNew"})

    assert process_message(deps, text).deferred == 1
    assert deps.notification_queue.delays == [timedelta(seconds=30)]
    deps.clock.advance(minutes=16)
    report = process_message(deps, deps.notification_queue.messages[-1])

    assert (report.deferred, report.unrelated) == (0, 1) and deps.events.calls == []
