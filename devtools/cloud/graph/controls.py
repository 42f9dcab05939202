"""Controls for the Graph side of the local cloud: what people do in Outlook, and the failure switches.

Each function works on a ``World`` directly (for tests in-process) and is also reachable over HTTP
under ``/_control/graph/...`` (for tests against a running cloud); the routes call these functions.
Every change to an event goes through ``store`` and so reaches ``World.emit_change``.

Mailboxes are named by user id, UPN or mail address; events by id (the organizer's event or an
attendee's copy, whichever is handy). Event bodies use Graph's JSON shape.
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
from devtools.cloud.graph import delegation, mail_store, store, switches
from devtools.cloud.graph.events import apply_meeting, parse_changes
from devtools.cloud.graph.mail import message_json
from devtools.cloud.graph.timezones import parse_datetime_timezone
from devtools.cloud.state import Attendee, Event, Group, MailAddress, Message, User, World, new_id

RESPONSES = {"accepted", "tentativelyAccepted", "declined"}


def resolve_user(world: World, key: str) -> User:
    """A user of any tenant by id, UPN or mail."""
    with world.lock:
        user = world.users.get(key.lower()) or world.users.get(key)
        if user is not None:
            return user
        for user in world.users.values():
            if key.lower() in (user.user_principal_name.lower(), user.mail.lower()):
                return user
    raise KeyError(f"no such user: {key}")


def _event(world: World, event_id: str) -> Event:
    with world.lock:
        event = world.events.get(event_id)
    if event is None:
        raise KeyError(f"no such event: {event_id}")
    return event


def _organizer_event(world: World, event_id: str) -> Event:
    event = store.organizer_of(world, _event(world, event_id))
    if event is None:
        raise KeyError(f"the organizer's event of {event_id} is gone")
    return event


# ---- what people do in Outlook ------------------------------------------------------------------
def add_event(world: World, mailbox: str, event: dict[str, Any]) -> Event:
    """Create an event in a mailbox as its owner would in Outlook (attendees get their copies)."""
    owner = resolve_user(world, mailbox)
    changes = parse_changes(event, existing=None)
    if "start" not in changes or "end" not in changes:
        raise ValueError("an event needs start and end")
    created = Event(id=new_id(), mailbox_id=owner.id, subject="", start=changes["start"], end=changes["end"])
    apply_meeting(None, changes)
    for name, value in changes.items():
        setattr(created, name, value)
    return store.add_event(world, created)


def edit_event(world: World, event_id: str, patch: dict[str, Any]) -> Event:
    """Change an event as its owner would (Graph JSON ``patch``); organizer edits reach attendees."""
    event = _event(world, event_id)
    changes = parse_changes(patch, existing=event)
    apply_meeting(event, changes)
    return store.update_event(world, event, changes)


def move_event(world: World, event_id: str, start: datetime, end: datetime) -> Event:
    """Drag an event to a new time in Outlook (aware datetimes)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    return store.update_event(world, _event(world, event_id), {"start": start, "end": end})


def delete_event(world: World, event_id: str) -> None:
    """Delete an event in Outlook; the organizer deleting a meeting cancels it for attendees."""
    store.delete_event(world, _event(world, event_id))


def respond(
    world: World,
    event_id: str,
    attendee: str,
    response: str,
    *,
    proposed_start: datetime | None = None,
    proposed_end: datetime | None = None,
) -> Attendee:
    """An attendee accepts, tentatively accepts or declines (optionally proposing a new time)."""
    if response not in RESPONSES:
        raise ValueError(f"response must be one of {sorted(RESPONSES)}")
    organizer_event = _organizer_event(world, event_id)
    return store.respond(
        world, organizer_event, attendee, response, proposed_start=proposed_start, proposed_end=proposed_end
    )


def accept(world: World, event_id: str, attendee: str) -> Attendee:
    return respond(world, event_id, attendee, "accepted")


def tentatively_accept(world: World, event_id: str, attendee: str) -> Attendee:
    return respond(world, event_id, attendee, "tentativelyAccepted")


def decline(world: World, event_id: str, attendee: str) -> Attendee:
    return respond(world, event_id, attendee, "declined")


def propose_new_time(
    world: World, event_id: str, attendee: str, start: datetime, end: datetime, *, response: str = "tentativelyAccepted"
) -> Attendee:
    """Outlook's "Propose new time": a tentative (or declined) answer carrying proposedNewTime."""
    if response not in ("tentativelyAccepted", "declined"):
        raise ValueError("a proposal goes with tentativelyAccepted or declined")
    return respond(world, event_id, attendee, response, proposed_start=start, proposed_end=end)


def resolve_group(world: World, key: str) -> Group:
    """A group of any tenant by id or mail, or by display name when only one group has it."""
    with world.lock:
        group = world.groups.get(key.lower())
        if group is not None:
            return group
        found = [g for g in world.groups.values() if key.lower() in ((g.mail or "").lower(), g.display_name.lower())]
    if len(found) == 1:
        return found[0]
    raise KeyError(f"no such group (or more than one): {key}")


def set_group_member(world: World, group: str, user: str, member: bool = True) -> None:
    """An admin adds a user to a group or removes them; mailbox access through the group follows at once."""
    delegation.set_group_member(world, resolve_group(world, group), resolve_user(world, user), member)


def invalidate_delta_tokens(world: World, mailbox: str | None = None, *, code: str = "resyncRequired") -> None:
    """Delta tokens issued so far (for one mailbox, or all) expire: from now on they answer 410 Gone with
    ``code`` (``resyncRequired`` or ``syncStateNotFound``) and a Location that starts a full sync."""
    store.invalidate_delta_tokens(world, resolve_user(world, mailbox).id if mailbox else None, code)


expire_delta_tokens = invalidate_delta_tokens


def graph_requests(world: World, *, path: str | None = None, caller: str | None = None) -> dict[str, Any]:
    """Graph requests answered since the last reset, one row per method, path, caller and whether the
    request came inside a ``$batch``. ``path`` keeps rows whose path contains it (case-insensitive);
    ``caller`` those whose client id or user id equals it. ``total`` counts every row's requests,
    ``roundTrips`` only those that were HTTP requests of their own (a ``$batch`` counts once there)."""
    rows = []
    for (method, where, tenant, client, user, batched), count in store.request_log(world):
        if path is not None and path.lower() not in where.lower():
            continue
        if caller is not None and caller not in (client, user):
            continue
        rows.append(
            {
                "method": method,
                "path": where,
                "tenantId": tenant or None,
                "clientId": client or None,
                "userId": user or None,
                "batched": batched,
                "count": count,
            }
        )
    return {
        "total": sum(r["count"] for r in rows),
        "roundTrips": sum(r["count"] for r in rows if not r["batched"]),
        "requests": rows,
    }


def reset_graph_requests(world: World) -> None:
    """Forget the Graph requests counted so far (``graph_requests`` starts again from zero)."""
    store.reset_request_log(world)


# ---- what people do with mail ------------------------------------------------------------------
def mailbox_messages(world: World, mailbox: str, folder: str | None = None) -> list[Message]:
    """The messages of a mailbox (one folder: inbox, sentitems, outbox; None: all but the outbox), newest first."""
    owner = resolve_user(world, mailbox)
    if folder == "outbox":
        with world.lock:
            found = [m for m in world.messages.values() if m.mailbox_id == owner.id and m.folder == "outbox"]
    else:
        found = mail_store.folder_messages(world, owner.id, folder)
    return sorted(found, key=lambda m: (m.received, m.id), reverse=True)


def reply_to_message(
    world: World,
    message_id: str,
    *,
    sender: str | None = None,
    name: str = "",
    body: str = "",
    content_type: str = "text",
) -> Message:
    """Someone (by default the message's first recipient, say a candidate) replies to a message: the reply lands
    in the original sender's Inbox in the same conversation (same conversationId)."""
    address = MailAddress(sender, name) if sender else None
    return mail_store.reply(world, message_id, sender=address, body=body, content_type=content_type)


def grant_send_as(world: World, mailbox: str, user: str, granted: bool = True) -> None:
    """Exchange's Send As on ``mailbox`` for ``user`` (Add-RecipientPermission), or its removal."""
    target, holder = resolve_user(world, mailbox), resolve_user(world, user)
    with world.lock:
        if granted:
            target.send_as.add(holder.id)
        else:
            target.send_as.discard(holder.id)


def limit_mail(
    world: World,
    *,
    per_minute: int | None = mail_store.DOCUMENTED_PER_MINUTE,
    recipients_per_day: int | None = mail_store.DOCUMENTED_RECIPIENTS_PER_DAY,
) -> None:
    """Enforce Exchange Online's sending limits per mailbox (documented: 30 messages a minute, 10,000
    recipients a day); both ``None``: off again."""
    mail_store.set_limits(world, per_minute=per_minute, recipients_per_day=recipients_per_day)


def deny_send_as(world: World, *, count: int, mailbox: str | None = None) -> None:
    """The next ``count`` sendMail requests (from one mailbox, or any) answer 403 ErrorSendAsDenied."""
    switches.set_send_as_denied(world, count=count, mailbox_id=resolve_user(world, mailbox).id if mailbox else None)


def mail_counts(world: World, mailbox: str) -> dict[str, int]:
    """Messages the mailbox submitted, how many the message rate held back, how many the recipient rate refused."""
    return mail_store.counts(world, resolve_user(world, mailbox).id)


# Failure switches, re-exported so tests need one import.
def throttle(world: World, *, count: int, retry_after: float = 2.0, mailbox: str | None = None) -> None:
    switches.set_throttle(
        world, count=count, retry_after=retry_after, mailbox_id=resolve_user(world, mailbox).id if mailbox else None
    )


def fail(world: World, *, count: int, status: int = 503, mailbox: str | None = None) -> None:
    switches.set_fault(
        world, count=count, status=status, mailbox_id=resolve_user(world, mailbox).id if mailbox else None
    )


def lose_answers(world: World, *, count: int, status: int = 504) -> None:
    """The next ``count`` POSTs that succeed are carried out but answered ``status``, as when a gateway
    times out after Graph wrote: a client that retries must not write twice."""
    switches.set_lost_answers(world, count=count, status=status)


def drop_online_meetings(world: World, *, count: int, mailbox: str | None = None, delete: bool = False) -> None:
    """The next ``count`` Graph PATCHes that move an online meeting drop it, as users report Graph doing.

    See ``events.apply_meeting``: ``delete=False`` keeps the Teams meeting, so restoring it (PATCH
    ``isOnlineMeeting: true``) brings back the same join URL; ``delete=True`` makes the restore a new one.
    """
    switches.set_meeting_drop(
        world, count=count, delete=delete, mailbox_id=resolve_user(world, mailbox).id if mailbox else None
    )


def set_latency(world: World, seconds: float) -> None:
    switches.set_latency(world, seconds)


def block_mailbox(world: World, mailbox: str, blocked: bool = True) -> None:
    """An application access policy keeps apps out of (or lets them back into) this mailbox."""
    switches.set_access_policy_block(world, resolve_user(world, mailbox).id, blocked)


def set_on_premises(world: World, mailbox: str, on_premises: bool = True) -> None:
    switches.set_mailbox_on_premises(world, resolve_user(world, mailbox).id, on_premises)


def enforce_mailbox_concurrency(world: World, enforce: bool = True) -> None:
    switches.set_mailbox_concurrency(world, enforce)


def clear_switches(world: World) -> None:
    switches.clear(world)


def request_counts(world: World) -> dict[str, float]:
    """Graph requests answered since the cloud started (or its world was reset), the 429s among them,
    and the seconds mailbox slots were held (summed over requests: divided by the time elapsed, how
    many of a mailbox's four slots were in use on average)."""
    state = store.graph_state(world)
    with world.lock:
        return {"answered": state.answered, "throttled": state.throttled, "slot_seconds": state.slot_seconds}


# ---- HTTP --------------------------------------------------------------------------------------
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


def control_routes(world: World) -> list[BaseRoute]:
    """``/_control/graph/...``: the functions above over HTTP. Errors: 400 (bad input), 404 (unknown name)."""

    def wrap(fn: Callable[[Request, dict[str, Any]], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await _json(request)
                return await fn(request, body)
            except KeyError as err:
                return JSONResponse({"error": {"code": "NotFound", "message": str(err.args[0])}}, status_code=404)
            except (ValueError, TypeError) as err:
                return JSONResponse({"error": {"code": "BadRequest", "message": str(err)}}, status_code=400)
            except GraphError as err:
                return err.response()

        return endpoint

    def when(value: Any, name: str) -> datetime:
        if value is None:
            raise ValueError(f"{name} is required")
        return parse_datetime_timezone(value, field_name=name)

    async def list_mailbox_events(request: Request, body: dict[str, Any]) -> Response:
        user = resolve_user(world, request.path_params["mailbox"])
        events = sorted(world.mailbox_events(user.id), key=lambda e: (e.start, e.id))
        return JSONResponse({"value": [_summary(e) for e in events]})

    async def create(request: Request, body: dict[str, Any]) -> Response:
        return JSONResponse(_summary(add_event(world, request.path_params["mailbox"], body)), status_code=201)

    async def patch(request: Request, body: dict[str, Any]) -> Response:
        return JSONResponse(_summary(edit_event(world, request.path_params["event"], body)))

    async def move(request: Request, body: dict[str, Any]) -> Response:
        event = move_event(
            world, request.path_params["event"], when(body.get("start"), "start"), when(body.get("end"), "end")
        )
        return JSONResponse(_summary(event))

    async def remove(request: Request, body: dict[str, Any]) -> Response:
        delete_event(world, request.path_params["event"])
        return Response(status_code=204)

    async def answer(request: Request, body: dict[str, Any]) -> Response:
        proposed = body.get("proposedNewTime")
        start = end = None
        if proposed is not None:
            start, end = when(proposed.get("start"), "start"), when(proposed.get("end"), "end")
        respond(
            world,
            request.path_params["event"],
            str(body.get("attendee", "")),
            str(body.get("response", "")),
            proposed_start=start,
            proposed_end=end,
        )
        return JSONResponse(_summary(_organizer_event(world, request.path_params["event"])))

    async def set_throttle(request: Request, body: dict[str, Any]) -> Response:
        throttle(
            world,
            count=int(body.get("count", 1)),
            retry_after=float(body.get("retryAfter", 2.0)),
            mailbox=body.get("mailbox"),
        )
        return Response(status_code=204)

    async def set_faults(request: Request, body: dict[str, Any]) -> Response:
        fail(world, count=int(body.get("count", 1)), status=int(body.get("status", 503)), mailbox=body.get("mailbox"))
        return Response(status_code=204)

    async def meeting_drop(request: Request, body: dict[str, Any]) -> Response:
        drop_online_meetings(
            world, count=int(body.get("count", 1)), mailbox=body.get("mailbox"), delete=bool(body.get("delete", False))
        )
        return Response(status_code=204)

    async def latency(request: Request, body: dict[str, Any]) -> Response:
        set_latency(world, float(body.get("seconds", 0)))
        return Response(status_code=204)

    async def policy(request: Request, body: dict[str, Any]) -> Response:
        block_mailbox(world, str(body["mailbox"]), bool(body.get("blocked", True)))
        return Response(status_code=204)

    async def on_premises(request: Request, body: dict[str, Any]) -> Response:
        set_on_premises(world, str(body["mailbox"]), bool(body.get("onPremises", True)))
        return Response(status_code=204)

    async def concurrency(request: Request, body: dict[str, Any]) -> Response:
        enforce_mailbox_concurrency(world, bool(body.get("enforce", True)))
        return Response(status_code=204)

    async def membership(request: Request, body: dict[str, Any]) -> Response:
        set_group_member(world, request.path_params["group"], str(body["user"]), request.method == "PUT")
        return Response(status_code=204)

    async def counts(request: Request, body: dict[str, Any]) -> Response:
        return JSONResponse(request_counts(world))

    async def clear(request: Request, body: dict[str, Any]) -> Response:
        clear_switches(world)
        return Response(status_code=204)

    async def invalidate(request: Request, body: dict[str, Any]) -> Response:
        invalidate_delta_tokens(world, body.get("mailbox"), code=str(body.get("code", "resyncRequired")))
        return Response(status_code=204)

    async def requests_read(request: Request, body: dict[str, Any]) -> Response:
        params = request.query_params
        return JSONResponse(graph_requests(world, path=params.get("path"), caller=params.get("caller")))

    async def requests_reset(request: Request, body: dict[str, Any]) -> Response:
        reset_graph_requests(world)
        return Response(status_code=204)

    async def list_messages(request: Request, body: dict[str, Any]) -> Response:
        found = mailbox_messages(world, request.path_params["mailbox"], request.query_params.get("folder"))
        return JSONResponse(
            {
                "value": [
                    {
                        **message_json(m),
                        "folder": m.folder,
                        "singleValueExtendedProperties": [
                            {"id": k, "value": v} for k, v in m.extended_properties.items()
                        ],
                    }
                    for m in found
                ]
            }
        )

    async def reply(request: Request, body: dict[str, Any]) -> Response:
        answer = reply_to_message(
            world,
            request.path_params["message"],
            sender=body.get("from"),
            name=str(body.get("name") or ""),
            body=str(body.get("body") or ""),
            content_type=str(body.get("contentType") or "text"),
        )
        return JSONResponse({**message_json(answer), "folder": answer.folder}, status_code=201)

    async def send_as(request: Request, body: dict[str, Any]) -> Response:
        grant_send_as(world, request.path_params["mailbox"], str(body["user"]), request.method == "PUT")
        return Response(status_code=204)

    async def mail_limits(request: Request, body: dict[str, Any]) -> Response:
        if body.get("off"):
            limit_mail(world, per_minute=None, recipients_per_day=None)
        else:
            per_minute = body.get("perMinute", mail_store.DOCUMENTED_PER_MINUTE)
            per_day = body.get("recipientsPerDay", mail_store.DOCUMENTED_RECIPIENTS_PER_DAY)
            limit_mail(
                world,
                per_minute=None if per_minute is None else int(per_minute),
                recipients_per_day=None if per_day is None else int(per_day),
            )
        return Response(status_code=204)

    async def send_as_denials(request: Request, body: dict[str, Any]) -> Response:
        deny_send_as(world, count=int(body.get("count", 1)), mailbox=body.get("mailbox"))
        return Response(status_code=204)

    async def mail_count(request: Request, body: dict[str, Any]) -> Response:
        return JSONResponse(mail_counts(world, request.path_params["mailbox"]))

    prefix = "/_control/graph"
    return [
        Route(prefix + "/mailboxes/{mailbox}/messages", wrap(list_messages), methods=["GET"]),
        Route(prefix + "/mailboxes/{mailbox}/mail-counts", wrap(mail_count), methods=["GET"]),
        Route(prefix + "/mailboxes/{mailbox}/send-as", wrap(send_as), methods=["PUT", "DELETE"]),
        Route(prefix + "/messages/{message}/reply", wrap(reply), methods=["POST"]),
        Route(prefix + "/switches/mail-limits", wrap(mail_limits), methods=["POST"]),
        Route(prefix + "/switches/send-as-denied", wrap(send_as_denials), methods=["POST"]),
        Route(prefix + "/mailboxes/{mailbox}/events", wrap(list_mailbox_events), methods=["GET"]),
        Route(prefix + "/mailboxes/{mailbox}/events", wrap(create), methods=["POST"]),
        Route(prefix + "/events/{event}", wrap(patch), methods=["PATCH"]),
        Route(prefix + "/events/{event}", wrap(remove), methods=["DELETE"]),
        Route(prefix + "/events/{event}/move", wrap(move), methods=["POST"]),
        Route(prefix + "/events/{event}/respond", wrap(answer), methods=["POST"]),
        Route(prefix + "/switches/throttle", wrap(set_throttle), methods=["POST"]),
        Route(prefix + "/switches/faults", wrap(set_faults), methods=["POST"]),
        Route(prefix + "/switches/latency", wrap(latency), methods=["POST"]),
        Route(prefix + "/switches/meeting-drop", wrap(meeting_drop), methods=["POST"]),
        Route(prefix + "/switches/access-policy", wrap(policy), methods=["POST"]),
        Route(prefix + "/switches/on-premises", wrap(on_premises), methods=["POST"]),
        Route(prefix + "/switches/mailbox-concurrency", wrap(concurrency), methods=["POST"]),
        Route(prefix + "/switches", wrap(clear), methods=["DELETE"]),
        Route(prefix + "/counts", wrap(counts), methods=["GET"]),
        Route(prefix + "/delta/invalidate", wrap(invalidate), methods=["POST"]),
        Route(prefix + "/requests", wrap(requests_read), methods=["GET"]),
        Route(prefix + "/requests", wrap(requests_reset), methods=["DELETE"]),
        Route(prefix + "/groups/{group}/members", wrap(membership), methods=["PUT", "DELETE"]),
    ]
