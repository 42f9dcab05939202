"""Bookings under the two-token rule: create (with an Idempotency-Key), read, move or change, cancel, list."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions._auth import requires_session
from functions._contract import read_body
from functions._http import http_endpoint, json_response
from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.identity.guard import RequestContext
    from shared.models import Booking, EmailRecord

bp = func.Blueprint()

# The booking contract allows a body field of 64 KiB; the whole request gets room for the rest.
MAX_BOOKING_REQUEST_BYTES = 128 * 1024


def view(booking: Booking) -> dict[str, Any]:
    """The booking as the API shows it: each attendee with their latest response."""

    def at(moment: Any) -> str | None:
        return moment.isoformat() if moment is not None else None

    # The interview's times as the request that made it wrote them (its UTC offset), in every answer.
    shown = timezone(timedelta(minutes=booking.display_offset_minutes or 0))

    def local(moment: datetime) -> str:
        return moment.astimezone(shown).isoformat()

    return {
        "id": booking.booking_id,
        "status": booking.status.value,
        "start": local(booking.start),
        "end": local(booking.end),
        "subject": booking.subject,
        "location": booking.location,
        "organizer": booking.mailbox,
        "calendar": booking.calendar,
        "calendar_id": booking.calendar_id,
        "event_id": booking.event_id,
        "ical_uid": booking.ical_uid,
        "join_url": booking.join_url,
        "attendees": [
            {
                "email": r.email,
                "type": "candidate" if r.email == booking.candidate_email else r.type,
                "response": r.response.value,
                "responded_at": at(r.responded_at),
                **(
                    {
                        "proposed_start": local(r.proposed_start),
                        "proposed_end": local(r.proposed_end) if r.proposed_end is not None else None,
                    }
                    if r.proposed_start is not None
                    else {}
                ),
            }
            for r in booking.responses
        ],
        "warnings": list(booking.warnings),
        "history": [
            {"at": h.at.isoformat(), "actor": h.actor, "action": h.action, "detail": h.detail} for h in booking.history
        ],
        "created_at": at(booking.created_at),
        "updated_at": at(booking.updated_at),
        "notify_candidate": booking.notify_candidate,
        "etag": booking.etag,
    }


def _answer(booking: Booking, *, status: int = 200) -> func.HttpResponse:
    return json_response(view(booking), status=status, headers={"ETag": booking.etag or ""})


def _with_email(
    deps: Container, ctx: RequestContext, booking: Booking, email: EmailRecord | None, *, status: int = 200
) -> func.HttpResponse:
    """The booking as it stands after its email (a sent message is in its history, so its ETag moved), with
    the message the change asked for."""
    from functions._views import email_json
    from shared.booking.listing import get_booking

    current = get_booking(deps, ctx, booking.booking_id) if email is not None else booking
    body = view(current)
    body["email"] = email_json(email) if email is not None else None
    return json_response(body, status=status, headers={"ETag": current.etag or ""})


@bp.function_name("booking_create")
@bp.route(route="bookings", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_create(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.create import create_booking
    from shared.booking.request import idempotency_key, parse_booking_request

    deps = get_container()
    key = idempotency_key(req.headers.get("idempotency-key"))
    request = parse_booking_request(
        read_body(req, "booking_create", max_bytes=MAX_BOOKING_REQUEST_BYTES), now=deps.clock.now()
    )
    if request.notify_candidate:
        from shared.email.sending import require_automation

        require_automation(deps, ctx.user)  # 403 feature_not_enabled or 401 reauth_required: nothing booked
    outcome = create_booking(deps, ctx, request, key)
    if not request.notify_candidate:
        return _answer(outcome.booking, status=201 if outcome.created else 200)
    from shared.email.triggers import on_booked

    email = on_booked(deps, outcome.booking)
    return _with_email(deps, ctx, outcome.booking, email, status=201 if outcome.created else 200)


@bp.function_name("booking_list")
@bp.route(route="bookings", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_list(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.listing import list_bookings
    from shared.booking.request import continuation_token, parse_booking_query

    deps = get_container()
    page = list_bookings(deps, ctx, parse_booking_query(dict(req.params), deps.clock.now()))
    return json_response({"bookings": [view(b) for b in page.bookings], "continuation": continuation_token(page.after)})


@bp.function_name("booking_get")
@bp.route(route="bookings/{booking_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_get(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.listing import get_booking
    from shared.booking.request import booking_id

    return _answer(get_booking(get_container(), ctx, booking_id(req.route_params.get("booking_id", ""))))


@bp.function_name("booking_update")
@bp.route(route="bookings/{booking_id}", methods=["PATCH"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_update(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.change import update_booking
    from shared.booking.listing import get_booking
    from shared.booking.request import booking_id, if_match, parse_booking_change
    from shared.errors import PreconditionRequired

    deps = get_container()
    bid = booking_id(req.route_params.get("booking_id", ""))
    etag = if_match(req.headers.get("if-match"))
    if etag is None:  # before anything else: a change that names no version is never applied
        raise PreconditionRequired("Send If-Match with the booking's ETag (from GET /api/bookings/{id}).")
    body = read_body(req, "booking_update", max_bytes=MAX_BOOKING_REQUEST_BYTES)
    current = get_booking(deps, ctx, bid)
    change = parse_booking_change(body, now=deps.clock.now(), current=(current.start, current.end))
    changed = update_booking(deps, ctx, bid, etag, change)
    if not changed.notify_candidate:
        return _answer(changed)
    from shared.email.triggers import on_changed

    return _with_email(deps, ctx, changed, on_changed(deps, current, changed))


@bp.function_name("booking_cancel")
@bp.route(route="bookings/{booking_id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_cancel(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.change import cancel_booking
    from shared.booking.request import booking_id, cancel_message, if_match

    deps = get_container()
    bid = booking_id(req.route_params.get("booking_id", ""))
    message = cancel_message(read_body(req, "booking_cancel") if req.get_body() else {}, req.params.get("message"))
    cancelled = cancel_booking(deps, ctx, bid, message, etag=if_match(req.headers.get("if-match")))
    if not cancelled.notify_candidate:
        return _answer(cancelled)
    from shared.email.triggers import on_cancelled

    return _with_email(deps, ctx, cancelled, on_cancelled(deps, cancelled))
