"""Candidate email: the tenant's templates (read, save, preview), a booking's email trail and on-demand sends,
and the email timer (EMAIL_SCHEDULE) that asks for reminders and sends what waits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions._auth import requires_session
from functions._http import http_endpoint, json_response, read_json
from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.email.trail import TrailEntry
    from shared.identity.guard import RequestContext
    from shared.models import EmailRecord, EmailTemplate

bp = func.Blueprint()

MAX_TEMPLATE_REQUEST_BYTES = 64 * 1024


def template_view(template: EmailTemplate) -> dict[str, Any]:
    return {
        "name": template.name,
        "subject": template.subject,
        "html": template.html,
        "is_default": template.updated_by is None,
        "updated_at": template.updated_at.isoformat() if template.updated_at else None,
        "updated_by": template.updated_by,
    }


def email_view(record: EmailRecord) -> dict[str, Any]:
    """A message we send, as the booking and the trail show it."""
    return {
        "template": record.template,
        "status": record.status.value,
        "to": record.to,
        "subject": record.subject or None,
        "sent_at": record.sent_at.isoformat() if record.sent_at else None,
        "not_before": record.not_before.isoformat() if record.not_before and record.status.value == "queued" else None,
        "error": record.error,
    }


def trail_view(entry: TrailEntry) -> dict[str, Any]:
    return {
        "direction": entry.direction,
        "subject": entry.subject,
        "from": entry.sender,
        "to": list(entry.to),
        "at": entry.at.isoformat() if entry.at else None,
        "preview": entry.preview,
        "template": entry.template,
        "status": entry.status,
        "error": entry.error,
    }


@bp.function_name("email_template_get")
@bp.route(route="email-templates/{name}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def email_template_get(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.email.editing import get_template

    return json_response(template_view(get_template(get_container(), ctx.user, req.route_params.get("name", ""))))


@bp.function_name("email_template_put")
@bp.route(route="email-templates/{name}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def email_template_put(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.email.editing import save_template

    body = read_json(req, max_bytes=MAX_TEMPLATE_REQUEST_BYTES)
    saved = save_template(get_container(), ctx.user, req.route_params.get("name", ""), body)
    return json_response(template_view(saved))


@bp.function_name("email_template_preview")
@bp.route(route="email-templates/{name}/preview", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def email_template_preview(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.listing import get_booking
    from shared.booking.request import booking_id
    from shared.email.editing import preview_template

    deps = get_container()
    body = read_json(req, max_bytes=MAX_TEMPLATE_REQUEST_BYTES)
    raw_id = body.get("booking_id")
    booking = get_booking(deps, ctx, booking_id(raw_id if isinstance(raw_id, str) else ""))
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
    return json_response({"emails": [trail_view(e) for e in entries], "replies_read": replies_read})


@bp.function_name("booking_email_send")
@bp.route(route="bookings/{booking_id}/emails", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def booking_email_send(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.booking.listing import get_booking
    from shared.booking.request import booking_id, idempotency_key
    from shared.email.triggers import send_on_demand
    from shared.errors import InvalidRequest

    deps = get_container()
    key = idempotency_key(req.headers.get("idempotency-key"))
    body = read_json(req)
    template = body.get("template")
    if not isinstance(template, str) or set(body) - {"template"}:
        raise InvalidRequest('Send {"template": NAME} and nothing else.', field="template")
    booking = get_booking(deps, ctx, booking_id(req.route_params.get("booking_id", "")))
    record = send_on_demand(deps, ctx.user, booking, template, key)
    return json_response(email_view(record), status=200 if record.status.value == "sent" else 202)


@bp.function_name("email_timer")
@bp.timer_trigger(schedule="%EMAIL_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def email_timer(timer: func.TimerRequest) -> None:
    from shared.email.sending import email_round  # imported on first call: cold start

    email_round(get_container())
