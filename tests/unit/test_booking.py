"""Booking core against the kit's fakes: exactly once, no double booking, only our events, faults."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.booking.change import cancel_booking, update_booking
from shared.booking.claims import CLAIM_LEASE, grid_cells
from shared.booking.create import create_booking
from shared.booking.listing import get_booking
from shared.booking.outlook import apply_observed_event
from shared.booking.request import BookingChange, parse_booking_change, parse_booking_request
from shared.errors import (
    ConcurrencyConflict,
    GraphRequestFailed,
    GraphUnavailable,
    IdempotencyKeyReused,
    InvalidRequest,
    NoAccessToCalendar,
    NotOurEvent,
    PreconditionFailed,
    PreconditionRequired,
    SlotUnavailable,
    UpstreamUnavailable,
)
from shared.identity.guard import RequestContext, require_calendar_access
from shared.identity.readiness import RECRUITING_GROUP
from shared.models import (
    AttendeeResponse,
    Booking,
    BookingStatus,
    BusyBlock,
    FreeBusyStatus,
    ObservedAttendee,
    ObservedEvent,
    Schedule,
    ScheduleStatus,
)
from tests.kit import TENANT_A, FakeBookings, FakeDeps, consented, sign_in

ALEX = "alex@contoso.example"
LYNNE = "lynne@contoso.example"
INTERVIEWS = "interviews@contoso.example"
START = datetime(2026, 12, 8, 15, tzinfo=UTC)


def _deps() -> tuple[FakeDeps, RequestContext]:
    deps = FakeDeps()
    tenant = consented(deps)
    deps.tenants.update_tenant(replace(tenant, interviews_mailbox=INTERVIEWS))
    deps.graph.schedules[TENANT_A] = {ALEX: Schedule(email=ALEX), LYNNE: Schedule(email=LYNNE)}
    return deps, require_calendar_access(deps, sign_in(deps))


def _request(deps: FakeDeps, **overrides: Any) -> Any:
    body = {
        "start": START.isoformat(),
        "end": (START + timedelta(hours=1)).isoformat(),
        "interviewers": [ALEX],
        "candidate": {"name": "Sam Candidate", "email": "sam@example.org"},
        "subject": "Interview: Sam Candidate",
        **overrides,
    }
    return parse_booking_request(body, now=deps.clock.now())


def _busy(deps: FakeDeps, who: str, start: datetime, end: datetime) -> None:
    deps.graph.schedules[TENANT_A][who] = Schedule(email=who, busy=(BusyBlock(start, end, FreeBusyStatus.BUSY),))


def test_a_booking_writes_one_event_carrying_our_property_after_one_free_busy_check() -> None:
    deps, ctx = _deps()
    outcome = create_booking(deps, ctx, _request(deps), "key-00000001")
    booking = outcome.booking
    assert outcome.created and booking.status is BookingStatus.BOOKED
    assert len(deps.graph.schedule_calls) == 1 and deps.events.calls == ["create"]
    event = deps.events.events[booking.event_id or ""]
    assert event.booking_id == booking.booking_id and event.mailbox == INTERVIEWS
    assert booking.join_url == event.join_url and booking.ical_uid == event.ical_uid
    assert booking.transaction_id == "key-00000001"
    assert {r.email for r in booking.responses} == {ALEX, "sam@example.org"}
    assert [h.action for h in booking.history] == ["created"]


def test_the_same_key_and_body_returns_the_original_booking_without_writing_again() -> None:
    deps, ctx = _deps()
    first = create_booking(deps, ctx, _request(deps), "key-00000001").booking
    again = create_booking(deps, ctx, _request(deps), "key-00000001")
    assert not again.created and again.booking.booking_id == first.booking_id
    assert len(deps.events.events) == 1 and deps.events.calls == ["create"]


def test_the_same_key_with_another_body_is_refused() -> None:
    deps, ctx = _deps()
    create_booking(deps, ctx, _request(deps), "key-00000001")
    with pytest.raises(IdempotencyKeyReused):
        create_booking(deps, ctx, _request(deps, subject="Another"), "key-00000001")
    assert len(deps.events.events) == 1


def test_a_slot_claimed_by_another_booking_is_refused_naming_who_is_busy() -> None:
    deps, ctx = _deps()
    create_booking(deps, ctx, _request(deps), "key-00000001")
    with pytest.raises(SlotUnavailable) as refused:
        create_booking(deps, ctx, _request(deps, subject="Other candidate"), "key-00000002")
    assert refused.value.details["busy"] == [ALEX]
    assert len(deps.events.events) == 1
    # The refused request booked nothing; its answer is kept under its key (never listed or counted), so a
    # retry with the key is refused the same way until the refusal's lifetime ends.
    assert [b.status for b in deps.bookings.items.values()].count(BookingStatus.BOOKED) == 1
    with pytest.raises(SlotUnavailable) as again:
        create_booking(deps, ctx, _request(deps, subject="Other candidate"), "key-00000002")
    assert (again.value.message, again.value.details) == (refused.value.message, refused.value.details)


def test_busy_time_refuses_the_slot_unless_availability_checks_are_off() -> None:
    deps, ctx = _deps()
    _busy(deps, ALEX, START, START + timedelta(minutes=30))
    with pytest.raises(SlotUnavailable):
        create_booking(deps, ctx, _request(deps), "key-00000001")
    forced = create_booking(deps, ctx, _request(deps, check_availability=False), "key-00000002").booking
    assert forced.status is BookingStatus.BOOKED
    assert any("check_availability is false" in w for w in forced.warnings)


def test_someone_graph_cannot_read_is_never_free() -> None:
    deps, ctx = _deps()
    deps.graph.schedules[TENANT_A][ALEX] = Schedule(email=ALEX, status=ScheduleStatus.UNREADABLE, reason="timeout")
    # Never free, and never called busy either: nobody knows, so Graph is said to be unreadable.
    with pytest.raises(GraphUnavailable) as refused:
        create_booking(deps, ctx, _request(deps), "key-00000001")
    assert refused.value.details["unreadable"] == [ALEX] and refused.value.details["retry_after"] > 0
    assert not deps.events.events and not deps.bookings.items


def test_an_unknown_interviewer_is_refused_naming_the_field() -> None:
    deps, ctx = _deps()
    with pytest.raises(InvalidRequest) as refused:
        create_booking(deps, ctx, _request(deps, interviewers=[ALEX, "ghost@contoso.example"]), "key-00000001")
    assert refused.value.details["field"] == "interviewers[1]"
    assert not deps.events.events and not deps.bookings.items


def test_a_recruiter_outside_the_group_gets_the_group_named() -> None:
    deps, ctx = _deps()
    deps.events.refuse[INTERVIEWS] = GraphRequestFailed("denied", status=403, reason="forbidden")
    with pytest.raises(NoAccessToCalendar) as refused:
        create_booking(deps, ctx, _request(deps), "key-00000001")
    assert refused.value.details["group"] == RECRUITING_GROUP
    assert RECRUITING_GROUP in refused.value.message


def test_an_interviewer_calendar_is_written_with_the_app_token_and_a_secondary_calendar_warns() -> None:
    deps, ctx = _deps()
    booking = create_booking(
        deps, ctx, _request(deps, calendar=ALEX, calendar_id="AAMkSecondary"), "key-00000001"
    ).booking
    assert booking.mailbox == ALEX and not booking.delegated
    assert any("primary" in w for w in booking.warnings)


class _FailingOnce(FakeBookings):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next_update = False

    def update_booking(self, booking: Booking) -> Booking:
        if self.fail_next_update and booking.status is BookingStatus.BOOKED:
            self.fail_next_update = False
            raise UpstreamUnavailable("storage down")
        return super().update_booking(booking)


def test_storage_failing_after_graph_wrote_is_recovered_by_the_next_request_with_the_key() -> None:
    deps, ctx = _deps()
    deps.bookings = _FailingOnce()
    deps.bookings.fail_next_update = True
    with pytest.raises(UpstreamUnavailable):
        create_booking(deps, ctx, _request(deps), "key-00000001")
    assert len(deps.events.events) == 1
    outcome = create_booking(deps, ctx, _request(deps), "key-00000001")
    assert outcome.booking.status is BookingStatus.BOOKED
    assert len(deps.events.events) == 1
    assert outcome.booking.event_id in deps.events.events
    assert [h.action for h in outcome.booking.history] == ["recovered"]


def _booked(deps: FakeDeps, ctx: RequestContext) -> Booking:
    return create_booking(deps, ctx, _request(deps), "key-00000001").booking


def test_changes_need_the_current_etag() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    change = BookingChange(subject="New subject")
    with pytest.raises(PreconditionRequired):
        update_booking(deps, ctx, booking.booking_id, None, change)
    with pytest.raises(PreconditionFailed):
        update_booking(deps, ctx, booking.booking_id, "stale", change)


def test_an_event_without_our_property_is_never_changed() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    stranger = deps.events.add(
        ObservedEvent(event_id="ev-stranger", mailbox=INTERVIEWS, start=START, end=START + timedelta(hours=1))
    )
    planted = deps.bookings.update_booking(replace(booking, event_id=stranger.event_id))
    calls = len(deps.events.calls)
    with pytest.raises(NotOurEvent):
        update_booking(deps, ctx, planted.booking_id, planted.etag, BookingChange(subject="Hijack"))
    with pytest.raises(NotOurEvent):
        cancel_booking(deps, ctx, planted.booking_id, "bye")
    assert deps.events.calls[calls:] == ["get", "get"]  # read only
    assert deps.events.events["ev-stranger"] == stranger


def test_a_move_that_drops_the_teams_meeting_gets_the_same_meeting_back() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    deps.events.drop_meeting_on_move = 1
    change = parse_booking_change(
        {"start": (START + timedelta(days=1)).isoformat(), "end": (START + timedelta(days=1, hours=1)).isoformat()},
        now=deps.clock.now(),
        current=(booking.start, booking.end),
    )
    moved = update_booking(deps, ctx, booking.booking_id, booking.etag, change)
    event = deps.events.events[booking.event_id or ""]
    assert event.start == START + timedelta(days=1)
    assert event.is_online_meeting and event.join_url == booking.join_url == moved.join_url
    assert [h.action for h in moved.history][-2:] == ["moved", "meeting_restored"]
    # The old slot is free again; the new one is held.
    other = create_booking(deps, ctx, _request(deps, subject="Someone else"), "key-00000002").booking
    assert other.status is BookingStatus.BOOKED


def _move(deps: FakeDeps, booking: Booking, start: datetime) -> BookingChange:
    return parse_booking_change(
        {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
        now=deps.clock.now(),
        current=(booking.start, booking.end),
    )


def _holders(deps: FakeDeps, start: datetime) -> set[str]:
    return {owner for (_, _, cell), owner in deps.bookings.claims.items() if start <= cell < start + timedelta(hours=1)}


def test_the_loser_of_two_changes_sent_with_one_etag_writes_nothing_and_claims_nothing() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    mine, theirs = START + timedelta(hours=2), START + timedelta(hours=4)
    read_event = deps.events.get_event

    def other_request_first(token: Any, mailbox: str, event_id: str) -> ObservedEvent:
        # The other request, sent with the same If-Match, finishes while this one reads the event.
        deps.events.get_event = read_event  # type: ignore[method-assign]
        update_booking(deps, ctx, booking.booking_id, booking.etag, _move(deps, booking, theirs))
        return read_event(token, mailbox, event_id)

    deps.events.get_event = other_request_first  # type: ignore[method-assign]
    updates = deps.events.calls.count("update")
    with pytest.raises(PreconditionFailed):
        update_booking(deps, ctx, booking.booking_id, booking.etag, _move(deps, booking, mine))
    assert deps.events.calls.count("update") == updates + 1  # the winner's write only
    assert deps.events.events[booking.event_id or ""].start == theirs
    assert get_booking(deps, ctx, booking.booking_id).start == theirs
    assert not _holders(deps, mine) and _holders(deps, theirs) == {booking.booking_id}


def test_a_change_whose_graph_write_fails_gives_the_booking_back_at_once_with_its_new_etag() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    later = START + timedelta(hours=2)
    write = deps.events.update_event

    def unavailable(*args: Any) -> None:
        deps.events.update_event = write  # type: ignore[method-assign]
        raise UpstreamUnavailable("Graph is unavailable.")

    deps.events.update_event = unavailable  # type: ignore[method-assign]
    with pytest.raises(UpstreamUnavailable) as failed:
        update_booking(deps, ctx, booking.booking_id, booking.etag, _move(deps, booking, later))
    current = get_booking(deps, ctx, booking.booking_id)
    assert failed.value.details["etag"] == current.etag != booking.etag
    assert (current.start, current.change_id, current.claimed_until) == (START, None, None)
    assert not _holders(deps, later)  # the new slot's claims went with it
    moved = update_booking(deps, ctx, booking.booking_id, failed.value.details["etag"], _move(deps, booking, later))
    assert moved.start == later == deps.events.events[booking.event_id or ""].start


def test_a_change_left_half_done_by_a_dead_request_holds_the_booking_only_until_its_lease_runs_out() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    later, abandoned = START + timedelta(hours=2), START + timedelta(hours=5)
    # The dead request had taken the booking and claimed the time it was moving to.
    deps.bookings.claim_slots(TENANT_A, ALEX, booking.booking_id, grid_cells(abandoned, abandoned + timedelta(hours=1)))
    held = deps.bookings.update_booking(
        replace(
            booking,
            change_id="dead",
            claimed_until=deps.clock.now() + CLAIM_LEASE,
            change_start=abandoned,
            change_end=abandoned + timedelta(hours=1),
        )
    )
    with pytest.raises(ConcurrencyConflict):
        update_booking(deps, ctx, booking.booking_id, held.etag, _move(deps, booking, later))
    deps.clock.advance(seconds=CLAIM_LEASE.total_seconds())
    moved = update_booking(deps, ctx, booking.booking_id, held.etag, _move(deps, booking, later))
    assert (moved.start, moved.status) == (later, BookingStatus.BOOKED)
    assert (moved.change_id, moved.claimed_until) == (None, None)
    assert _holders(deps, later) == {booking.booking_id}
    assert not _holders(deps, abandoned) and not _holders(deps, START)


def test_a_change_in_flight_is_not_drift_but_another_time_or_a_lapsed_lease_is() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    ours, someone_elses = START + timedelta(hours=2), START + timedelta(hours=5)
    deps.bookings.update_booking(
        replace(
            booking,
            change_id="in-flight",
            claimed_until=deps.clock.now() + CLAIM_LEASE,
            change_start=ours,
            change_end=ours + timedelta(hours=1),
            change_subject="Renamed",
        )
    )
    seen = deps.clock.now()
    ahead = _observed(deps, booking, start=ours, end=ours + timedelta(hours=1), subject="Renamed", join_url=None)
    kept = apply_observed_event(deps, TENANT_A, event_id=ahead.event_id, observed=ahead, seen_at=seen)
    assert kept is not None and kept.status is BookingStatus.BOOKED and kept.start == START
    assert [h.action for h in kept.history] == ["created"]
    lapsed = seen + CLAIM_LEASE
    drifted = apply_observed_event(deps, TENANT_A, event_id=ahead.event_id, observed=ahead, seen_at=lapsed)
    assert drifted is not None and drifted.status is BookingStatus.DRIFTED and drifted.start == ours
    deps2, ctx2 = _deps()
    other = _booked(deps2, ctx2)
    deps2.bookings.update_booking(
        replace(other, change_id="x", claimed_until=deps2.clock.now() + CLAIM_LEASE, change_start=ours)
    )
    moved = _observed(deps2, other, start=someone_elses, end=someone_elses + timedelta(hours=1))
    seen2 = deps2.clock.now()
    outlook = apply_observed_event(deps2, TENANT_A, event_id=moved.event_id, observed=moved, seen_at=seen2)
    assert outlook is not None and outlook.status is BookingStatus.DRIFTED and outlook.start == someone_elses


def test_a_booking_stored_with_fractional_seconds_is_not_drift_against_graph_s_whole_seconds() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    fraction = timedelta(microseconds=250_000)
    stored = deps.bookings.update_booking(replace(booking, start=START + fraction, end=booking.end + fraction))
    observed = _observed(deps, booking)  # Graph holds the times cut to the second
    seen = deps.clock.now()
    after = apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=observed, seen_at=seen)
    assert after is not None and after.status is BookingStatus.BOOKED and after.start == stored.start


def test_booking_times_are_cut_to_whole_seconds() -> None:
    deps = FakeDeps()
    request = _request(deps, start=(START + timedelta(microseconds=999_999)).isoformat())
    assert request.start == START and request.start.microsecond == 0


def test_cancel_tells_attendees_once_and_cancelling_again_is_fine() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    cancelled = cancel_booking(deps, ctx, booking.booking_id, "Position filled")
    assert cancelled.status is BookingStatus.CANCELLED
    assert deps.events.cancelled_with == {booking.event_id: "Position filled"}
    again = cancel_booking(deps, ctx, booking.booking_id, "Position filled")
    assert again.status is BookingStatus.CANCELLED and deps.events.calls.count("cancel") == 1
    # The interviewer's slot is free again.
    assert create_booking(deps, ctx, _request(deps, subject="Next"), "key-00000002").booking.event_id


def test_an_attendee_copy_is_deleted_rather_than_cancelled() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    event_id = booking.event_id or ""
    deps.events.events[event_id] = replace(deps.events.events[event_id], organizer="someone@contoso.example")
    cancel_booking(deps, ctx, booking.booking_id, None)
    assert event_id not in deps.events.events


# ---- apply_observed_event -------------------------------------------------------------------------------
def _observed(deps: FakeDeps, booking: Booking, **changes: Any) -> ObservedEvent:
    return replace(deps.events.events[booking.event_id or ""], **changes)


def test_responses_are_recorded_once_with_their_time() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    answered = deps.clock.now() + timedelta(hours=2)
    observed = _observed(
        deps,
        booking,
        attendees=(
            ObservedAttendee(ALEX, response=AttendeeResponse.ACCEPTED, responded_at=answered),
            ObservedAttendee(
                "sam@example.org",
                response=AttendeeResponse.TENTATIVE,
                responded_at=answered,
                proposed_start=START + timedelta(hours=2),
                proposed_end=START + timedelta(hours=3),
            ),
        ),
    )
    seen = deps.clock.now() + timedelta(hours=3)
    first = apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=observed, seen_at=seen)
    assert first is not None
    responded = [h for h in first.history if h.action == "responded"]
    assert {(h.actor, h.at) for h in responded} == {(ALEX, answered), ("sam@example.org", answered)}
    assert any("proposed" in h.detail for h in responded)
    assert {r.email: r.response for r in get_booking(deps, ctx, booking.booking_id).responses} == {
        ALEX: AttendeeResponse.ACCEPTED,
        "sam@example.org": AttendeeResponse.TENTATIVE,
    }
    second = apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=observed, seen_at=seen)
    assert second == first  # same etag: nothing written


def test_a_move_in_outlook_is_drift_and_a_deletion_cancels() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    later = START + timedelta(hours=4)
    observed = _observed(deps, booking, start=later, end=later + timedelta(hours=1), change_key="9")
    seen = deps.clock.now()
    drifted = apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=observed, seen_at=seen)
    assert drifted is not None and drifted.status is BookingStatus.DRIFTED and drifted.start == later
    assert drifted.history[-1].action == "drifted" and drifted.history[-1].actor == "outlook"
    assert apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=observed, seen_at=seen) == drifted
    gone = apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=None, seen_at=seen)
    assert gone is not None and gone.status is BookingStatus.CANCELLED
    assert apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=None, seen_at=seen) == gone


def test_slot_claims_follow_a_move_in_outlook_and_are_released_when_it_is_deleted() -> None:
    deps, ctx = _deps()
    booking = _booked(deps, ctx)
    claimed = {k for k, owner in deps.bookings.claims.items() if owner == booking.booking_id}
    assert claimed and all(START <= cell < booking.end for _, _, cell in claimed)
    later = START + timedelta(hours=4)
    observed = _observed(deps, booking, start=later, end=later + timedelta(hours=1), change_key="9")
    seen = deps.clock.now()
    apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=observed, seen_at=seen)
    moved = {cell for (_, _, cell), owner in deps.bookings.claims.items() if owner == booking.booking_id}
    assert moved and all(later <= cell < later + timedelta(hours=1) for cell in moved)
    apply_observed_event(deps, TENANT_A, event_id=observed.event_id, observed=None, seen_at=seen)
    assert booking.booking_id not in deps.bookings.claims.values()


def test_an_event_that_is_not_ours_is_not_a_booking() -> None:
    deps, _ctx = _deps()
    stranger = ObservedEvent(event_id="ev-x", mailbox=INTERVIEWS, start=START, end=START + timedelta(hours=1))
    assert apply_observed_event(deps, TENANT_A, event_id="ev-x", observed=stranger, seen_at=START) is None
    assert apply_observed_event(deps, TENANT_A, event_id="ev-x", observed=None, seen_at=START) is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"}, "start"),
        ({"end": START.isoformat()}, "end"),
        ({"end": (START + timedelta(hours=9)).isoformat()}, "end"),
        ({"interviewers": [], "candidate": None}, "interviewers"),
        ({"interviewers": ["not-an-address"]}, "interviewers[0]"),
        ({"candidate": {"email": "sam@@example.org"}}, "candidate.email"),
        ({"body": "x" * (64 * 1024 + 1)}, "body"),
        ({"calendar": "someone@contoso.example"}, "calendar"),
    ],
)
def test_bad_input_names_the_field(overrides: dict[str, Any], field: str) -> None:
    deps = FakeDeps()
    with pytest.raises(InvalidRequest) as refused:
        _request(deps, **overrides)
    assert refused.value.details["field"] == field


def test_a_cancellation_message_in_the_query_is_held_to_the_text_rule_even_beside_one_in_the_body() -> None:
    from shared.booking.request import cancel_message
    from shared.errors import InvalidRequest

    assert cancel_message({"message": "Filled.\r\nThanks"}, "Also fine") == "Filled.\r\nThanks"
    with pytest.raises(InvalidRequest) as refused:
        cancel_message({"message": "Filled."}, "\x84")
    assert refused.value.details["field"] == "message"
