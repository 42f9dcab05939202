"""Availability under the two-token rule: bookable slots, and interview loops of several sessions."""

from __future__ import annotations

import functools
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import azure.functions as func
import orjson

from functions._auth import requires_session
from functions._contract import read_body
from functions._http import http_endpoint, json_response
from shared.bootstrap import get_container
from shared.memo import IdentityMemo

if TYPE_CHECKING:
    from shared.identity.guard import RequestContext
    from shared.models import Schedule
    from shared.scheduling.availability import ScheduleSource
    from shared.scheduling.slots import Explanation, InterviewCounts

bp = func.Blueprint()


@bp.function_name("availability")
@bp.route(route="availability", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def availability(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.scheduling.availability import find_availability
    from shared.scheduling.request import parse_availability_request

    request = parse_availability_request(read_body(req, "availability"))
    answer = find_availability(get_container(), ctx, request)
    zone, window = request.options.time_zone, (request.options.start, request.options.end)
    slots = answer.search.slots
    return json_response(
        {
            "time_zone": answer.time_zone_name,
            "slots": [
                {
                    "start": _at(s.start, zone),
                    "end": _at(s.end, zone),
                    "interviewers": list(s.interviewers),
                    "load": s.load,
                }
                for s in slots
            ],
            "total_slots": answer.search.total,
            # The same request with these fields added gives the next page.
            "next": {"after": _at(slots[-1].start, zone)} if answer.search.more and slots else None,
            "interviewers": [
                _schedule(s, zone, window, answer.loads[s.email], answer.sources[s.email]) for s in answer.schedules
            ],
            "explanation": _explanation(answer.search.explanation, zone),
        }
    )


@bp.function_name("availability_loops")
@bp.route(route="availability/loops", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def availability_loops(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.scheduling.availability import find_interview_loops
    from shared.scheduling.request import parse_loop_request

    request = parse_loop_request(read_body(req, "availability_loops"))
    answer = find_interview_loops(get_container(), ctx, request)
    zone, window = request.options.time_zone, (request.options.start, request.options.end)
    return json_response(
        {
            "time_zone": answer.time_zone_name,
            "loops": [
                {
                    "start": _at(loop.sessions[0].start, zone),
                    "end": _at(loop.sessions[-1].end, zone),
                    "sessions": [
                        {
                            "name": s.name,
                            "start": _at(s.start, zone),
                            "end": _at(s.end, zone),
                            "interviewers": list(s.interviewers),
                        }
                        for s in loop.sessions
                    ],
                    "gaps_minutes": [int(g.total_seconds() // 60) for g in loop.gaps],
                    "load": loop.load,
                }
                for loop in answer.search.loops
            ],
            "interviewers": [
                _schedule(s, zone, window, answer.loads[s.email], answer.sources[s.email]) for s in answer.schedules
            ],
            "explanation": _explanation(answer.search.explanation, zone),
        }
    )


@functools.lru_cache(maxsize=8192)
def _at(moment: datetime, zone: tzinfo) -> str:
    # Many people share the same instants (series, all-day events, the slot grid): convert each once.
    return moment.astimezone(zone).isoformat()


def _load(counts: InterviewCounts) -> dict[str, Any]:
    # Days and weeks without an interview are left out: a window may span six months.
    if not counts.days and not counts.weeks:
        return _no_load.get(counts, None, lambda: {"time_zone": counts.time_zone_name, "days": {}, "weeks": {}})
    return {
        "time_zone": counts.time_zone_name,
        "days": {day.isoformat(): n for day, n in sorted(counts.days.items())},
        "weeks": {f"{year}-W{week:02d}": n for (year, week), n in sorted(counts.weeks.items())},
    }


def _schedule(
    schedule: Schedule,
    zone: tzinfo,
    window: tuple[datetime, datetime],
    load: InterviewCounts,
    source: ScheduleSource,
) -> dict[str, Any]:
    start, end = window
    return {
        **_schedule_json.get(schedule, (zone, start, end), lambda: _schedule_fields(schedule, zone, start, end)),
        "load": _load(load),
        # "cache": from the busy cache (no titles), as of the start of the delta round it is from;
        # "live": read from Graph for this answer.
        "source": source.source,
        "as_of": _at(source.as_of, zone),
    }


# Nobody booked: the same empty counts of a warm interviewer are the same object each time (never changed).
_no_load: IdentityMemo[dict[str, Any]] = IdentityMemo(per_object=1)

# What an answer says of a schedule itself, per zone and window: a warm interviewer's schedule is the same
# object from query to query (``shared.memo``), and their busy list is most of a large answer.
_schedule_json: IdentityMemo[dict[str, Any]] = IdentityMemo()


def _schedule_fields(schedule: Schedule, zone: tzinfo, start: datetime, end: datetime) -> dict[str, Any]:
    """Never changed once made (answers copy it)."""
    hours = schedule.working_hours
    busy = [
        {
            "start": _at(b.start, zone),
            "end": _at(b.end, zone),
            "status": b.status.value,
            "subject": b.subject,
            "location": b.location,
        }
        for b in schedule.busy
        if b.end > start and b.start < end
    ]
    return {
        "email": schedule.email,
        "status": schedule.status.value,
        "reason": schedule.reason,
        "time_zone": schedule.mailbox_time_zone,
        "working_hours": None
        if hours is None
        else {
            "days": list(hours.days),
            "start": hours.start.strftime("%H:%M"),
            "end": hours.end.strftime("%H:%M"),
            "time_zone": hours.time_zone_name,
        },
        "busy": orjson.Fragment(orjson.dumps(busy)),  # written once, copied into every answer as it is
    }


def _explanation(explanation: Explanation | None, zone: tzinfo) -> dict[str, Any] | None:
    if explanation is None:
        return None
    return {
        "summary": explanation.summary,
        "reasons": [
            {
                "kind": r.kind.value,
                "person": r.person,
                "pool": r.pool,
                "session": r.session,
                "periods": [{"start": _at(a, zone), "end": _at(b, zone)} for a, b in r.periods],
                "detail": r.detail,
            }
            for r in explanation.reasons
        ],
        "suggestions": [
            {
                "kind": s.kind.value,
                "subject": s.subject,
                "amount": s.amount,
                "session": s.session,
                "slots": s.slots,
                "detail": s.detail,
            }
            for s in explanation.suggestions
        ],
    }
