"""``/_control/graph/...``: the Graph controls over HTTP (JSON in, JSON out), one route table per topic.

Errors: 400 (bad input), 404 (unknown name), or the Graph error a control raised.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from devtools.cloud.common import GraphError
from devtools.cloud.graph import fault_controls as faults
from devtools.cloud.graph import mail_controls as mail
from devtools.cloud.graph import mail_store
from devtools.cloud.graph import outlook_controls as outlook
from devtools.cloud.graph.mail import message_json
from devtools.cloud.graph.timezones import parse_datetime_timezone
from devtools.cloud.state import Event, World

PREFIX = "/_control/graph"

# A control handler: the world, the request and its JSON body (empty when none was sent).
Handler = Callable[[World, Request, dict[str, Any]], Awaitable[Response]]
RouteTable = list[tuple[str, Handler, list[str]]]


def _summary(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "mailbox": event.mailbox_id,
        "subject": event.subject,
        "start": event.start.isoformat(),
        "end": event.end.isoformat(),
        "showAs": event.show_as,
        "isCancelled": event.is_cancelled,
        "organizerEventId": event.organizer_event_id,
        "iCalUId": event.ical_uid,
        "joinUrl": event.join_url,
        "attendees": [{"address": a.address, "response": a.response} for a in event.attendees],
    }


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the control body must be a JSON object")
    return value


def _when(value: Any, name: str) -> datetime:
    if value is None:
        raise ValueError(f"{name} is required")
    return parse_datetime_timezone(value, field_name=name)


def _done() -> Response:
    return Response(status_code=204)


# ---- events -------------------------------------------------------------------------------------
async def _list_mailbox_events(world: World, request: Request, body: dict[str, Any]) -> Response:
    user = outlook.resolve_user(world, request.path_params["mailbox"])
    events = sorted(world.mailbox_events(user.id), key=lambda e: (e.start, e.id))
    return JSONResponse({"value": [_summary(e) for e in events]})


async def _create(world: World, request: Request, body: dict[str, Any]) -> Response:
    return JSONResponse(_summary(outlook.add_event(world, request.path_params["mailbox"], body)), status_code=201)


async def _patch(world: World, request: Request, body: dict[str, Any]) -> Response:
    return JSONResponse(_summary(outlook.edit_event(world, request.path_params["event"], body)))


async def _move(world: World, request: Request, body: dict[str, Any]) -> Response:
    event = outlook.move_event(
        world, request.path_params["event"], _when(body.get("start"), "start"), _when(body.get("end"), "end")
    )
    return JSONResponse(_summary(event))


async def _remove(world: World, request: Request, body: dict[str, Any]) -> Response:
    outlook.delete_event(world, request.path_params["event"])
    return _done()


async def _answer(world: World, request: Request, body: dict[str, Any]) -> Response:
    proposed = body.get("proposedNewTime")
    start = end = None
    if proposed is not None:
        start, end = _when(proposed.get("start"), "start"), _when(proposed.get("end"), "end")
    outlook.respond(
        world,
        request.path_params["event"],
        str(body.get("attendee", "")),
        str(body.get("response", "")),
        proposed_start=start,
        proposed_end=end,
    )
    return JSONResponse(_summary(outlook.organizer_event(world, request.path_params["event"])))


EVENT_ROUTES: RouteTable = [
    ("/mailboxes/{mailbox}/events", _list_mailbox_events, ["GET"]),
    ("/mailboxes/{mailbox}/events", _create, ["POST"]),
    ("/events/{event}", _patch, ["PATCH"]),
    ("/events/{event}", _remove, ["DELETE"]),
    ("/events/{event}/move", _move, ["POST"]),
    ("/events/{event}/respond", _answer, ["POST"]),
]


# ---- mail ---------------------------------------------------------------------------------------
async def _list_messages(world: World, request: Request, body: dict[str, Any]) -> Response:
    found = mail.mailbox_messages(world, request.path_params["mailbox"], request.query_params.get("folder"))
    return JSONResponse(
        {
            "value": [
                {
                    **message_json(m),
                    "folder": m.folder,
                    "singleValueExtendedProperties": [{"id": k, "value": v} for k, v in m.extended_properties.items()],
                }
                for m in found
            ]
        }
    )


async def _reply(world: World, request: Request, body: dict[str, Any]) -> Response:
    answer = mail.reply_to_message(
        world,
        request.path_params["message"],
        sender=body.get("from"),
        name=str(body.get("name") or ""),
        body=str(body.get("body") or ""),
        content_type=str(body.get("contentType") or "text"),
    )
    return JSONResponse({**message_json(answer), "folder": answer.folder}, status_code=201)


async def _send_as(world: World, request: Request, body: dict[str, Any]) -> Response:
    mail.grant_send_as(world, request.path_params["mailbox"], str(body["user"]), request.method == "PUT")
    return _done()


async def _mail_limits(world: World, request: Request, body: dict[str, Any]) -> Response:
    if body.get("off"):
        mail.limit_mail(world, per_minute=None, recipients_per_day=None)
    else:
        per_minute = body.get("perMinute", mail_store.DOCUMENTED_PER_MINUTE)
        per_day = body.get("recipientsPerDay", mail_store.DOCUMENTED_RECIPIENTS_PER_DAY)
        mail.limit_mail(
            world,
            per_minute=None if per_minute is None else int(per_minute),
            recipients_per_day=None if per_day is None else int(per_day),
        )
    return _done()


async def _send_as_denials(world: World, request: Request, body: dict[str, Any]) -> Response:
    mail.deny_send_as(world, count=int(body.get("count", 1)), mailbox=body.get("mailbox"))
    return _done()


async def _mail_count(world: World, request: Request, body: dict[str, Any]) -> Response:
    return JSONResponse(mail.mail_counts(world, request.path_params["mailbox"]))


MAIL_ROUTES: RouteTable = [
    ("/mailboxes/{mailbox}/messages", _list_messages, ["GET"]),
    ("/mailboxes/{mailbox}/mail-counts", _mail_count, ["GET"]),
    ("/mailboxes/{mailbox}/send-as", _send_as, ["PUT", "DELETE"]),
    ("/messages/{message}/reply", _reply, ["POST"]),
    ("/switches/mail-limits", _mail_limits, ["POST"]),
    ("/switches/send-as-denied", _send_as_denials, ["POST"]),
]


# ---- failure switches ---------------------------------------------------------------------------
async def _throttle(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.throttle(
        world,
        count=int(body.get("count", 1)),
        retry_after=float(body.get("retryAfter", 2.0)),
        mailbox=body.get("mailbox"),
    )
    return _done()


async def _faults(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.fail(
        world, count=int(body.get("count", 1)), status=int(body.get("status", 503)), mailbox=body.get("mailbox")
    )
    return _done()


async def _meeting_drop(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.drop_online_meetings(
        world, count=int(body.get("count", 1)), mailbox=body.get("mailbox"), delete=bool(body.get("delete", False))
    )
    return _done()


async def _latency(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.set_latency(world, float(body.get("seconds", 0)))
    return _done()


async def _policy(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.block_mailbox(world, str(body["mailbox"]), bool(body.get("blocked", True)))
    return _done()


async def _on_premises(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.set_on_premises(world, str(body["mailbox"]), bool(body.get("onPremises", True)))
    return _done()


async def _concurrency(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.enforce_mailbox_concurrency(world, bool(body.get("enforce", True)))
    return _done()


async def _clear(world: World, request: Request, body: dict[str, Any]) -> Response:
    faults.clear_switches(world)
    return _done()


SWITCH_ROUTES: RouteTable = [
    ("/switches/throttle", _throttle, ["POST"]),
    ("/switches/faults", _faults, ["POST"]),
    ("/switches/latency", _latency, ["POST"]),
    ("/switches/meeting-drop", _meeting_drop, ["POST"]),
    ("/switches/access-policy", _policy, ["POST"]),
    ("/switches/on-premises", _on_premises, ["POST"]),
    ("/switches/mailbox-concurrency", _concurrency, ["POST"]),
    ("/switches", _clear, ["DELETE"]),
]


# ---- counters, delta tokens, groups -------------------------------------------------------------
async def _counts(world: World, request: Request, body: dict[str, Any]) -> Response:
    return JSONResponse(faults.request_counts(world))


async def _invalidate(world: World, request: Request, body: dict[str, Any]) -> Response:
    outlook.invalidate_delta_tokens(world, body.get("mailbox"), code=str(body.get("code", "resyncRequired")))
    return _done()


async def _requests_read(world: World, request: Request, body: dict[str, Any]) -> Response:
    params = request.query_params
    return JSONResponse(outlook.graph_requests(world, path=params.get("path"), caller=params.get("caller")))


async def _requests_reset(world: World, request: Request, body: dict[str, Any]) -> Response:
    outlook.reset_graph_requests(world)
    return _done()


async def _membership(world: World, request: Request, body: dict[str, Any]) -> Response:
    outlook.set_group_member(world, request.path_params["group"], str(body["user"]), request.method == "PUT")
    return _done()


DIRECTORY_AND_LOG_ROUTES: RouteTable = [
    ("/counts", _counts, ["GET"]),
    ("/delta/invalidate", _invalidate, ["POST"]),
    ("/requests", _requests_read, ["GET"]),
    ("/requests", _requests_reset, ["DELETE"]),
    ("/groups/{group}/members", _membership, ["PUT", "DELETE"]),
]


def _endpoint(world: World, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The handler as a Starlette endpoint: the body read as JSON, errors answered as JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            body = await _json(request)
            return await handler(world, request, body)
        except KeyError as err:
            return JSONResponse({"error": {"code": "NotFound", "message": str(err.args[0])}}, status_code=404)
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": {"code": "BadRequest", "message": str(err)}}, status_code=400)
        except GraphError as err:
            return err.response()

    return endpoint


def control_routes(world: World) -> list[BaseRoute]:
    """``/_control/graph/...``: the controls over HTTP. Errors: 400 (bad input), 404 (unknown name)."""
    tables = (MAIL_ROUTES, EVENT_ROUTES, SWITCH_ROUTES, DIRECTORY_AND_LOG_ROUTES)
    return [
        Route(PREFIX + path, _endpoint(world, handler), methods=methods)
        for table in tables
        for path, handler, methods in table
    ]
