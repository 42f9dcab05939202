"""Availability through the HTTP endpoints, against Azurite and the local Microsoft cloud."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devtools.cloud import controls
from devtools.cloud.graph import controls as graph_controls
from shared.bootstrap import get_container, set_container
from shared.models import Booking, BookingStatus
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO, KEY, RECRUITER, consent, stack_now, stack_today
from tests.kit import browser_sign_in as sign_in

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"  # Pacific, 09:00-17:00, shares details with the recruiter
LYNNE = "lynne.robbins@contoso.example"  # America/Chicago, 09:00-17:00, shares nothing
DIEGO = "diego.siciliani@contoso.example"  # W. Europe, 09:00-17:00
NESTOR = "nestor.wilke@contoso.example"  # mailbox on premises
PACIFIC = ZoneInfo("America/Los_Angeles")
CHICAGO = ZoneInfo("America/Chicago")


def _monday(weeks_ahead: int) -> date:
    today = stack_today()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks_ahead)


@pytest.fixture
def recruiter(e2e: Stack) -> Any:
    consent(e2e)
    return sign_in(e2e, RECRUITER)


def _utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _event(mailbox: str, start: datetime, end: datetime, subject: str, **extra: Any) -> None:
    fmt = "%Y-%m-%dT%H:%M:%S"
    graph_controls.add_event(
        controls_world(),
        mailbox,
        {
            "subject": subject,
            "start": {"dateTime": start.astimezone(UTC).strftime(fmt), "timeZone": "UTC"},
            "end": {"dateTime": end.astimezone(UTC).strftime(fmt), "timeZone": "UTC"},
            **extra,
        },
    )


_WORLD: list[Any] = []


def controls_world() -> Any:
    return _WORLD[0]


@pytest.fixture(autouse=True)
def _remember_world(e2e: Stack) -> Iterator[None]:
    _WORLD[:] = [e2e.world]
    yield
    _WORLD.clear()


def _ask(browser: Any, body: dict[str, Any], path: str = "/api/availability") -> Any:
    return browser.request("POST", path, headers=KEY, json=body)


def _window(day: date, days: int = 1) -> dict[str, str]:
    return {"start": _utc(day, 0).isoformat(), "end": _utc(day + timedelta(days=days), 0).isoformat()}


@pytest.mark.dates
def test_slots_lie_in_everyone_s_working_hours_and_avoid_their_busy_time(recruiter: Any) -> None:
    day = _monday(3)  # a Monday with nothing but the fixtures' recurring meetings
    busy_from = datetime(day.year, day.month, day.day, 11, 0, tzinfo=PACIFIC)
    _event(ALEX, busy_from, busy_from + timedelta(hours=1), "Design review", location={"displayName": "Room 1"})
    _event(
        LYNNE,
        datetime(day.year, day.month, day.day, 14, 0, tzinfo=CHICAGO),
        datetime(day.year, day.month, day.day, 15, 0, tzinfo=CHICAGO),
        "1:1",
    )
    response = _ask(
        recruiter,
        {
            "interviewers": [{"email": ALEX}, {"email": LYNNE, "required": True}],
            **_window(day),
            "duration_minutes": 60,
            "interval_minutes": 30,
            "time_zone": "America/Los_Angeles",
        },
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["time_zone"] == "America/Los_Angeles"
    slots = answer["slots"]
    assert slots, answer["explanation"]
    pacific_offset = datetime(day.year, day.month, day.day, 12, tzinfo=PACIFIC).utcoffset()
    people = {p["email"]: p for p in answer["interviewers"]}
    for slot in slots:
        start, end = datetime.fromisoformat(slot["start"]), datetime.fromisoformat(slot["end"])
        assert start.utcoffset() == pacific_offset  # in the asked zone, on that day (PST or PDT)
        assert end - start == timedelta(hours=1)
        assert start.astimezone(PACIFIC).hour >= 9 and end.astimezone(PACIFIC) <= start.astimezone(PACIFIC).replace(
            hour=17, minute=0
        )
        assert end.astimezone(CHICAGO) <= start.astimezone(CHICAGO).replace(hour=17, minute=0)
        for person in (ALEX, LYNNE):
            for block in people[person]["busy"]:
                if block["status"] in ("busy", "oof", "tentative"):
                    b_start, b_end = datetime.fromisoformat(block["start"]), datetime.fromisoformat(block["end"])
                    assert not (b_start < end and start < b_end), (slot, block)
        assert slot["interviewers"] == [ALEX, LYNNE]
    starts = [datetime.fromisoformat(s["start"]).astimezone(PACIFIC) for s in slots]
    assert starts == sorted(starts)
    # Pacific 09:00-17:00 and Chicago 09:00-17:00 (07:00-15:00 Pacific) overlap 09:00-15:00 Pacific;
    # Alex is busy 11-12 and Lynne 12-13 Pacific, so on a 30-minute grid:
    expected = [(9, 0), (9, 30), (10, 0), (13, 0), (13, 30), (14, 0)]
    standup = [b for b in people[ALEX]["busy"] if b["subject"] == "Team standup"]
    if standup:  # the fixtures' daily 09:30-09:45 standup takes the first two starts
        expected = [(10, 0), (13, 0), (13, 30), (14, 0)]
    assert [(s.hour, s.minute) for s in starts] == expected
    # Details only where Outlook would show them to the recruiter: Alex shares, Lynne does not.
    review = [b for b in people[ALEX]["busy"] if b["subject"] == "Design review"]
    assert review and review[0]["location"] == "Room 1"
    assert all(b["subject"] is None and b["location"] is None for b in people[LYNNE]["busy"])
    assert people[ALEX]["working_hours"]["time_zone"] == "America/Los_Angeles"
    assert people[ALEX]["time_zone"] == "Pacific Standard Time"
    assert people[LYNNE]["status"] == "ok"


@pytest.mark.dates
def test_people_with_no_common_working_hours_get_an_explanation(recruiter: Any) -> None:
    day = _monday(3)
    # Pacific 09:00-17:00 and W. Europe 09:00-17:00 never overlap.
    response = _ask(recruiter, {"interviewers": [ALEX, DIEGO], **_window(day, 5), "duration_minutes": 30})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["slots"] == []
    explanation = answer["explanation"]
    assert explanation["summary"]
    assert any(r["kind"] in ("no_common_time", "outside_working_hours") for r in explanation["reasons"])
    kinds = {s["kind"] for s in explanation["suggestions"]}
    assert kinds & {"make_optional", "ignore_working_hours"}, explanation


@pytest.mark.dates
def test_optional_people_are_listed_only_when_free_and_pools_need_enough_members(recruiter: Any) -> None:
    day = _monday(3)
    pacific_10 = datetime(day.year, day.month, day.day, 10, 0, tzinfo=PACIFIC)
    _event(LYNNE, pacific_10, pacific_10 + timedelta(hours=1), "Busy")
    response = _ask(
        recruiter,
        {
            "interviewers": [{"email": ALEX, "required": True}, {"email": LYNNE, "required": False}],
            "pools": [{"name": "panel", "members": [DIEGO, "johanna.lorenz@contoso.example"], "need": 1}],
            **_window(day),
            "duration_minutes": 60,
            "interval_minutes": 60,
            "working_hours": False,
            "time_zone": "Pacific Standard Time",
        },
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["time_zone"] == "Pacific Standard Time"
    by_start = {datetime.fromisoformat(s["start"]).astimezone(PACIFIC).hour: s["interviewers"] for s in answer["slots"]}
    assert ALEX in by_start[10] and LYNNE not in by_start[10]
    assert LYNNE in by_start[13]
    for people in by_start.values():
        assert people[0] == ALEX
        assert DIEGO in people or "johanna.lorenz@contoso.example" in people


def test_unreadable_and_unknown_people_are_never_free(recruiter: Any) -> None:
    day = _monday(3)
    response = _ask(
        recruiter,
        {"interviewers": [ALEX, NESTOR, "nobody@contoso.example"], **_window(day), "duration_minutes": 30},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["slots"] == []
    people = {p["email"]: p for p in answer["interviewers"]}
    assert people[NESTOR]["status"] == "unreadable" and people[NESTOR]["reason"] == "on_premises"
    assert people["nobody@contoso.example"]["status"] == "unreadable"
    assert people["nobody@contoso.example"]["reason"] == "unknown"
    reasons = answer["explanation"]["reasons"]
    assert {r["person"] for r in reasons if r["kind"] == "unreadable"} >= {NESTOR, "nobody@contoso.example"}


def test_a_user_of_another_tenant_sees_contoso_people_as_unknown(e2e: Stack) -> None:
    consent(e2e)
    consent(e2e, admin="kai.nakamura@fabrikam.example", domain="fabrikam.example")
    fabrikam = sign_in(e2e, "sara.davis@fabrikam.example")
    day = _monday(3)
    _event(ALEX, _utc(day, 18), _utc(day, 19), "Secret project")
    response = _ask(fabrikam, {"interviewers": [ALEX], **_window(day), "duration_minutes": 30})
    assert response.status_code == 200, response.text
    person = response.json()["interviewers"][0]
    assert person["status"] == "unreadable" and person["reason"] == "unknown"
    assert person["busy"] == []
    assert "Secret project" not in response.text


def test_a_throttling_storm_still_gives_full_answers(recruiter: Any, e2e: Stack) -> None:
    day = _monday(3)
    graph_controls.throttle(e2e.world, count=6, retry_after=0.05)
    people = [ALEX, LYNNE, DIEGO, "johanna.lorenz@contoso.example", "lee.gu@contoso.example"]
    response = _ask(
        recruiter,
        {"interviewers": [{"email": p, "required": False} for p in people], **_window(day), "duration_minutes": 30},
    )
    assert response.status_code == 200, response.text
    statuses = {p["email"]: (p["status"], p["reason"]) for p in response.json()["interviewers"]}
    assert statuses == {p: ("ok", None) for p in people}


def test_people_not_read_by_the_deadline_are_reported_as_timeouts(recruiter: Any, e2e: Stack) -> None:
    day = _monday(3)
    os.environ["AVAILABILITY_DEADLINE_SECONDS"] = "0.3"
    set_container(None)
    graph_controls.set_latency(e2e.world, 1.0)
    try:
        response = _ask(recruiter, {"interviewers": [ALEX, LYNNE], **_window(day), "duration_minutes": 30})
    finally:
        graph_controls.set_latency(e2e.world, 0.0)
        os.environ.pop("AVAILABILITY_DEADLINE_SECONDS", None)
        set_container(None)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["slots"] == []
    assert {(p["status"], p["reason"]) for p in answer["interviewers"]} == {("unreadable", "timeout")}


DEADLINE = 3.0  # AVAILABILITY_DEADLINE_SECONDS for the tests below; production's is 20
MARGIN = DEADLINE  # what the answer may take past it (the guard, storage, the engine, a loaded machine)


@pytest.mark.parametrize(
    ("fault", "reason", "reads"),
    [
        pytest.param(lambda world: graph_controls.set_latency(world, 3 * DEADLINE), "timeout", 1, id="slow-graph"),
        pytest.param(
            lambda world: graph_controls.fail(world, count=1000, status=500, mailbox=RECRUITER),
            "timeout",
            None,
            id="graph-answers-500",
        ),
        pytest.param(
            lambda world: graph_controls.throttle(world, count=1000, retry_after=DEADLINE + 1, mailbox=RECRUITER),
            "throttled",
            None,
            id="retry-after-past-the-deadline",
        ),
    ],
)
def test_one_deadline_covers_the_whole_request(
    recruiter: Any,
    e2e: Stack,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[Any], None],
    reason: str,
    reads: int | None,
) -> None:
    # Nothing fits (nobody can be read), so the answer also wants the explanation's wider read:
    # that read, every retry and every backoff share the request's one deadline.
    os.environ["AVAILABILITY_DEADLINE_SECONDS"] = str(DEADLINE)
    set_container(None)
    fault(e2e.world)
    try:
        began = time.monotonic()
        response = _ask(recruiter, {"interviewers": [ALEX, LYNNE], **_window(_monday(3)), "duration_minutes": 30})
        took = time.monotonic() - began
    finally:
        graph_controls.clear_switches(e2e.world)
        os.environ.pop("AVAILABILITY_DEADLINE_SECONDS", None)
        set_container(None)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["slots"] == []
    assert {(p["status"], p["reason"]) for p in answer["interviewers"]} == {("unreadable", reason)}
    if reads is not None:  # once the deadline has passed, no second read is even started
        assert sum(r.getMessage().startswith("getSchedule:") for r in caplog.records) == reads
    assert took < DEADLINE + MARGIN, f"answered after {took:.2f} s with a {DEADLINE} s deadline"


def test_a_dead_user_token_answers_reauth_required_not_an_empty_calendar(recruiter: Any, e2e: Stack) -> None:
    controls.set_access_token_lifetime(e2e.world, 1)
    fresh = sign_in(e2e, RECRUITER)
    controls.revoke_refresh_tokens(e2e.world, RECRUITER)
    # MSAL refreshes any token within 5 minutes of expiry, so the next call must refresh and fails.
    response = _ask(fresh, {"interviewers": [ALEX], **_window(_monday(3)), "duration_minutes": 30})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "reauth_required"


@pytest.mark.dates
def test_caps_count_the_interviews_this_service_booked(recruiter: Any) -> None:
    day = _monday(3)
    pacific_9 = datetime(day.year, day.month, day.day, 9, 0, tzinfo=PACIFIC)
    get_container().bookings.create_booking(
        Booking(
            tenant_id=CONTOSO,
            booking_id=uuid.uuid4().hex,
            mailbox=ALEX,
            start=pacific_9.astimezone(UTC),
            end=(pacific_9 + timedelta(hours=1)).astimezone(UTC),
            subject="Interview",
            status=BookingStatus.BOOKED,
            attendees=(ALEX,),
        )
    )
    body = {
        "interviewers": [ALEX],
        **_window(day, 2),
        "duration_minutes": 30,
        "interval_minutes": 60,
        "time_zone": "America/Los_Angeles",
        "working_hours": True,
    }
    free = _ask(recruiter, body).json()["slots"]
    capped = _ask(recruiter, {**body, "max_per_day": 1}).json()["slots"]
    days = {datetime.fromisoformat(s["start"]).date() for s in capped}
    assert day not in days and day + timedelta(days=1) in days
    assert len(capped) < len(free)


def _interview(mailbox: str, start: datetime) -> None:
    get_container().bookings.create_booking(
        Booking(
            tenant_id=CONTOSO,
            booking_id=uuid.uuid4().hex,
            mailbox=mailbox,
            start=start.astimezone(UTC),
            end=(start + timedelta(hours=1)).astimezone(UTC),
            subject="Interview",
            status=BookingStatus.BOOKED,
            attendees=(mailbox,),
        )
    )


def test_with_no_cap_a_pool_picks_whoever_has_no_interviews_that_week_and_the_answer_says_the_loads(
    recruiter: Any,
) -> None:
    day = _monday(3)
    # Lynne (Chicago) is first in the pool but already has three interviews that week, one of them
    # on the Monday asked about; Alex has none. Both work 09:00-15:00 Pacific.
    for offset, hour in ((0, 8), (2, 10), (3, 10)):
        local = day + timedelta(days=offset)
        _interview(LYNNE, datetime(local.year, local.month, local.day, hour, tzinfo=CHICAGO))
    year, week, _ = day.isocalendar()
    pool = {"interviewers": [], "pools": [{"name": "panel", "members": [LYNNE, ALEX], "need": 1}]}
    tuesday = day + timedelta(days=1)
    window = {
        "start": datetime(day.year, day.month, day.day, tzinfo=PACIFIC).isoformat(),
        "end": datetime(tuesday.year, tuesday.month, tuesday.day, tzinfo=PACIFIC).isoformat(),
        "time_zone": "America/Los_Angeles",
        "interval_minutes": 60,
        "working_hours": True,
    }
    response = _ask(recruiter, {**pool, **window, "duration_minutes": 30})  # no max_per_day, no max_per_week
    assert response.status_code == 200, response.text
    answer = response.json()
    both = [s for s in answer["slots"] if set(s["interviewers"]) == {LYNNE, ALEX}]
    assert both, answer["slots"]
    # Least loaded first: Alex (none that week) before Lynne (three); a slot's load is its first pick's.
    assert [(s["interviewers"], s["load"]) for s in both] == [([ALEX, LYNNE], 0)] * len(both)
    for slot in answer["slots"]:
        assert slot["load"] == (3 if slot["interviewers"] == [LYNNE] else 0)
    loads = {p["email"]: p["load"] for p in answer["interviewers"]}
    assert loads[LYNNE] == {
        "time_zone": "America/Chicago",
        "days": {day.isoformat(): 1},  # the window's Chicago days are Monday and early Tuesday
        "weeks": {f"{year}-W{week:02d}": 3},
    }
    assert loads[ALEX] == {"time_zone": "America/Los_Angeles", "days": {}, "weeks": {}}

    loops = _ask(
        recruiter,
        {"sessions": [{"name": "Panel", "duration_minutes": 30, **pool}], **window, "max_results": 3},
        path="/api/availability/loops",
    )
    assert loops.status_code == 200, loops.text
    found = loops.json()
    assert found["loops"]
    assert [loop["sessions"][0]["interviewers"] for loop in found["loops"]] == [[ALEX]] * len(found["loops"])
    assert [loop["load"] for loop in found["loops"]] == [0] * len(found["loops"])
    assert {p["email"]: p["load"] for p in found["interviewers"]}[LYNNE]["weeks"] == {f"{year}-W{week:02d}": 3}


def test_slots_come_in_pages_that_join_to_the_whole_answer(recruiter: Any) -> None:
    body = {
        "interviewers": [ALEX, {"email": LYNNE, "required": False}],
        **_window(_monday(3), days=5),
        "duration_minutes": 30,
        "interval_minutes": 5,
        "time_zone": "America/Los_Angeles",
    }
    first = _ask(recruiter, body).json()  # 100 by default
    whole = _ask(recruiter, {**body, "max_slots": 1000}).json()
    assert 100 < whole["total_slots"] == len(whole["slots"]) <= 1000 and whole["next"] is None
    assert len(first["slots"]) == 100 and first["total_slots"] == whole["total_slots"]
    assert first["slots"] == whole["slots"][:100]
    pages, page = [], _ask(recruiter, {**body, "max_slots": 40}).json()
    while True:
        assert len(page["slots"]) <= 40 and page["total_slots"] == whole["total_slots"]
        pages.append(page["slots"])
        if page["next"] is None:
            break
        assert page["next"] == {"after": page["slots"][-1]["start"]}
        page = _ask(recruiter, {**body, "max_slots": 40, **page["next"]}).json()
    assert [slot for p in pages for slot in p] == whole["slots"]  # none lost, none repeated, same people
    assert len(pages) == -(-whole["total_slots"] // 40)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end": "2026-01-01T00:00:00Z", "start": "2026-02-01T00:00:00Z"}, "end"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": -30}, "duration_minutes"),
        ({"duration_minutes": None}, "duration_minutes"),
        ({"duration_minutes": "60"}, "duration_minutes"),
        ({"duration_minutes": 481}, "duration_minutes"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-07-02T00:00:00Z"}, "end"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"interviewers": [f"p{i}@contoso.example" for i in range(201)]}, "interviewers"),
        ({"pools": [{"name": "x", "members": [ALEX], "need": 2}], "interviewers": []}, "pools[0].need"),
        ({"interviewers": ["not-an-address"]}, "interviewers[0]"),
        ({"interval_minutes": 4}, "interval_minutes"),
        ({"interval_minutes": 241}, "interval_minutes"),
        ({"start": "2026-01-01T00:00:00"}, "start"),
        ({"interviewers": []}, "interviewers"),
        ({"max_slots": 0}, "max_slots"),
        ({"max_slots": 1001}, "max_slots"),
        ({"max_slots": "all"}, "max_slots"),
        ({"after": "tomorrow"}, "after"),
        ({"after": "2026-12-07T10:00:00"}, "after"),
        ({"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T23:00:00Z"}, "start"),  # padding overflowed
        ({"start": "9999-12-31T20:00:00-05:00", "end": "9999-12-31T22:00:00-05:00"}, "start"),  # past 9999 in UTC
    ],
)
def test_bad_input_is_refused_naming_the_field(recruiter: Any, change: dict[str, Any], field: str) -> None:
    body = {
        "interviewers": [ALEX],
        "start": "2026-12-07T00:00:00-05:00",
        "end": "2026-12-08T00:00:00-05:00",
        "duration_minutes": 60,
        **change,
    }
    response = _ask(recruiter, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field


@pytest.mark.dates
def test_loops_chain_sessions_on_one_day(recruiter: Any) -> None:
    day = _monday(3)
    tuesday = day + timedelta(days=1)
    response = _ask(
        recruiter,
        {
            "sessions": [
                {"name": "Coding", "duration_minutes": 60, "interviewers": [ALEX]},
                {
                    "name": "Design",
                    "duration_minutes": 45,
                    "pools": [{"name": "architects", "members": [LYNNE, "lee.gu@contoso.example"], "need": 1}],
                    "interviewers": [],
                },
            ],
            **_window(day, 3),
            "time_zone": "America/Los_Angeles",
            "interval_minutes": 15,
            "max_gap_minutes": 30,
            "candidate_windows": [
                {
                    "start": datetime(tuesday.year, tuesday.month, tuesday.day, 9, tzinfo=PACIFIC).isoformat(),
                    "end": datetime(tuesday.year, tuesday.month, tuesday.day, 17, tzinfo=PACIFIC).isoformat(),
                }
            ],
            "max_results": 3,
        },
        path="/api/availability/loops",
    )
    assert response.status_code == 200, response.text
    loops = response.json()["loops"]
    assert 1 <= len(loops) <= 3
    for loop in loops:
        first, second = loop["sessions"]
        assert first["interviewers"] == [ALEX]
        assert len(second["interviewers"]) == 1
        end1, start2 = datetime.fromisoformat(first["end"]), datetime.fromisoformat(second["start"])
        assert timedelta(0) <= start2 - end1 <= timedelta(minutes=30)
        assert datetime.fromisoformat(first["start"]).astimezone(PACIFIC).date() == tuesday
        assert loop["gaps_minutes"] == [int((start2 - end1).total_seconds() // 60)]
    gaps = [loop["gaps_minutes"][0] for loop in loops]
    assert gaps == sorted(gaps)


def _local_starts(answer: dict[str, Any], zone: ZoneInfo) -> dict[date, list[int]]:
    by_day: dict[date, list[int]] = {}
    for slot in answer["slots"]:
        start = datetime.fromisoformat(slot["start"]).astimezone(zone)
        by_day.setdefault(start.date(), []).append(start.hour)
    return by_day


def test_a_custom_zone_and_hours_that_cross_midnight_in_utc(recruiter: Any) -> None:
    # Miriam's working hours are in an Outlook custom zone (bias -600, daylight from October's first
    # Sunday to April's); Oliver's are 09:00-17:00 in Australia/Sydney: both cross midnight in UTC.
    sydney = ZoneInfo("Australia/Sydney")
    day = date(2030, 12, 2)  # a Monday in the southern summer (daylight time, UTC+11)
    response = _ask(
        recruiter,
        {
            "interviewers": ["miriam.graham@contoso.example", "oliver.grant@contoso.example"],
            "start": datetime(2030, 12, 2, tzinfo=sydney).isoformat(),
            "end": datetime(2030, 12, 3, tzinfo=sydney).isoformat(),
            "duration_minutes": 60,
            "interval_minutes": 60,
            "time_zone": "AUS Eastern Standard Time",
        },
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    people = {p["email"]: p for p in answer["interviewers"]}
    assert people["miriam.graham@contoso.example"]["working_hours"]["time_zone"] == "Customized Time Zone"
    assert people["oliver.grant@contoso.example"]["working_hours"]["time_zone"] == "Australia/Sydney"
    assert _local_starts(answer, sydney) == {day: [9, 10, 11, 12, 13, 14, 15, 16]}
    assert all(datetime.fromisoformat(s["start"]).utcoffset() == timedelta(hours=11) for s in answer["slots"])


def test_march_when_the_us_and_europe_change_to_daylight_time_on_different_dates(recruiter: Any) -> None:
    # Lidia works 09:00-17:00 London time, Lynne 09:00-17:00 Chicago time. They overlap two hours while
    # both are on standard time (and again once both changed), three hours between the US change
    # (10 March 2030) and the European one (31 March 2030). Lynne also sits in Alex's daily standup at
    # 09:30 Pacific: 17:30 London before the US change and after the European one, but 16:30 between.
    london = ZoneInfo("Europe/London")
    response = _ask(
        recruiter,
        {
            "interviewers": ["lidia.holloway@contoso.example", LYNNE],
            "start": datetime(2030, 3, 4, tzinfo=london).isoformat(),
            "end": datetime(2030, 4, 6, tzinfo=london).isoformat(),
            "duration_minutes": 60,
            "interval_minutes": 60,
            "time_zone": "Europe/London",
        },
    )
    assert response.status_code == 200, response.text
    by_day = _local_starts(response.json(), london)
    assert by_day[date(2030, 3, 4)] == [15, 16]  # GMT and CST: six hours apart
    assert by_day[date(2030, 3, 11)] == [14, 15]  # GMT and CDT: five hours apart; the standup at 16:30
    assert by_day[date(2030, 3, 29)] == [14, 15]
    assert by_day[date(2030, 4, 1)] == [15, 16]  # BST and CDT: six hours apart again
    assert date(2030, 3, 9) not in by_day  # a Saturday


@pytest.mark.dates
def test_buffers_tentative_and_notice_through_the_endpoint(recruiter: Any) -> None:
    day = _monday(3)
    at = datetime(day.year, day.month, day.day, 13, 0, tzinfo=PACIFIC)
    _event(ALEX, at, at + timedelta(minutes=30), "Maybe", showAs="tentative")
    body = {
        "interviewers": [ALEX],
        "start": datetime(day.year, day.month, day.day, 12, tzinfo=PACIFIC).isoformat(),
        "end": datetime(day.year, day.month, day.day, 15, tzinfo=PACIFIC).isoformat(),
        "duration_minutes": 30,
        "interval_minutes": 30,
        "time_zone": "America/Los_Angeles",
    }

    def starts(**options: Any) -> list[tuple[int, int]]:
        response = _ask(recruiter, {**body, **options})
        assert response.status_code == 200, response.text
        return [
            (datetime.fromisoformat(s["start"]).hour, datetime.fromisoformat(s["start"]).minute)
            for s in response.json()["slots"]
        ]

    assert starts() == [(12, 0), (12, 30), (13, 30), (14, 0), (14, 30)]
    assert starts(tentative_is_busy=False) == [(12, 0), (12, 30), (13, 0), (13, 30), (14, 0), (14, 30)]
    # 30 minutes of buffer on each side keep 12:30 and 13:30 away from the 13:00 event.
    assert starts(buffer_before_minutes=30, buffer_after_minutes=30) == [(12, 0), (14, 0), (14, 30)]
    # A minimum notice that ends at 14:00 that day leaves the starts from 14:00 on.
    far = int((datetime(day.year, day.month, day.day, 14, tzinfo=PACIFIC) - stack_now()).total_seconds() // 60)
    assert starts(minimum_notice_minutes=far) == [(14, 0), (14, 30)]


def test_eight_concurrent_queries_of_one_recruiter_complete_without_a_429(recruiter: Any, e2e: Stack) -> None:
    import httpx

    from devtools.cloud.graph.load import seed_schedule_load

    day = _monday(3)
    people = seed_schedule_load(e2e.world, "contoso.example", count=100, monday=day)
    credential = recruiter.service_cookie("ics_session")
    headers = {**KEY, "authorization": f"Bearer {credential}"}
    # Requests overlap at the cloud: without the worker's one line per mailbox, eight queries with four
    # getSchedule calls in flight each would exceed Outlook's four concurrent requests per mailbox.
    graph_controls.set_latency(e2e.world, 0.05)
    before = graph_controls.request_counts(e2e.world)
    # Count getSchedule alone: notifications of earlier tests may still be worked off meanwhile.
    schedules_before = graph_controls.graph_requests(e2e.world, path="getSchedule")["total"]

    def ask(index: int) -> Any:
        asked = people[index * 10 :] + people[: index * 10]
        body = {"interviewers": [{"email": p, "required": False} for p in asked], **_window(day, 5)}
        with httpx.Client(base_url=e2e.base_url, timeout=120) as client:
            return client.post("/api/availability", headers=headers, json={**body, "duration_minutes": 30})

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(ask, range(8)))
    finally:
        graph_controls.set_latency(e2e.world, 0.0)
    after = graph_controls.request_counts(e2e.world)
    schedules = graph_controls.graph_requests(e2e.world, path="getSchedule")["total"] - schedules_before
    for response in responses:
        assert response.status_code == 200, response.text
        assert {(p["status"], p["reason"]) for p in response.json()["interviewers"]} == {("ok", None)}
    assert schedules == 8 * 5  # five getSchedule calls of 20 per query
    assert after["throttled"] == before["throttled"]
