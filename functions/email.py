"""Candidate email: the tenant's templates (read, save, preview), a booking's email trail and on-demand sends,
and the email timer (EMAIL_SCHEDULE) that asks for reminders and sends what waits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._auth import requires_session
from functions._contract import read_body
from functions._http import http_endpoint, json_response
from functions._views import email_json, email_template_json, trail_entry_json
from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.identity.guard import RequestContext

bp = func.Blueprint()

MAX_TEMPLATE_REQUEST_BYTES = 64 * 1024


@bp.function_name("email_template_get")
@bp.route(route="email-templates/{name}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def email_template_get(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.email.editing import get_template

    return json_response(email_template_json(get_template(get_container(), ctx.user, req.route_params.get("name", ""))))


@bp.function_name("email_template_put")
@bp.route(route="email-templates/{name}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def email_template_put(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.email.editing import save_template

    body = read_body(req, "email_template_put", max_bytes=MAX_TEMPLATE_REQUEST_BYTES)
    saved = save_template(get_container(), ctx.user, req.route_params.get("name", ""), body)
    return json_response(email_template_json(saved))


@bp.function_name("email_template_preview")
@bp.route(route="email-templates/{name}/preview", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def email_template_preview(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.listing import get_booking
    from shared.booking.request import booking_id
    from shared.email.editing import preview_template

    deps = get_container()
    body = read_body(req, "email_template_preview", max_bytes=MAX_TEMPLATE_REQUEST_BYTES)
    booking = get_booking(deps, ctx, booking_id(body["booking_id"]))
    rendered = preview_template(deps, ctx.user, req.route_params.get("name", ""), booking, body)
    return json_response({"subject": rendered.subject, "html": rendered.html})


@bp.function_name("booking_emails")
@bp.route(route="bookings/{booking_id}/emails", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_emails(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.listing import get_booking
    from shared.booking.request import booking_id
    from shared.email.trail import booking_trail

    deps = get_container()
    booking = get_booking(deps, ctx, booking_id(req.route_params.get("booking_id", "")))
    entries, replies_read = booking_trail(deps, ctx.user, booking)
    return json_response({"emails": [trail_entry_json(e) for e in entries], "replies_read": replies_read})


@bp.function_name("booking_email_send")
@bp.route(route="bookings/{booking_id}/emails", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_email_send(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.listing import get_booking
    from shared.booking.request import booking_id, idempotency_key
    from shared.email.triggers import send_on_demand

    deps = get_container()
    key = idempotency_key(req.headers.get("idempotency-key"))
    template = read_body(req, "booking_email_send")["template"]
    booking = get_booking(deps, ctx, booking_id(req.route_params.get("booking_id", "")))
    record = send_on_demand(deps, ctx.user, booking, template, key)
    return json_response(email_json(record), status=200 if record.status.value == "sent" else 202)


@bp.function_name("email_timer")
@bp.timer_trigger(schedule="%EMAIL_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def email_timer(timer: func.TimerRequest) -> None:
    from shared.email.sending import email_round  # imported on first call: cold start

    email_round(get_container())
