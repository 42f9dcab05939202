"""Availability: bookable interview slots and interview loops across many interviewers.

One getSchedule pass (through the Graph adapter, which knows chunks, waves, retries and the
deadline) with the signed-in user's delegated token, so titles appear only where Outlook would
show them to this user; one range query reads this service's own stored bookings for every query
(queries of a tenant that ask together share one that begins after each of them asked): they feed the
caps and each interviewer's load (which ranks pool members and loops, cap or no cap); the slot engine
(``shared.scheduling.slots``) does the rest. A person Graph could not read is reported, never free.

Warm interviewers come from the busy cache (``shared.cache``) instead, as the same ``Schedule`` values
without titles; cold ones (and everyone when the request asks ``"freshness": "live"``) from getSchedule,
in one answer that says per interviewer where it came from and as of when. Everyone asked about is noted
so the cache warms them for the next query.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared import threads
from shared.cache.keeper import note_asked
from shared.cache.reader import read_warm
from shared.config import WORKER_THREADS
from shared.identity.guard import RequestContext, with_user_access
from shared.memo import IdentityMemo
from shared.models import AttendeeResponse, Booking, BookingStatus, Schedule, ScheduleStatus
from shared.ports import Dependencies
from shared.scheduling.loops import LoopRules, LoopSearch, LoopSession, find_loops
from shared.scheduling.request import AvailabilityRequest, LoopRequest, PanelSpec, SlotOptions
from shared.scheduling.slots import InterviewCounts, Panel, Person, Pool, SlotRules, SlotSearch, find_slots

logger = logging.getLogger(__name__)

# How far past the requested window an explanation may look when it suggests widening it.
EXPLANATION_HORIZON = timedelta(days=14)
# Bookings this far either side of the window can count toward a day or ISO week of it.
CAP_MARGIN = timedelta(days=8)


@dataclass(frozen=True)
class ScheduleSource:
    """Where one interviewer's schedule came from: ``cache`` (as of the start of the delta round it is
    from) or ``live`` (read from Graph for this answer)."""

    source: str
    as_of: datetime


@dataclass(frozen=True)
class AvailabilityAnswer:
    time_zone_name: str
    schedules: tuple[Schedule, ...]
    search: SlotSearch
    loads: Mapping[str, InterviewCounts]  # per address: interviews per local day and ISO week of the window
    sources: Mapping[str, ScheduleSource]  # per address as asked


@dataclass(frozen=True)
class LoopAnswer:
    time_zone_name: str
    schedules: tuple[Schedule, ...]
    search: LoopSearch
    loads: Mapping[str, InterviewCounts]
    sources: Mapping[str, ScheduleSource]


def _panel(spec: PanelSpec) -> Panel:
    return Panel(
        required=spec.required,
        optional=spec.optional,
        pools=tuple(Pool(name=p.name, members=p.members, need=p.need) for p in spec.pools),
    )


def _rules(options: SlotOptions, duration: timedelta, now: datetime) -> SlotRules:
    return SlotRules(
        duration=duration,
        interval=options.interval,
        time_zone=options.time_zone,
        buffer_before=options.buffer_before,
        buffer_after=options.buffer_after,
        not_before=now + options.minimum_notice,
        tentative_is_busy=options.tentative_is_busy,
        working_hours=options.working_hours,
        max_per_day=options.max_per_day,
        max_per_week=options.max_per_week,
    )


def _read_schedules(
    deps: Dependencies,
    ctx: RequestContext,
    people: Sequence[str],
    start: datetime,
    end: datetime,
    deadline: float,
    *,
    live: bool = False,
    on_turn: Callable[[], None] | None = None,
) -> tuple[list[Schedule], dict[str, ScheduleSource]]:
    """Each person's schedule, in order: warm ones from the busy cache (unless ``live``), the rest from
    getSchedule. Raises ReauthRequired when Graph refuses the user's own token and a refresh does not
    help: never an empty calendar."""
    warm = {} if live else read_warm(deps, ctx.tenant_id, people, start, end)
    cold = [p for p in people if p.strip().lower() not in warm]
    fetched: list[Schedule] = []
    if cold:
        fetched = with_user_access(
            deps,
            ctx,
            lambda token: deps.graph.get_schedules(token, cold, start, end, deadline=deadline, on_turn=on_turn),
        )
    read_at = deps.clock.now()
    by_person = iter(fetched)
    schedules: list[Schedule] = []
    sources: dict[str, ScheduleSource] = {}
    for person in people:
        cached = warm.get(person.strip().lower())
        if cached is not None:
            schedules.append(_as_asked(cached.schedule, person))
            sources[person] = _from_cache(cached.as_of)
        else:
            schedules.append(next(by_person))
            sources[person] = ScheduleSource("live", read_at)
    return schedules, sources


_asked_as: IdentityMemo[Schedule] = IdentityMemo()


@functools.lru_cache(maxsize=1024)
def _from_cache(as_of: datetime) -> ScheduleSource:
    # Everyone synced by the same round shares one.
    return ScheduleSource("cache", as_of)


def _as_asked(schedule: Schedule, person: str) -> Schedule:
    """A cached schedule under the address as the request wrote it (the cache keys people lower-cased);
    the same object each time, so what is derived from it stays remembered."""
    if schedule.email == person:
        return schedule
    return _asked_as.get(schedule, person, lambda: replace(schedule, email=person))


def _booked(bookings: Iterable[Booking], people: Iterable[str]) -> dict[str, tuple[tuple[datetime, datetime], ...]]:
    """Each person's interviews booked by this service near the window (what the caps and the load
    count): not cancelled, not failed, and not declined by that person."""
    wanted = set(people)
    found: dict[str, list[tuple[datetime, datetime]]] = {}
    for booking in bookings:
        if booking.status is BookingStatus.CANCELLED or booking.status is BookingStatus.FAILED:
            continue
        # An interviewer who declined will not be there: the interview does not count toward their caps.
        declined = {r.email.lower() for r in booking.responses if r.response is AttendeeResponse.DECLINED}
        for attendee in booking.attendees:
            key = attendee.lower()
            if key in wanted and key not in declined:
                found.setdefault(key, []).append((booking.start, booking.end))
    return {p: tuple(sorted(v)) for p, v in found.items()}  # nobody without a booking


# The stored bookings near a window, one range query (storage returns only the bookings that overlap the
# window and its margin), shared by a tenant's queries that ask at about the same time (a recruiter's page
# asks for several slot searches at once): each joins a read that has not started, so it sees every booking
# made before it asked. Keyed by the store too (tests give each their own).
_bookings_near: threads.SharedCalls[list[Booking]] = threads.SharedCalls(threads.pool("bookings", WORKER_THREADS))


def _read_bookings(
    deps: Dependencies, tenant_id: str, start: datetime, end: datetime
) -> threads.SharedCall[list[Booking]]:
    lo, hi = start - CAP_MARGIN, end + CAP_MARGIN
    return _bookings_near.join(
        (id(deps.bookings), tenant_id, lo, hi),
        functools.partial(deps.bookings.list_bookings_between, tenant_id, lo, hi),
    )


def _people(
    schedules: Sequence[Schedule], booked: Mapping[str, tuple[tuple[datetime, datetime], ...]]
) -> dict[str, Person]:
    return {s.email: Person(schedule=s, booked=booked.get(s.email, ())) for s in schedules}


def _loads(persons: Mapping[str, Person], options: SlotOptions) -> dict[str, InterviewCounts]:
    return {email: person.counts.within(options.start, options.end) for email, person in persons.items()}


def _fetch(
    deps: Dependencies,
    ctx: RequestContext,
    people: Sequence[str],
    options: SlotOptions,
    extra: timedelta,
    deadline: float,
) -> tuple[list[Schedule], dict[str, Person], dict[str, ScheduleSource]]:
    fetch_start = options.start - options.buffer_before
    fetch_end = options.end + options.buffer_after + extra
    live = options.freshness == "live"
    # The bookings (storage) are read while Graph is, on threads the worker keeps, once the first of this
    # query's Graph requests has its turn (or Graph is not needed): a burst of queries sends its first
    # requests before anyone's storage read takes the worker's CPU, and the queries that wait in the
    # mailbox's line meanwhile share one read.
    bookings = _read_bookings(deps, ctx.tenant_id, fetch_start, fetch_end)
    try:
        schedules, sources = _read_schedules(
            deps, ctx, people, fetch_start, fetch_end, deadline, live=live, on_turn=bookings.start
        )
    except BaseException:
        bookings.leave()
        raise
    try:
        booked = _booked(bookings.result(), people)
    finally:
        bookings.leave()
    return schedules, _people(schedules, booked), sources


def _readable(schedules: Sequence[Schedule]) -> list[str]:
    """Who the busy cache may keep: people Graph could read (nobody unknown, outside the tenant or on
    premises, whom delta could not read either)."""
    return [s.email for s in schedules if s.status is ScheduleStatus.OK]


def _lost_anyone(first: Sequence[Schedule], second: Sequence[Schedule]) -> bool:
    """Whether someone read the first time could not be read the second (the deadline, usually)."""
    again = {s.email: s.status for s in second}
    return any(s.status is ScheduleStatus.OK and again.get(s.email) is not ScheduleStatus.OK for s in first)


def find_availability(deps: Dependencies, ctx: RequestContext, request: AvailabilityRequest) -> AvailabilityAnswer:
    """Bookable slots for the panel. Raises ReauthRequired, UpstreamError; no slot is a value.

    One deadline covers every Graph read of the answer, the explanation's wider read included:
    whoever is not read by then is unreadable (timeout), never free."""
    deadline = deps.settings.availability_deadline()
    options = request.options
    people = request.panel.people
    rules = _rules(options, request.duration, deps.clock.now())
    panel = _panel(request.panel)
    schedules, persons, sources = _fetch(deps, ctx, people, options, timedelta(0), deadline)
    search = find_slots(panel, persons, options.start, options.end, rules, limit=request.max_slots, after=request.after)
    if not search.total and time.monotonic() < deadline:
        # Only when nothing fits, and time is left: read two more weeks so the explanation can say
        # how far to widen. Someone this read loses would look unreadable where they were read, or
        # free where they were not: then the first answer stands, without that suggestion.
        wider, wider_persons, wider_sources = _fetch(deps, ctx, people, options, EXPLANATION_HORIZON, deadline)
        if not _lost_anyone(schedules, wider):
            schedules, persons, sources = wider, wider_persons, wider_sources
            search = find_slots(
                panel,
                persons,
                options.start,
                options.end,
                rules,
                horizon_end=options.end + EXPLANATION_HORIZON,
                limit=request.max_slots,
                after=request.after,
            )
    logger.info("availability: %d people, %d slots, %d on this page", len(people), search.total, len(search.slots))
    note_asked(deps, ctx.tenant_id, _readable(schedules))
    return AvailabilityAnswer(
        time_zone_name=options.time_zone_name,
        schedules=tuple(schedules),
        search=search,
        loads=_loads(persons, options),
        sources=sources,
    )


def find_interview_loops(deps: Dependencies, ctx: RequestContext, request: LoopRequest) -> LoopAnswer:
    """The best schedules for an ordered loop of sessions. Raises ReauthRequired, UpstreamError."""
    options = request.options
    deadline = deps.settings.availability_deadline()
    schedules, persons, sources = _fetch(deps, ctx, request.people, options, timedelta(0), deadline)
    sessions = tuple(LoopSession(name=s.name, duration=s.duration, panel=_panel(s.panel)) for s in request.sessions)
    rules = LoopRules(
        interval=options.interval,
        time_zone=options.time_zone,
        buffer_before=options.buffer_before,
        buffer_after=options.buffer_after,
        not_before=deps.clock.now() + options.minimum_notice,
        tentative_is_busy=options.tentative_is_busy,
        working_hours=options.working_hours,
        max_per_day=options.max_per_day,
        max_per_week=options.max_per_week,
        max_gap=request.max_gap,
        same_day=request.same_day,
        candidate_windows=request.candidate_windows,
        max_results=request.max_results,
    )
    search = find_loops(sessions, persons, options.start, options.end, rules)
    logger.info("loops: %d sessions, %d people, %d results", len(sessions), len(persons), len(search.loops))
    note_asked(deps, ctx.tenant_id, _readable(schedules))
    return LoopAnswer(
        time_zone_name=options.time_zone_name,
        schedules=tuple(schedules),
        search=search,
        loads=_loads(persons, options),
        sources=sources,
    )
