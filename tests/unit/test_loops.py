"""Interview loops: sessions in order, gaps, one day, the candidate's windows, ranking and fairness."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from shared.scheduling.loops import LoopRules, LoopSession, find_loops
from shared.scheduling.slots import Panel, Person, Pool, ReasonKind, SuggestionKind
from tests.unit.slot_support import MINUTES, at, busy, schedule

ALEX, BEA, CARL, DANA = "alex@contoso.example", "bea@contoso.example", "carl@contoso.example", "dana@contoso.example"


def person(email: str, *blocks, booked=()) -> Person:  # type: ignore[no-untyped-def]
    return Person(schedule(email, *blocks), tuple(booked))


def loop_rules(interval: int = 30, **options: object) -> LoopRules:
    return LoopRules(interval=interval * MINUTES, time_zone=UTC, **options)  # type: ignore[arg-type]


def session(minutes: int, *required: str, pools: tuple[Pool, ...] = (), name: str = "") -> LoopSession:
    return LoopSession(minutes * MINUTES, Panel(tuple(required), pools=pools), name)


def times(loop) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"{s.start:%H:%M}-{s.end:%H:%M}" for s in loop.sessions]


def test_loop_runs_sessions_back_to_back_and_ranks_fewest_gaps_first() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA, busy("2026-12-07 10:00", "2026-12-07 11:00"))}
    found = find_loops(
        [session(60, ALEX), session(60, BEA)],
        people,
        at("2026-12-07 09:00"),
        at("2026-12-07 12:30"),
        loop_rules(max_gap=60 * MINUTES),
    )
    assert [times(loop) for loop in found.loops] == [
        ["10:00-11:00", "11:00-12:00"],  # no gap, earliest first
        ["10:30-11:30", "11:30-12:30"],
        ["09:30-10:30", "11:00-12:00"],  # 30 minutes
        ["10:00-11:00", "11:30-12:30"],
        ["09:00-10:00", "11:00-12:00"],  # 60 minutes
    ]
    assert found.loops[0].gaps == (timedelta(0),)
    assert found.loops[2].gaps == (timedelta(minutes=30),)


def test_max_results_limits_the_answer() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA)}
    found = find_loops(
        [session(30, ALEX), session(30, BEA)],
        people,
        at("2026-12-07 09:00"),
        at("2026-12-07 17:00"),
        loop_rules(max_results=2),
    )
    assert [times(loop) for loop in found.loops] == [["09:00-09:30", "09:30-10:00"], ["09:30-10:00", "10:00-10:30"]]


def test_same_day_keeps_every_session_in_one_local_day_of_the_output_zone() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA)}
    window = (at("2026-12-07 22:00"), at("2026-12-08 02:00"))
    sessions = [session(60, ALEX), session(60, BEA)]
    same = find_loops(sessions, people, *window, loop_rules(max_gap=0 * MINUTES, max_results=10))
    assert [times(loop) for loop in same.loops] == [["22:00-23:00", "23:00-00:00"], ["00:00-01:00", "01:00-02:00"]]
    spread = find_loops(sessions, people, *window, loop_rules(max_gap=0 * MINUTES, max_results=10, same_day=False))
    assert ["22:30-23:30", "23:30-00:30"] in [times(loop) for loop in spread.loops]
    assert ["22:30-23:30", "23:30-00:30"] not in [times(loop) for loop in same.loops]


def test_every_session_lies_inside_one_of_the_candidates_windows() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA)}
    windows = ((at("2026-12-07 09:00"), at("2026-12-07 10:00")), (at("2026-12-07 13:00"), at("2026-12-07 14:30")))
    found = find_loops(
        [session(60, ALEX), session(60, BEA)],
        people,
        at("2026-12-07 08:00"),
        at("2026-12-07 18:00"),
        loop_rules(candidate_windows=windows),
    )
    assert [times(loop) for loop in found.loops] == [["09:00-10:00", "13:00-14:00"], ["09:00-10:00", "13:30-14:30"]]


def test_pools_get_exactly_need_members_and_the_least_loaded_first() -> None:
    monday = (at("2026-12-07 08:00"), at("2026-12-07 09:00"))
    people = {
        ALEX: person(ALEX),
        BEA: person(BEA, booked=[monday, monday]),
        CARL: person(CARL, booked=[monday]),
        DANA: person(DANA),
    }
    found = find_loops(
        [session(60, ALEX, pools=(Pool("panel", (BEA, CARL, DANA), 2),))],
        people,
        at("2026-12-08 09:00"),
        at("2026-12-08 10:00"),
        loop_rules(),
    )
    assert [s.interviewers for s in found.loops[0].sessions] == [(ALEX, CARL, DANA)]
    assert found.loops[0].load == 1


def test_ranking_prefers_the_fairer_spread_of_load_among_equal_gaps() -> None:
    monday = (at("2026-12-07 08:00"), at("2026-12-07 09:00"))
    people = {BEA: person(BEA, booked=[monday, monday])}
    found = find_loops(
        [session(60, BEA)],
        people,
        at("2026-12-11 09:00"),  # Friday of the week BEA already has two interviews in
        at("2026-12-14 03:00"),  # into Monday of the next week
        loop_rules(interval=60, max_results=4),
    )
    assert [f"{loop.sessions[0].start:%a %H:%M}" for loop in found.loops] == [
        "Mon 00:00",
        "Mon 01:00",
        "Mon 02:00",
        "Fri 09:00",
    ]
    assert [loop.load for loop in found.loops] == [0, 0, 0, 2]


def test_a_pool_prefers_the_member_with_fewer_interviews_that_day_when_their_weeks_are_equal() -> None:
    people = {
        ALEX: person(ALEX),
        BEA: person(BEA, booked=[(at("2026-12-07 15:00"), at("2026-12-07 16:00"))]),  # Monday
        CARL: person(CARL, booked=[(at("2026-12-09 15:00"), at("2026-12-09 16:00"))]),  # Wednesday
    }
    found = find_loops(
        [session(60, ALEX, pools=(Pool("panel", (BEA, CARL), 1),))],
        people,
        at("2026-12-07 09:00"),
        at("2026-12-07 10:00"),
        loop_rules(),
    )
    assert [s.interviewers for s in found.loops[0].sessions] == [(ALEX, CARL)]
    assert (found.loops[0].load, found.loops[0].day_load) == (1, 0)


def test_among_equal_gaps_and_week_loads_the_lower_day_load_ranks_first() -> None:
    people = {BEA: person(BEA, booked=[(at("2026-12-07 08:00"), at("2026-12-07 09:00"))])}  # Monday
    found = find_loops(
        [session(60, BEA)],
        people,
        at("2026-12-07 12:00"),  # Monday
        at("2026-12-08 02:00"),  # into Tuesday, the same ISO week
        loop_rules(interval=60, max_results=3),
    )
    assert [f"{loop.sessions[0].start:%a %H:%M}" for loop in found.loops] == ["Tue 00:00", "Tue 01:00", "Mon 12:00"]
    assert [(loop.load, loop.day_load) for loop in found.loops] == [(1, 0), (1, 0), (1, 1)]


def test_a_second_seat_of_one_person_counts_toward_the_loop_s_load() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA)}
    window = (at("2026-12-07 09:00"), at("2026-12-07 11:00"))
    twice = find_loops([session(60, ALEX), session(60, ALEX)], people, *window, loop_rules())
    assert [(loop.load, loop.day_load) for loop in twice.loops] == [(1, 1)]  # the second seat sees the first
    spread = find_loops([session(60, ALEX), session(60, BEA)], people, *window, loop_rules())
    assert spread.loops[0].load == 0


def test_one_person_in_two_sessions_needs_their_buffers_between_them() -> None:
    people = {ALEX: person(ALEX)}
    found = find_loops(
        [session(60, ALEX), session(60, ALEX)],
        people,
        at("2026-12-07 09:00"),
        at("2026-12-07 12:00"),
        loop_rules(buffer_after=15 * MINUTES, max_gap=60 * MINUTES),
    )
    assert [times(loop) for loop in found.loops] == [
        ["09:00-10:00", "10:30-11:30"],  # 15 minutes of buffer round up to the next start: 30
        ["09:30-10:30", "11:00-12:00"],
        ["09:00-10:00", "11:00-12:00"],
    ]
    assert found.loops[0].gaps == (timedelta(minutes=30),)


def test_a_person_in_two_sessions_counts_twice_toward_the_day_cap() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA), CARL: person(CARL)}
    sessions = [
        session(60, pools=(Pool("first", (ALEX, BEA), 1),)),
        session(60, pools=(Pool("second", (ALEX, CARL), 1),)),
    ]
    window = (at("2026-12-07 09:00"), at("2026-12-07 11:00"))
    found = find_loops(sessions, people, *window, loop_rules(max_per_day=1))
    assert [[s.interviewers for s in loop.sessions] for loop in found.loops] == [[(ALEX,), (CARL,)]]
    booked = {**people, CARL: person(CARL, booked=[(at("2026-12-07 07:00"), at("2026-12-07 08:00"))])}
    found = find_loops(sessions, booked, *window, loop_rules(max_per_day=1))
    assert [[s.interviewers for s in loop.sessions] for loop in found.loops] == [[(BEA,), (ALEX,)]]


def test_no_loop_explains_which_session_fits_nowhere() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA, busy("2026-12-07 00:00", "2026-12-08 00:00"))}
    found = find_loops(
        [session(60, ALEX, name="intro"), session(60, BEA, name="technical")],
        people,
        at("2026-12-07 09:00"),
        at("2026-12-07 12:00"),
        loop_rules(),
    )
    assert found.loops == () and found.explanation is not None
    assert found.explanation.summary.startswith("technical fits nowhere.")
    reason = found.explanation.reasons[0]
    assert (reason.kind, reason.person, reason.session) == (ReasonKind.BUSY, BEA, 1)


def test_no_loop_when_sessions_do_not_chain_suggests_a_longer_gap() -> None:
    people = {ALEX: person(ALEX), BEA: person(BEA, busy("2026-12-07 09:00", "2026-12-07 11:00"))}
    found = find_loops(
        [session(60, ALEX), session(60, BEA)],
        people,
        at("2026-12-07 09:00"),
        at("2026-12-07 12:00"),
        loop_rules(
            max_gap=0 * MINUTES,
            candidate_windows=(
                (at("2026-12-07 09:00"), at("2026-12-07 10:00")),
                (at("2026-12-07 11:00"), at("2026-12-07 12:00")),
            ),
        ),
    )
    assert found.explanation is not None
    assert found.explanation.reasons[0].kind is ReasonKind.SESSIONS_DO_NOT_CHAIN
    first = found.explanation.suggestions[0]
    assert (first.kind, first.amount, first.slots) == (SuggestionKind.RAISE_MAX_GAP, 60, 1)


def test_no_loop_suggests_several_days_or_a_wider_window() -> None:
    # ALEX is free only late on the 7th, BEA only from midnight: the loop would cross midnight.
    people = {
        ALEX: person(ALEX, busy("2026-12-07 09:00", "2026-12-07 23:00"), busy("2026-12-08 00:00", "2026-12-08 09:00")),
        BEA: person(BEA, busy("2026-12-07 09:00", "2026-12-08 00:00")),
    }
    found = find_loops(
        [session(60, ALEX), session(60, BEA)],
        people,
        at("2026-12-07 09:00"),
        at("2026-12-08 09:00"),
        loop_rules(max_gap=None),
        horizon_end=at("2026-12-09 00:00"),
    )
    assert found.explanation is not None
    kinds = {(s.kind, s.amount) for s in found.explanation.suggestions}
    assert (SuggestionKind.ALLOW_SEVERAL_DAYS, None) in kinds
    assert (SuggestionKind.WIDEN_WINDOW, 1) in kinds


def test_a_loop_needs_sessions() -> None:
    with pytest.raises(ValueError, match="session"):
        find_loops([], {}, at("2026-12-07 09:00"), at("2026-12-07 12:00"), loop_rules())
