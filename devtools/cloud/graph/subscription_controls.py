"""``/_control/subscriptions/...`` and ``/_control/clock``: inspect subscriptions and deliveries, fire lifecycle
events, expire subscriptions, deliver or flush what is queued, and move the cloud's clock."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from devtools.cloud import notify
from devtools.cloud.state import World

ControlHandler = Callable[[World, Request], Awaitable[Response]]


async def _control_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _no_such_subscription() -> Response:
    return JSONResponse({"error": "no such subscription"}, status_code=404)


# ---- inspecting ----------------------------------------------------------------------------------
def _control_json(world: World, sub: notify.Subscription) -> dict[str, Any]:
    """The documented resource with clientState hidden, plus what only the cloud knows about it."""
    body = sub.to_json()
    body["clientState"] = None if sub.client_state is None else "***"
    body.update(
        tenantId=sub.tenant_id,
        mailboxId=sub.mailbox_id,
        reauthorizationRequiredAt=(
            notify.format_datetime(sub.reauthorization_required_at) if sub.reauthorization_required_at else None
        ),
        paused=sub.paused(world, world.now()),
    )
    return body


async def _list_subscriptions(world: World, request: Request) -> Response:
    with world.lock:
        value = [_control_json(world, s) for s in notify.state(world).subscriptions.values()]
    return JSONResponse({"value": value})


async def _deliveries(world: World, request: Request) -> Response:
    return JSONResponse(
        {"value": [r.to_json() for r in notify.delivery_log(world)], "pending": notify.pending_count(world)}
    )


async def _clear_deliveries(world: World, request: Request) -> Response:
    notify.clear_delivery_log(world)
    return Response(status_code=204)


# ---- delivering ----------------------------------------------------------------------------------
async def _flush(world: World, request: Request) -> Response:
    body = await _control_body(request)
    timeout = float(body.get("timeout", 10.0))
    try:
        records = await notify.flush_async(world, timeout)
    except TimeoutError as err:
        return JSONResponse({"error": str(err), "pending": notify.pending_count(world)}, status_code=504)
    return JSONResponse({"value": [r.to_json() for r in records]})


async def _deliver(world: World, request: Request) -> Response:
    records = await notify.deliver_now_async(world)
    return JSONResponse({"value": [r.to_json() for r in records], "pending": notify.pending_count(world)})


async def _clock(world: World, request: Request) -> Response:
    body = await _control_body(request)
    try:
        now = notify.advance_clock(world, float(body.get("advanceSeconds", 0)))
    except (TypeError, ValueError) as err:
        return JSONResponse({"error": str(err)}, status_code=400)
    return JSONResponse({"now": notify.format_datetime(now)})


# ---- lifecycle -----------------------------------------------------------------------------------
async def _lifecycle(world: World, request: Request) -> Response:
    body = await _control_body(request)
    event = body.get("lifecycleEvent")
    if event not in notify.LIFECYCLE_EVENTS:
        return JSONResponse(
            {"error": f"lifecycleEvent must be one of {', '.join(notify.LIFECYCLE_EVENTS)}"}, status_code=400
        )
    try:
        queued = notify.fire_lifecycle_event(world, request.path_params["id"], str(event))
    except KeyError:
        return _no_such_subscription()
    return JSONResponse({"queued": queued}, status_code=202)


async def _expire(world: World, request: Request) -> Response:
    try:
        notify.expire_subscription(world, request.path_params["id"])
    except KeyError:
        return _no_such_subscription()
    return Response(status_code=204)


_BASE = "/_control/subscriptions"
_ROUTES: list[tuple[str, ControlHandler, str]] = [
    # The cloud's clock (World.now): notification retries, the retry window and subscription expiry.
    ("/_control/clock/advance", _clock, "POST"),
    (f"{_BASE}/deliver", _deliver, "POST"),
    (_BASE, _list_subscriptions, "GET"),
    (f"{_BASE}/deliveries", _deliveries, "GET"),
    (f"{_BASE}/deliveries", _clear_deliveries, "DELETE"),
    (f"{_BASE}/flush", _flush, "POST"),
    (f"{_BASE}/{{id}}/lifecycle", _lifecycle, "POST"),
    (f"{_BASE}/{{id}}/expire", _expire, "POST"),
]


def _bind(world: World, handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(world, request)

    return endpoint


def control_routes(world: World) -> list[BaseRoute]:
    """``/_control/subscriptions/...``: inspect subscriptions and deliveries, fire lifecycle events, flush."""
    notify.attach(world)
    return [Route(path, _bind(world, handler), methods=[method]) for path, handler, method in _ROUTES]
