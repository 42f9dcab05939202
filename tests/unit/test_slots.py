"""The slot engine, rule by rule, with hand-checked calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.models import FreeBusyStatus
from shared.scheduling.slots import (
    Load,
    Panel,
    Person,
    Pool,
    ReasonKind,
    SlotRules,
    SuggestionKind,
    find_slots,
)
from shared.scheduling.slots.engine import capped_periods
from tests.unit.slot_support import BERLIN, MINUTES, NEW_YORK, TOKYO, at, busy, clock, hours, rules, schedule, starts

ALEX, BEA, CARL, DANA = "alex@contoso.example", "bea@contoso.example", "carl@contoso.example", "dana@contoso.example"
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HOUR = timedelta(hours=1)


def person(email: str, *blocks, working=None, unreadable=None, booked=()) -> Person:  # type: ignore[no-untyped-def]
    return Person(schedule(email, *blocks, working=working, unreadable=unreadable), tuple(booked))


# ---- busy time and buffers -----------------------------------------------------------------------
def test_busy_event_blocks_the_slots_it_overlaps() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 10:00", "2026-12-07 11:00"))}
    found = find_slots(Panel((ALEX,)), people, at("2026-12-07 08:00"), at("2026-12-07 13:00"), rules())
    assert clock(found) == ["08:00", "09:00", "11:00", "12:00"]
    assert found.slots[0].interviewers == (ALEX,) and found.slots[0].end == at("2026-12-07 09:00")


def test_buffers_keep_events_away_from_both_ends_of_a_slot() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 10:00", "2026-12-07 11:00"))}
    options = {"buffer_before": 15 * MINUTES, "buffer_after": 30 * MINUTES}
    found = find_slots(
        Panel((ALEX,)), people, at("2026-12-07 08:00"), at("2026-12-07 14:00"), rules(interval=15, **options)
    )
    assert clock(found)[:3] == ["08:00", "08:15", "08:30"]  # 08:30-09:30 then 30 min buffer: ends at 10:00
    assert "08:45" not in clock(found)
    assert clock(found)[3] == "11:15"  # 15 minutes after the event


def test_buffer_after_reaches_past_midnight() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-08 00:00", "2026-12-08 00:30"))}
    found = find_slots(
        Panel((ALEX,)), people, at("2026-12-07 21:00"), at("2026-12-08 00:00"), rules(buffer_after=45 * MINUTES)
    )
    assert clock(found) == ["21:00", "22:00"]  # 23:00-00:00 plus 45 minutes meets the event


def test_buffer_before_reaches_back_past_midnight() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 23:30", "2026-12-08 00:00"))}
    found = find_slots(
        Panel((ALEX,)), people, at("2026-12-08 00:00"), at("2026-12-08 03:00"), rules(buffer_before=30 * MINUTES)
    )
    assert clock(found) == ["01:00", "02:00"]


# ---- statuses ------------------------------------------------------------------------------------
def test_tentative_blocks_only_when_the_option_says_so() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 09:00", "2026-12-07 10:00", FreeBusyStatus.TENTATIVE))}
    window = (at("2026-12-07 09:00"), at("2026-12-07 11:00"))
    assert clock(find_slots(Panel((ALEX,)), people, *window, rules())) == ["10:00"]
    assert clock(find_slots(Panel((ALEX,)), people, *window, rules(tentative_is_busy=False))) == ["09:00", "10:00"]


@pytest.mark.parametrize("status", [FreeBusyStatus.FREE, FreeBusyStatus.WORKING_ELSEWHERE, FreeBusyStatus.UNKNOWN])
def test_free_working_elsewhere_and_unknown_events_do_not_block(status: FreeBusyStatus) -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 09:00", "2026-12-07 10:00", status))}
    assert clock(find_slots(Panel((ALEX,)), people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())) == [
        "09:00"
    ]


def test_out_of_office_blocks() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 09:00", "2026-12-07 10:00", FreeBusyStatus.OOF))}
    found = find_slots(Panel((ALEX,)), people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert found.slots == ()


def test_all_day_event_blocks_the_whole_local_day_of_the_person() -> None:
    day_off = busy("2026-12-08 00:00", "2026-12-09 00:00", FreeBusyStatus.OOF, zone=BERLIN)  # 23:00-23:00 UTC
    people = {ALEX: person(ALEX, day_off, working=hours("Europe/Berlin", "00:00", "00:00"))}
    found = find_slots(Panel((ALEX,)), people, at("2026-12-07 20:00"), at("2026-12-09 01:00"), rules())
    assert clock(found) == ["20:00", "21:00", "22:00", "23:00", "00:00"]
    assert [s.start.day for s in found.slots] == [7, 7, 7, 8, 9]  # nothing from 23:00 on the 7th to 23:00 on the 8th


def test_all_day_event_shown_as_free_does_not_block() -> None:
    holiday = busy("2026-12-08 00:00", "2026-12-09 00:00", FreeBusyStatus.FREE)
    found = find_slots(
        Panel((ALEX,)), {ALEX: person(ALEX, holiday)}, at("2026-12-08 09:00"), at("2026-12-08 11:00"), rules()
    )
    assert clock(found) == ["09:00", "10:00"]


# ---- working hours and zones ---------------------------------------------------------------------
def test_working_hours_are_read_in_the_persons_zone_not_the_output_zone() -> None:
    people = {ALEX: person(ALEX, working=hours("Europe/Berlin"))}  # 09:00-17:00 Berlin = 03:00-11:00 New York
    found = find_slots(
        Panel((ALEX,)), people, at("2026-12-07 00:00", NEW_YORK), at("2026-12-08 00:00", NEW_YORK), rules(zone=NEW_YORK)
    )
    assert clock(found) == ["03:00", "04:00", "05:00", "06:00", "07:00", "08:00", "09:00", "10:00"]
    assert found.slots[0].start.utcoffset() == timedelta(hours=-5)


def test_working_hours_only_on_working_days() -> None:
    people = {ALEX: person(ALEX, working=hours("UTC"))}
    found = find_slots(Panel((ALEX,)), people, at("2026-12-12 00:00"), at("2026-12-15 00:00"), rules())  # Sat-Mon
    assert {s.start.date().isoformat() for s in found.slots} == {"2026-12-14"}


def test_working_hours_that_run_past_midnight() -> None:
    people = {ALEX: person(ALEX, working=hours("Asia/Tokyo", "22:00", "02:00", ("monday",)))}
    found = find_slots(
        Panel((ALEX,)), people, at("2026-12-07 00:00", TOKYO), at("2026-12-09 00:00", TOKYO), rules(zone=TOKYO)
    )
    assert starts(found) == [
        f"2026-12-0{d}T{h}:00:00+09:00" for d, h in (("7", "22"), ("7", "23"), ("8", "00"), ("8", "01"))
    ]


def test_working_hours_can_be_ignored() -> None:
    people = {ALEX: person(ALEX, working=hours("UTC"))}
    found = find_slots(
        Panel((ALEX,)), people, at("2026-12-07 06:00"), at("2026-12-07 08:00"), rules(working_hours=False)
    )
    assert clock(found) == ["06:00", "07:00"]


def test_person_without_working_hours_has_no_working_hours_constraint() -> None:
    found = find_slots(Panel((ALEX,)), {ALEX: person(ALEX)}, at("2026-12-12 02:00"), at("2026-12-12 04:00"), rules())
    assert clock(found) == ["02:00", "03:00"]


def test_us_spring_change_skips_the_missing_hour_of_the_output_zone() -> None:
    found = find_slots(
        Panel((ALEX,)),
        {ALEX: person(ALEX)},
        at("2026-03-08 00:00", NEW_YORK),
        at("2026-03-08 05:00", NEW_YORK),
        rules(zone=NEW_YORK),
    )
    assert starts(found) == [
        "2026-03-08T00:00:00-05:00",
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
    ]


def test_us_autumn_change_offers_both_instants_of_the_repeated_hour() -> None:
    found = find_slots(
        Panel((ALEX,)),
        {ALEX: person(ALEX)},
        at("2026-11-01 00:00", NEW_YORK),
        at("2026-11-01 04:00", NEW_YORK),
        rules(30, zone=NEW_YORK),
    )
    assert starts(found) == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T03:00:00-05:00",
    ]


def test_europe_and_us_change_to_daylight_time_on_different_dates() -> None:
    # New York moves on 8 March, Berlin on 29 March: in between, Berlin is 5 hours ahead, else 6.
    people = {ALEX: person(ALEX, working=hours("Europe/Berlin"))}
    window = (at("2026-03-06 00:00", NEW_YORK), at("2026-03-31 00:00", NEW_YORK))
    found = find_slots(Panel((ALEX,)), people, *window, rules(zone=NEW_YORK))
    first = {}
    for slot in found.slots:
        first.setdefault(slot.start.date().isoformat(), slot.start.strftime("%H:%M"))
    assert first["2026-03-06"] == "03:00"  # both on standard time
    assert first["2026-03-09"] == "04:00"  # New York on daylight time, Berlin not yet
    assert first["2026-03-27"] == "04:00"
    assert first["2026-03-30"] == "03:00"  # both on daylight time
    assert "2026-03-28" not in first and "2026-03-29" not in first  # weekend


def test_working_hours_across_the_european_change_keep_local_wall_clock() -> None:
    people = {ALEX: person(ALEX, working=hours("Europe/Berlin", "09:00", "11:00", ("friday", "monday")))}
    found = find_slots(Panel((ALEX,)), people, at("2026-03-27 00:00"), at("2026-03-31 00:00"), rules())
    assert starts(found) == [
        "2026-03-27T08:00:00+00:00",
        "2026-03-27T09:00:00+00:00",
        "2026-03-30T07:00:00+00:00",
        "2026-03-30T08:00:00+00:00",
    ]


def test_slot_grid_counts_from_local_midnight_of_the_output_zone() -> None:
    kathmandu = __import__("zoneinfo").ZoneInfo("Asia/Kathmandu")  # UTC+05:45
    found = find_slots(
        Panel((ALEX,)), {ALEX: person(ALEX)}, at("2026-12-07 00:00"), at("2026-12-07 03:00"), rules(zone=kathmandu)
    )
    assert starts(found) == ["2026-12-07T06:00:00+05:45", "2026-12-07T07:00:00+05:45"]


# ---- notice and caps -----------------------------------------------------------------------------
def test_minimum_notice_excludes_earlier_starts() -> None:
    found = find_slots(
        Panel((ALEX,)),
        {ALEX: person(ALEX)},
        at("2026-12-07 08:00"),
        at("2026-12-07 12:00"),
        rules(not_before=at("2026-12-07 09:10")),
    )
    assert clock(found) == ["10:00", "11:00"]


def test_day_cap_counts_bookings_on_the_interviewers_local_day() -> None:
    # 23:30 UTC on 7 December is 08:30 on 8 December in Tokyo: the Tokyo day runs 15:00-15:00 UTC.
    people = {
        ALEX: person(
            ALEX,
            working=hours("Asia/Tokyo", "00:00", "00:00", ("monday", "tuesday", "wednesday")),
            booked=[(at("2026-12-07 23:30"), at("2026-12-08 00:30"))],
        )
    }
    found = find_slots(Panel((ALEX,)), people, at("2026-12-07 12:00"), at("2026-12-08 18:00"), rules(max_per_day=1))
    assert [s.start.strftime("%d %H:%M") for s in found.slots] == [
        "07 12:00",
        "07 13:00",
        "07 14:00",  # 23:00 on the 7th in Tokyo
        "08 15:00",  # 00:00 on the 9th in Tokyo
        "08 16:00",
        "08 17:00",
    ]
    assert starts(
        find_slots(Panel((ALEX,)), people, at("2026-12-07 12:00"), at("2026-12-08 18:00"), rules(max_per_day=2))
    )


def test_week_cap_counts_bookings_in_the_iso_week_of_the_slot() -> None:
    booked = [(at("2026-12-07 10:00"), at("2026-12-07 11:00")), (at("2026-12-09 10:00"), at("2026-12-09 11:00"))]
    people = {ALEX: person(ALEX, booked=booked)}  # no working hours: counted in UTC
    found = find_slots(Panel((ALEX,)), people, at("2026-12-13 22:00"), at("2026-12-14 01:00"), rules(max_per_week=2))
    assert starts(found) == ["2026-12-14T00:00:00+00:00"]  # Sunday is still the capped week


def test_week_cap_uses_the_interviewers_zone_for_the_week_boundary() -> None:
    booked = [(at("2026-12-07 10:00"), at("2026-12-07 11:00"))]
    people = {
        ALEX: person(ALEX, working=hours("America/New_York", "00:00", "00:00", ("sunday", "monday")), booked=booked)
    }
    # Monday 00:00-05:00 UTC is still Sunday in New York, in the week of the booking.
    found = find_slots(Panel((ALEX,)), people, at("2026-12-14 03:00"), at("2026-12-14 07:00"), rules(max_per_week=1))
    assert starts(found) == ["2026-12-14T05:00:00+00:00", "2026-12-14T06:00:00+00:00"]


# ---- panels --------------------------------------------------------------------------------------
def test_every_slot_lists_required_then_free_pool_members_then_free_optional_people() -> None:
    people = {
        ALEX: person(ALEX),
        BEA: person(BEA, busy("2026-12-07 09:00", "2026-12-07 10:00")),
        CARL: person(CARL),
        DANA: person(DANA, busy("2026-12-07 10:00", "2026-12-07 11:00")),
    }
    panel = Panel(required=(ALEX,), optional=(DANA,), pools=(Pool("panel", (BEA, CARL), 1),))
    found = find_slots(panel, people, at("2026-12-07 09:00"), at("2026-12-07 11:00"), rules())
    assert [s.interviewers for s in found.slots] == [(ALEX, CARL, DANA), (ALEX, BEA, CARL)]


# ---- load: fewer interviews that week, then that day, first -------------------------------------
def _interview(start: str, zone=UTC) -> tuple[datetime, datetime]:  # type: ignore[no-untyped-def]
    begin = at(start, zone).astimezone(UTC)
    return begin, begin + timedelta(hours=1)


def test_pool_members_in_a_slot_come_least_loaded_first_without_any_cap() -> None:
    people = {
        ALEX: person(ALEX, booked=[_interview("2026-12-08 09:00")]),
        BEA: person(BEA, booked=[_interview("2026-12-08 09:00"), _interview("2026-12-09 09:00")]),  # 2 that week
        CARL: person(CARL, booked=[_interview("2026-12-10 09:00")]),  # 1 that week
        DANA: person(DANA, booked=[_interview("2026-12-01 09:00")]),  # the week before: none that week
    }
    panel = Panel(required=(ALEX,), pools=(Pool("panel", (BEA, CARL, DANA), 2),))
    found = find_slots(panel, people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert [s.interviewers for s in found.slots] == [(ALEX, DANA, CARL, BEA)]
    # ALEX's one interview that week, plus the first two of the pool: DANA's none and CARL's one.
    assert found.slots[0].load == 2


def test_between_equal_weeks_the_member_with_fewer_interviews_that_day_comes_first() -> None:
    people = {
        BEA: person(BEA, booked=[_interview("2026-12-07 15:00")]),  # Monday, the slot's day
        CARL: person(CARL, booked=[_interview("2026-12-09 15:00")]),  # Wednesday, same week
    }
    panel = Panel(required=(), pools=(Pool("panel", (BEA, CARL), 1),))
    found = find_slots(panel, people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert [s.interviewers for s in found.slots] == [(CARL, BEA)]
    assert found.slots[0].load == 1


def test_equal_load_keeps_pool_order() -> None:
    people = {
        BEA: person(BEA, booked=[_interview("2026-12-08 09:00")]),
        CARL: person(CARL, booked=[_interview("2026-12-08 10:00")]),
    }
    panel = Panel(required=(), pools=(Pool("panel", (BEA, CARL), 1),))
    found = find_slots(panel, people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert [s.interviewers for s in found.slots] == [(BEA, CARL)]


def test_slots_stay_in_time_order_and_each_counts_the_load_of_its_own_week() -> None:
    people = {
        BEA: person(BEA, booked=[_interview("2026-12-08 09:00"), _interview("2026-12-09 09:00")]),
        CARL: person(CARL, booked=[_interview("2026-12-15 09:00")]),
    }
    panel = Panel(required=(), pools=(Pool("panel", (BEA, CARL), 1),))
    window = (at("2026-12-11 12:00"), at("2026-12-14 12:00"))  # Friday of one week into Monday of the next
    found = find_slots(panel, people, *window, rules(interval=24 * 60))
    assert [(f"{s.start:%a}", s.interviewers, s.load) for s in found.slots] == [
        ("Sat", (CARL, BEA), 0),  # BEA has two that week, CARL none
        ("Sun", (CARL, BEA), 0),
        ("Mon", (BEA, CARL), 0),  # the next week: CARL has one, BEA none
    ]


def test_load_days_and_weeks_are_those_of_the_person_s_zone() -> None:
    # Sunday 21:00 in New York is Monday 02:00 UTC: for a New York interviewer it is the week before.
    late_sunday = _interview("2026-12-13 21:00", NEW_YORK)
    bea = person(BEA, working=hours("America/New_York", "00:00", "23:59", days=DAYS), booked=[late_sunday])
    carl = person(CARL, booked=[late_sunday])  # no working hours: counted in UTC, on Monday
    counts = bea.counts
    assert (counts.time_zone_name, dict(counts.days), dict(counts.weeks)) == (
        "America/New_York",
        {date(2026, 12, 13): 1},
        {(2026, 50): 1},
    )
    assert (carl.counts.time_zone_name, dict(carl.counts.days), dict(carl.counts.weeks)) == (
        "UTC",
        {date(2026, 12, 14): 1},
        {(2026, 51): 1},
    )
    assert counts.on(date(2026, 12, 13)) == Load(week=1, day=1)
    assert counts.on(date(2026, 12, 14)) == Load()  # Monday: a new ISO week
    panel = Panel(required=(), pools=(Pool("panel", (BEA, CARL), 1),))
    monday = (at("2026-12-14 09:00", NEW_YORK), at("2026-12-14 10:00", NEW_YORK))
    found = find_slots(panel, {BEA: bea, CARL: carl}, *monday, rules(zone=NEW_YORK))
    assert [s.interviewers for s in found.slots] == [(BEA, CARL)]


def test_the_window_s_load_keeps_its_days_and_whole_weeks() -> None:
    booked = [_interview(d) for d in ("2026-12-04 09:00", "2026-12-07 09:00", "2026-12-07 11:00", "2026-12-10 09:00")]
    counts = person(BEA, booked=booked).counts.within(at("2026-12-07 00:00"), at("2026-12-08 00:00"))
    # Only Monday is a day of the window; its week counts Thursday's interview too, not the week before.
    assert dict(counts.days) == {date(2026, 12, 7): 2}
    assert dict(counts.weeks) == {(2026, 50): 3}


def test_caps_and_load_count_the_same_bookings() -> None:
    booked = [_interview("2026-12-07 09:00"), _interview("2026-12-08 09:00")]
    bea = person(BEA, booked=booked)
    capped = capped_periods(bea, SlotRules(HOUR, HOUR, UTC, max_per_day=1, max_per_week=2))
    assert sorted((kind, a.date()) for kind, a, _ in capped) == [
        (ReasonKind.DAY_CAP, date(2026, 12, 7)),
        (ReasonKind.DAY_CAP, date(2026, 12, 8)),
        (ReasonKind.WEEK_CAP, date(2026, 12, 7)),
    ]
    assert bea.counts.on(date(2026, 12, 8)) == Load(week=2, day=1)


def test_pool_needs_n_of_m_members_free() -> None:
    people = {
        ALEX: person(ALEX, busy("2026-12-07 09:00", "2026-12-07 10:00")),
        BEA: person(BEA, busy("2026-12-07 10:00", "2026-12-07 11:00")),
        CARL: person(CARL, busy("2026-12-07 09:00", "2026-12-07 11:00")),
    }
    panel = Panel(required=(), pools=(Pool("panel", (ALEX, BEA, CARL), 2),))
    found = find_slots(panel, people, at("2026-12-07 08:00"), at("2026-12-07 12:00"), rules())
    assert [(s.start.strftime("%H:%M"), s.interviewers) for s in found.slots] == [
        ("08:00", (ALEX, BEA, CARL)),
        ("11:00", (ALEX, BEA, CARL)),
    ]


def test_unreadable_required_interviewer_means_no_slot_and_the_explanation_says_why() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA, unreadable="access_policy")}
    found = find_slots(Panel((ALEX, BEA)), people, at("2026-12-07 09:00"), at("2026-12-07 12:00"), rules())
    assert found.slots == ()
    assert found.explanation is not None
    assert [(r.kind, r.person, r.detail) for r in found.explanation.reasons] == [
        (ReasonKind.UNREADABLE, BEA, "access_policy")
    ]
    first = found.explanation.suggestions[0]
    assert (first.kind, first.subject, first.slots) == (SuggestionKind.MAKE_OPTIONAL, BEA, 3)
    assert BEA in found.explanation.summary and "access_policy" in found.explanation.summary


def test_unreadable_pool_member_counts_as_not_free() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA, unreadable="timeout")}
    window = (at("2026-12-07 09:00"), at("2026-12-07 10:00"))
    assert find_slots(Panel((), pools=(Pool("p", (ALEX, BEA), 2),)), people, *window, rules()).slots == ()
    found = find_slots(Panel((), pools=(Pool("p", (ALEX, BEA), 1),)), people, *window, rules())
    assert [s.interviewers for s in found.slots] == [(ALEX,)]


def test_person_missing_from_the_schedules_is_never_free() -> None:
    found = find_slots(Panel((ALEX,)), {}, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert found.explanation is not None
    assert found.explanation.reasons[0].detail == "no_schedule"


def test_optional_people_never_block_a_slot() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA, unreadable="unknown")}
    found = find_slots(Panel((ALEX,), optional=(BEA,)), people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert [s.interviewers for s in found.slots] == [(ALEX,)]


def test_a_person_named_twice_in_a_panel_is_refused() -> None:
    with pytest.raises(ValueError, match="more than once"):
        find_slots(Panel((ALEX,), optional=(ALEX,)), {}, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    with pytest.raises(ValueError, match="need"):
        find_slots(
            Panel((), pools=(Pool("p", (ALEX,), 2),)), {}, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules()
        )


def test_naive_datetimes_and_bad_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        find_slots(Panel((ALEX,)), {}, at("2026-12-07 09:00").replace(tzinfo=None), at("2026-12-07 10:00"), rules())
    with pytest.raises(ValueError, match="positive"):
        find_slots(Panel((ALEX,)), {}, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules(0))
    with pytest.raises(ValueError, match="interval"):
        find_slots(Panel((ALEX,)), {}, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules(interval=0))


# ---- explanations --------------------------------------------------------------------------------
def test_explanation_names_who_is_busy_over_which_part_of_the_window() -> None:
    people = {
        ALEX: person(ALEX, busy("2026-12-07 09:00", "2026-12-07 10:30")),
        BEA: person(BEA, busy("2026-12-07 10:30", "2026-12-07 12:00")),
    }
    found = find_slots(Panel((ALEX, BEA)), people, at("2026-12-07 09:00"), at("2026-12-07 12:00"), rules())
    assert found.explanation is not None
    reasons = {(r.kind, r.person): r for r in found.explanation.reasons}
    assert reasons[(ReasonKind.BUSY, ALEX)].periods == ((at("2026-12-07 09:00"), at("2026-12-07 10:30")),)
    assert reasons[(ReasonKind.BUSY, BEA)].periods == ((at("2026-12-07 10:30"), at("2026-12-07 12:00")),)
    assert ReasonKind.NO_COMMON_TIME in {r.kind for r in found.explanation.reasons}
    assert {(s.kind, s.subject) for s in found.explanation.suggestions} == {
        (SuggestionKind.MAKE_OPTIONAL, ALEX),
        (SuggestionKind.MAKE_OPTIONAL, BEA),
    }


def test_explanation_names_whose_working_hours_exclude_the_window() -> None:
    people = {ALEX: person(ALEX, working=hours("Asia/Tokyo"))}
    found = find_slots(Panel((ALEX,)), people, at("2026-12-07 12:00"), at("2026-12-07 15:00"), rules())
    assert found.explanation is not None
    reason = found.explanation.reasons[0]
    assert (reason.kind, reason.person) == (ReasonKind.OUTSIDE_WORKING_HOURS, ALEX)
    assert "Asia/Tokyo" in reason.detail and "none of it inside the window" in reason.detail
    assert [s.kind for s in found.explanation.suggestions] == [SuggestionKind.IGNORE_WORKING_HOURS]


def test_explanation_names_a_reached_cap_and_suggests_raising_it() -> None:
    people = {ALEX: person(ALEX, booked=[(at("2026-12-07 08:00"), at("2026-12-07 09:00"))])}
    found = find_slots(Panel((ALEX,)), people, at("2026-12-07 09:00"), at("2026-12-07 12:00"), rules(max_per_day=1))
    assert found.explanation is not None
    reason = found.explanation.reasons[0]
    assert (reason.kind, reason.person) == (ReasonKind.DAY_CAP, ALEX)
    assert reason.periods == ((at("2026-12-07 09:00"), at("2026-12-07 12:00")),)
    assert [(s.kind, s.amount, s.slots) for s in found.explanation.suggestions] == [
        (SuggestionKind.RAISE_DAY_CAP, 1, 3)
    ]


def test_explanation_for_notice_suggests_the_smallest_shorter_notice() -> None:
    found = find_slots(
        Panel((ALEX,)),
        {ALEX: person(ALEX, busy("2026-12-07 11:00", "2026-12-07 12:00"))},
        at("2026-12-07 09:00"),
        at("2026-12-07 12:00"),
        rules(not_before=at("2026-12-07 10:20")),
    )
    assert found.explanation is not None
    assert found.explanation.reasons[0].kind is ReasonKind.NOTICE
    assert found.explanation.reasons[0].periods == ((at("2026-12-07 09:00"), at("2026-12-07 10:20")),)
    suggestion = found.explanation.suggestions[0]
    assert (suggestion.kind, suggestion.amount, suggestion.slots) == (SuggestionKind.SHORTEN_NOTICE, 20, 1)


def test_explanation_suggests_lowering_a_pools_need() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA, busy("2026-12-07 09:00", "2026-12-07 10:00")), CARL: person(CARL)}
    panel = Panel((ALEX,), pools=(Pool("panel", (BEA, CARL), 2),))
    found = find_slots(panel, people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert found.explanation is not None
    pool_reason = [r for r in found.explanation.reasons if r.kind is ReasonKind.POOL_SHORT]
    assert pool_reason and pool_reason[0].pool == "panel" and "at most 1 of 2" in pool_reason[0].detail
    first = found.explanation.suggestions[0]
    assert (first.kind, first.subject, first.amount) == (SuggestionKind.LOWER_NEED, "panel", 1)


def test_explanation_suggests_counting_tentative_as_free() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 09:00", "2026-12-07 10:00", FreeBusyStatus.TENTATIVE))}
    found = find_slots(Panel((ALEX,)), people, at("2026-12-07 09:00"), at("2026-12-07 10:00"), rules())
    assert found.explanation is not None
    assert [(s.kind, s.slots) for s in found.explanation.suggestions] == [(SuggestionKind.TENTATIVE_AS_FREE, 1)]


def test_explanation_suggests_widening_the_window_only_within_the_fetched_horizon() -> None:
    people = {ALEX: person(ALEX, busy("2026-12-07 00:00", "2026-12-09 10:00"))}
    window = (at("2026-12-07 09:00"), at("2026-12-07 17:00"))
    found = find_slots(Panel((ALEX,)), people, *window, rules(), horizon_end=at("2026-12-14 00:00"))
    assert found.explanation is not None
    widen = [s for s in found.explanation.suggestions if s.kind is SuggestionKind.WIDEN_WINDOW]
    assert [(s.amount, s.slots) for s in widen] == [(2, 7)]  # up to 17:00 on the 9th: 10:00 .. 16:00
    short = find_slots(Panel((ALEX,)), people, *window, rules(), horizon_end=at("2026-12-09 10:30"))
    assert short.explanation is not None
    assert not [s for s in short.explanation.suggestions if s.kind is SuggestionKind.WIDEN_WINDOW]


def test_explanation_when_the_window_is_shorter_than_the_slot() -> None:
    found = find_slots(Panel((ALEX,)), {ALEX: person(ALEX)}, at("2026-12-07 09:00"), at("2026-12-07 09:30"), rules())
    assert found.explanation is not None
    assert found.explanation.reasons[0].kind is ReasonKind.WINDOW_TOO_SHORT
    assert found.explanation.summary.startswith("No 60-minute slot fits between")


def test_slots_come_in_the_output_zone_and_in_time_order() -> None:
    found = find_slots(
        Panel((ALEX,)), {ALEX: person(ALEX)}, at("2026-12-07 09:00"), at("2026-12-07 12:00"), rules(zone=BERLIN)
    )
    assert starts(found) == ["2026-12-07T10:00:00+01:00", "2026-12-07T11:00:00+01:00", "2026-12-07T12:00:00+01:00"]
    assert [s.start for s in found.slots] == sorted(s.start for s in found.slots)
    assert all(s.start.tzinfo is BERLIN for s in found.slots)
    assert found.slots[0].start.astimezone(UTC) == at("2026-12-07 09:00")


# ---- pages ----------------------------------------------------------------------------------------
def test_pages_join_to_the_whole_answer_with_no_slot_lost_or_repeated() -> None:
    # Across the autumn change, where two slots share a wall-clock time: the page boundary is an instant.
    people = {ALEX: person(ALEX), BEA: person(BEA, busy("2026-11-01 06:00", "2026-11-01 07:00"))}
    panel = Panel((ALEX,), optional=(BEA,))
    window = (at("2026-11-01 00:00", NEW_YORK), at("2026-11-01 05:00", NEW_YORK))
    whole = find_slots(panel, people, *window, rules(30, zone=NEW_YORK))
    pages, after = [], None
    while True:
        page = find_slots(panel, people, *window, rules(30, zone=NEW_YORK), limit=2, after=after)
        assert page.total == len(whole.slots) == 6 and page.explanation is None
        pages.append(page.slots)
        if not page.more:
            break
        after = datetime.fromisoformat(page.slots[-1].start.isoformat())  # as a client sends it back
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [s for p in pages for s in p] == list(whole.slots)
    assert "2026-11-01T01:00:00-05:00" in [s.start.isoformat() for p in pages for s in p]


def test_a_page_holds_at_most_its_limit_and_counts_the_whole_window() -> None:
    people = {name: person(name) for name in (ALEX, BEA, CARL)}
    panel = Panel((), optional=(ALEX, BEA, CARL))
    window = (at("2026-12-07 00:00"), at("2027-06-07 00:00"))  # six months on a 5-minute grid
    found = find_slots(panel, people, *window, rules(30, interval=5), limit=100)
    assert len(found.slots) == 100 and found.more
    assert found.total == 182 * 288 - 5  # every start from which 30 minutes fit by the end
    assert [s.interviewers for s in found.slots] == [(ALEX, BEA, CARL)] * 100
    last = find_slots(panel, people, *window, rules(30, interval=5), limit=100, after=at("2027-06-06 23:25"))
    assert [s.start for s in last.slots] == [at("2027-06-06 23:30")] and not last.more


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        find_slots(
            Panel((ALEX,)), {ALEX: person(ALEX)}, at("2026-12-07 08:00"), at("2026-12-07 13:00"), rules(), limit=0
        )
