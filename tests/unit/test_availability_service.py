"""The availability service over fakes: what it asks Graph for, caps from stored bookings, refusals."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from functions._contract import check_body
from shared.cache.reader import WarmSchedule
from shared.errors import GraphRequestFailed, InvalidRequest, ReauthRequired
from shared.identity.guard import require_calendar_access
from shared.models import (
    AttendeeResponse,
    Booking,
    BookingStatus,
    BusyBlock,
    FreeBusyStatus,
    ObservedAttendee,
    Schedule,
    ScheduleStatus,
    WorkingHours,
)
from shared.scheduling import availability
from shared.scheduling.availability import find_availability, find_interview_loops
from shared.scheduling.request import parse_availability_request, parse_loop_request
from tests.kit import TENANT_A, FakeDeps, consented, sign_in

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = datetime(2030, 12, 2, tzinfo=UTC)  # a Monday, well after the fake clock's now
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


def _hours() -> WorkingHours:
    return WorkingHours(
        days=WEEKDAYS, start=time(9), end=time(17), time_zone=NEW_YORK, time_zone_name="America/New_York"
    )


def _deps(*schedules: Schedule) -> tuple[FakeDeps, str]:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    deps.graph.schedules[TENANT_A] = {s.email: s for s in schedules}
    return deps, credential


def _request(**body: object) -> dict[str, object]:
    return {
        "interviewers": ["ann@contoso.example"],
        "start": MONDAY.isoformat(),
        "end": (MONDAY + timedelta(days=1)).isoformat(),
        "duration_minutes": 60,
        "interval_minutes": 60,
        "time_zone": "America/New_York",
        **body,
    }


def test_slots_come_from_the_schedules_graph_returned() -> None:
    busy = BusyBlock(
        start=datetime(2030, 12, 2, 15, tzinfo=UTC),
        end=datetime(2030, 12, 2, 16, tzinfo=UTC),
        status=FreeBusyStatus.BUSY,
    )
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours(), busy=(busy,)))
    ctx = require_calendar_access(deps, credential)
    answer = find_availability(deps, ctx, parse_availability_request(_request()))
    hours = [s.start.astimezone(NEW_YORK).hour for s in answer.search.slots]
    assert hours == [9, 11, 12, 13, 14, 15, 16]  # 10:00 New York is 15:00 UTC, when Ann is busy
    assert len(deps.graph.schedule_calls) == 1
    emails, start, end = deps.graph.schedule_calls[0]
    assert emails == ("ann@contoso.example",)
    assert (start, end) == (MONDAY, MONDAY + timedelta(days=1))


def test_buffers_widen_the_window_read_from_graph() -> None:
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours()))
    ctx = require_calendar_access(deps, credential)
    find_availability(
        deps, ctx, parse_availability_request(_request(buffer_before_minutes=30, buffer_after_minutes=15))
    )
    _, start, end = deps.graph.schedule_calls[0]
    assert (start, end) == (MONDAY - timedelta(minutes=30), MONDAY + timedelta(days=1, minutes=15))


def test_when_nothing_fits_two_more_weeks_are_read_for_the_explanation() -> None:
    deps, credential = _deps()  # Ann is unknown: never free
    ctx = require_calendar_access(deps, credential)
    answer = find_availability(deps, ctx, parse_availability_request(_request()))
    assert answer.search.slots == ()
    assert answer.search.explanation is not None
    assert [call[2] for call in deps.graph.schedule_calls] == [
        MONDAY + timedelta(days=1),
        MONDAY + timedelta(days=15),
    ]


def test_the_explanation_read_shares_the_deadline_of_the_first_read() -> None:
    deps, credential = _deps()  # Ann is unknown: nothing fits, so the wider read is made
    ctx = require_calendar_access(deps, credential)
    find_availability(deps, ctx, parse_availability_request(_request()))
    first, second = deps.graph.schedule_deadlines  # one deadline for the whole request
    assert second == first


def test_no_explanation_read_once_the_request_s_deadline_has_passed() -> None:
    deps = FakeDeps(availability_deadline_seconds=0.0)  # passed as soon as the first read returns
    consented(deps)
    credential = sign_in(deps)
    ctx = require_calendar_access(deps, credential)
    answer = find_availability(deps, ctx, parse_availability_request(_request()))
    assert answer.search.slots == ()
    assert len(deps.graph.schedule_calls) == 1
    assert answer.search.explanation is not None
    assert [s.kind.value for s in answer.search.explanation.suggestions] == []


def test_a_wider_read_that_loses_someone_leaves_the_first_answer_standing() -> None:
    busy = BusyBlock(start=MONDAY, end=MONDAY + timedelta(days=1), status=FreeBusyStatus.BUSY)
    ann = Schedule(email="ann@contoso.example", working_hours=_hours(), busy=(busy,))
    deps, credential = _deps(ann)
    ctx = require_calendar_access(deps, credential)
    read = deps.graph.get_schedules

    def deadline_passes_during_the_second_read(*args: Any, **kwargs: Any) -> list[Schedule]:
        got = read(*args, **kwargs)
        if len(deps.graph.schedule_calls) == 1:
            return got
        return [Schedule(email=s.email, status=ScheduleStatus.UNREADABLE, reason="timeout") for s in got]

    deps.graph.get_schedules = deadline_passes_during_the_second_read  # type: ignore[method-assign]
    answer = find_availability(deps, ctx, parse_availability_request(_request()))
    assert len(deps.graph.schedule_calls) == 2
    assert [(s.email, s.status) for s in answer.schedules] == [("ann@contoso.example", ScheduleStatus.OK)]
    explanation = answer.search.explanation
    assert explanation is not None
    kinds = {r.kind.value for r in explanation.reasons}
    assert "busy" in kinds and "unreadable" not in kinds  # as the first read saw Ann, not the lost one
    assert "widen_window" not in [s.kind.value for s in explanation.suggestions]


def _ann_booked(booking_id: str, *, status: BookingStatus = BookingStatus.BOOKED, tenant: str = TENANT_A) -> Booking:
    """An interview of Ann's on Monday 2 December 2030, 9:00 in New York, stored by this service."""
    nine = datetime(2030, 12, 2, 9, tzinfo=NEW_YORK).astimezone(UTC)
    return Booking(
        tenant_id=tenant,
        booking_id=booking_id,
        mailbox="ann@contoso.example",
        start=nine,
        end=nine + timedelta(hours=1),
        subject="Interview",
        status=status,
        attendees=("Ann@Contoso.example",),
    )


def test_caps_count_only_live_bookings_of_this_tenant() -> None:
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours()))
    ctx = require_calendar_access(deps, credential)
    deps.bookings.create_booking(_ann_booked("b1", status=BookingStatus.CANCELLED))
    deps.bookings.create_booking(_ann_booked("b2", tenant="another-tenant"))
    request = parse_availability_request(_request(max_per_day=1))
    assert find_availability(deps, ctx, request).search.slots  # neither booking counts
    deps.bookings.create_booking(_ann_booked("b3"))
    assert find_availability(deps, ctx, request).search.slots == ()


def test_caps_do_not_count_an_interview_the_interviewer_declined() -> None:
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours()))
    ctx = require_calendar_access(deps, credential)
    nine = datetime(2030, 12, 2, 9, tzinfo=NEW_YORK).astimezone(UTC)
    booked = Booking(
        tenant_id=TENANT_A,
        booking_id="b1",
        mailbox="interviews@contoso.example",
        start=nine,
        end=nine + timedelta(hours=1),
        subject="Interview",
        status=BookingStatus.BOOKED,
        attendees=("ann@contoso.example", "bob@contoso.example"),
        responses=(
            ObservedAttendee(email="ann@contoso.example", type="required", response=AttendeeResponse.DECLINED),
            ObservedAttendee(email="bob@contoso.example", type="required", response=AttendeeResponse.ACCEPTED),
        ),
    )
    deps.bookings.create_booking(booked)
    request = parse_availability_request(_request(max_per_day=1))
    assert find_availability(deps, ctx, request).search.slots  # Ann declined: she has no interview that day
    stored = deps.bookings.get_booking(TENANT_A, "b1")
    deps.bookings.update_booking(
        replace(
            stored,
            responses=(
                ObservedAttendee(email="ann@contoso.example", type="required", response=AttendeeResponse.ACCEPTED),
            ),
        )
    )
    assert find_availability(deps, ctx, request).search.slots == ()


def _interviews(deps: FakeDeps, who: str, *starts: datetime, **extra: Any) -> None:
    for start in starts:
        deps.bookings.create_booking(
            Booking(
                tenant_id=TENANT_A,
                booking_id=f"{who}-{start.isoformat()}-{extra.get('status', '')}",
                mailbox="interviews@contoso.example",
                start=start.astimezone(UTC),
                end=(start + timedelta(hours=1)).astimezone(UTC),
                subject="Interview",
                attendees=(who,),
                **{"status": BookingStatus.BOOKED, **extra},
            )
        )


def _pool_of_ann_and_bob(deps: FakeDeps) -> None:
    """Ann is first in the pool but has three interviews that week (and a cancelled and a declined
    one that do not count); Bob has none that week, only one the week before."""
    wednesday = datetime(2030, 12, 4, 9, tzinfo=NEW_YORK)
    _interviews(
        deps,
        "ann@contoso.example",
        wednesday,
        wednesday + timedelta(hours=2),
        datetime(2030, 12, 2, 9, tzinfo=NEW_YORK),
    )
    _interviews(deps, "ann@contoso.example", wednesday + timedelta(hours=4), status=BookingStatus.CANCELLED)
    _interviews(
        deps,
        "ann@contoso.example",
        wednesday + timedelta(hours=5),
        responses=(ObservedAttendee(email="ann@contoso.example", type="required", response=AttendeeResponse.DECLINED),),
    )
    _interviews(deps, "bob@contoso.example", wednesday - timedelta(days=7))


_NEW_YORK_MONDAY = {  # the window's days are those of New York: no Sunday evening of the week before
    "start": datetime(2030, 12, 2, tzinfo=NEW_YORK).isoformat(),
    "end": datetime(2030, 12, 3, tzinfo=NEW_YORK).isoformat(),
}
_POOL = {
    "interviewers": [],
    "pools": [{"name": "panel", "members": ["ann@contoso.example", "bob@contoso.example"], "need": 1}],
}


def test_without_a_cap_the_pool_picks_the_least_loaded_and_the_answer_says_everyone_s_load() -> None:
    deps, credential = _deps(
        Schedule(email="ann@contoso.example", working_hours=_hours()),
        Schedule(email="bob@contoso.example", working_hours=_hours()),
    )
    ctx = require_calendar_access(deps, credential)
    _pool_of_ann_and_bob(deps)
    answer = find_availability(deps, ctx, parse_availability_request(_request(**_POOL, **_NEW_YORK_MONDAY)))
    assert answer.search.slots
    assert {s.interviewers for s in answer.search.slots} == {("bob@contoso.example", "ann@contoso.example")}
    assert {s.load for s in answer.search.slots} == {0}
    ann, bob = answer.loads["ann@contoso.example"], answer.loads["bob@contoso.example"]
    # Monday (the window) holds one of Ann's interviews; her ISO week holds all three.
    assert (ann.time_zone_name, dict(ann.days), dict(ann.weeks)) == (
        "America/New_York",
        {MONDAY.date(): 1},
        {(2030, 49): 3},
    )
    assert (dict(bob.days), dict(bob.weeks)) == ({}, {})  # the week before is not the window's


def test_without_a_cap_a_loop_picks_the_least_loaded_and_the_answer_says_everyone_s_load() -> None:
    deps, credential = _deps(
        Schedule(email="ann@contoso.example", working_hours=_hours()),
        Schedule(email="bob@contoso.example", working_hours=_hours()),
    )
    ctx = require_calendar_access(deps, credential)
    _pool_of_ann_and_bob(deps)
    body = {
        "sessions": [{"name": "Coding", "duration_minutes": 60, **_POOL}],
        **_NEW_YORK_MONDAY,
        "time_zone": "America/New_York",
        "interval_minutes": 60,
    }
    answer = find_interview_loops(deps, ctx, parse_loop_request(body))
    assert answer.search.loops
    assert {loop.sessions[0].interviewers for loop in answer.search.loops} == {("bob@contoso.example",)}
    assert {loop.load for loop in answer.search.loops} == {0}
    assert dict(answer.loads["ann@contoso.example"].weeks) == {(2030, 49): 3}


def test_a_refused_user_token_is_reauth_required_never_an_empty_calendar() -> None:
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours()))
    ctx = require_calendar_access(deps, credential)
    deps.graph.failures["me"] = GraphRequestFailed("refused", status=401, reason="unauthorized")
    with pytest.raises(ReauthRequired):
        find_availability(deps, ctx, parse_availability_request(_request()))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"interviewers": ["ann@contoso.example", "ann@contoso.example"]}, "interviewers"),
        (
            {"pools": [{"name": "p", "members": ["ann@contoso.example", "bob@contoso.example"], "need": 1}]},
            "pools[0].members",
        ),
        ({"interviewers": [{"email": "ann@contoso.example", "required": "yes"}]}, "interviewers[0].required"),
        ({"duration_minutes": 1.5}, "duration_minutes"),
        ({"duration_minutes": True}, "duration_minutes"),
        ({"start": "2030-12-02"}, "start"),
        ({"tentative_is_busy": "no"}, "tentative_is_busy"),
        ({"max_per_day": 0}, "max_per_day"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"interviewers": ["ann@contoso.example\n"]}, "interviewers[0]"),
    ],
)
def test_requests_are_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    # The body's shape is checked against openapi.yaml, as the handler does, before the parser reads it.
    with pytest.raises(InvalidRequest) as refused:
        parse_availability_request(check_body("availability", _request(**body)))
    assert refused.value.details["field"] == field


@pytest.mark.parametrize(
    ("start", "last_end"),
    [
        ("2030-12-02T09:00:00-05:00", "2031-06-02T09:00:00-05:00"),
        ("2030-08-31T09:00:00+00:00", "2031-02-28T09:00:00+00:00"),  # no 31 February: the month's last day
        ("2027-08-31T09:00:00+00:00", "2028-02-29T09:00:00+00:00"),  # a leap year's last day of February
    ],
)
def test_a_window_spans_at_most_six_calendar_months(start: str, last_end: str) -> None:
    longest = parse_availability_request(_request(start=start, end=last_end))
    assert longest.options.end == datetime.fromisoformat(last_end)
    with pytest.raises(InvalidRequest) as refused:
        parse_availability_request(
            _request(start=start, end=(datetime.fromisoformat(last_end) + timedelta(seconds=1)).isoformat())
        )
    assert refused.value.details["field"] == "end"


def test_windows_and_iana_names_are_both_accepted() -> None:
    windows = parse_availability_request(_request(time_zone="Eastern Standard Time"))
    iana = parse_availability_request(_request(time_zone="America/New_York"))
    moment = datetime(2030, 7, 1, 12, tzinfo=UTC)
    assert moment.astimezone(windows.options.time_zone).utcoffset() == timedelta(hours=-4)
    assert moment.astimezone(iana.options.time_zone).utcoffset() == timedelta(hours=-4)
    assert windows.options.time_zone_name == "Eastern Standard Time"


def test_the_bookings_are_read_while_graph_is_once_its_first_request_has_its_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stored bookings (caps, load) and getSchedule are independent reads: the query waits for the
    # slower of the two, not for their sum. The storage read begins when Graph's first request has its
    # turn (so a burst of queries' reads does not hold back the requests that can go at once), and Graph
    # here answers only once it has begun.
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours()))
    bookings_began = threading.Event()
    read_bookings = deps.bookings.list_bookings_between
    read_schedules = deps.graph.get_schedules

    def bookings(*args: Any) -> list[Booking]:
        bookings_began.set()
        return read_bookings(*args)

    def schedules(*args: Any, on_turn: Callable[[], None] | None = None, **kwargs: Any) -> list[Schedule]:
        assert on_turn is not None
        assert not bookings_began.wait(0.05), "the bookings were read before Graph's first turn"
        on_turn()
        assert bookings_began.wait(10), "the bookings were not read while Graph was"
        return read_schedules(*args, **kwargs)

    monkeypatch.setattr(deps.bookings, "list_bookings_between", bookings)
    monkeypatch.setattr(deps.graph, "get_schedules", schedules)
    ctx = require_calendar_access(deps, credential)
    answer = find_availability(deps, ctx, parse_availability_request(_request()))
    assert answer.search.slots


def test_the_bookings_are_read_even_when_graph_is_not_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Everyone warm in the busy cache: no Graph request, so no turn; the caps still count the bookings.
    ann = Schedule(email="ann@contoso.example", working_hours=_hours())
    deps, credential = _deps()
    monkeypatch.setattr(
        availability, "read_warm", lambda *_: {"ann@contoso.example": WarmSchedule(ann, deps.clock.now())}
    )
    deps.bookings.create_booking(_ann_booked("b1"))
    ctx = require_calendar_access(deps, credential)
    answer = find_availability(deps, ctx, parse_availability_request(_request(max_per_day=1)))
    assert answer.search.slots == ()
    assert deps.graph.schedule_calls == []
    assert deps.bookings.range_queries == 2  # the window's, and the explanation's two weeks more


def test_queries_that_ask_together_share_one_bookings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # A recruiter's page asks for several slot searches at once: one storage read serves them all when
    # each asked before it began, and each still counts the bookings toward its caps.
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours()))
    deps.bookings.create_booking(_ann_booked("b1"))
    both_asked = threading.Barrier(2, timeout=10)
    read_schedules = deps.graph.get_schedules

    def schedules(*args: Any, on_turn: Callable[[], None] | None = None, **kwargs: Any) -> list[Schedule]:
        both_asked.wait()  # both queries are inside Graph before either has its turn
        return read_schedules(*args, on_turn=on_turn, **kwargs)

    monkeypatch.setattr(deps.graph, "get_schedules", schedules)
    ctx = require_calendar_access(deps, credential)
    two_days = parse_availability_request(_request(max_per_day=1, end=(MONDAY + timedelta(days=2)).isoformat()))
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: find_availability(deps, ctx, two_days), range(2)))
    for answer in answers:  # Monday is at its cap of one in both; Tuesday is open
        days = {slot.start.astimezone(NEW_YORK).date() for slot in answer.search.slots}
        assert days == {date(2030, 12, 3)}
    assert deps.bookings.range_queries == 1


def test_a_query_never_shares_a_read_that_began_before_it_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read your writes: a booking made while another query's read is under way counts for a query that
    # asks after it was made, though the first read cannot have seen it.
    deps, credential = _deps(Schedule(email="ann@contoso.example", working_hours=_hours()))
    read_bookings = deps.bookings.list_bookings_between
    first_read = threading.Event()
    let_first_finish = threading.Event()

    def bookings(*args: Any) -> list[Booking]:
        found = read_bookings(*args)
        if not first_read.is_set():
            first_read.set()
            assert let_first_finish.wait(10)
        return found

    monkeypatch.setattr(deps.bookings, "list_bookings_between", bookings)
    ctx = require_calendar_access(deps, credential)
    request = parse_availability_request(_request(max_per_day=1, end=(MONDAY + timedelta(days=2)).isoformat()))
    monday, tuesday = date(2030, 12, 2), date(2030, 12, 3)

    def days(answer: Any) -> set[date]:
        return {slot.start.astimezone(NEW_YORK).date() for slot in answer.search.slots}

    with ThreadPoolExecutor(1) as pool:
        before = pool.submit(find_availability, deps, ctx, request)
        assert first_read.wait(10)
        deps.bookings.create_booking(_ann_booked("b1"))
        after = find_availability(deps, ctx, request)  # done while the first read is still held
        let_first_finish.set()
        assert days(before.result(10)) == {monday, tuesday}  # it asked before the booking was made
    assert days(after) == {tuesday}  # the cap counts the booking made before it asked
    assert deps.bookings.range_queries == 2


def test_a_failed_graph_read_fails_the_query_even_while_the_bookings_are_read() -> None:
    deps, credential = _deps()
    deps.graph.failures["me"] = GraphRequestFailed("Graph is down.", status=503, reason="other")
    ctx = require_calendar_access(deps, credential)
    with pytest.raises(GraphRequestFailed):
        find_availability(deps, ctx, parse_availability_request(_request()))
