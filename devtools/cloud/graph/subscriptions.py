"""Graph v1.0 ``/subscriptions`` for Outlook events.

Create validates both notification endpoints with Graph's handshake (``validation``) before storing
anything, then change and lifecycle notifications flow through :mod:`devtools.cloud.notify`. What a
request must satisfy is in ``subscription_rules``; the controls that drive notifications are in
``subscription_controls`` (``control_routes`` is importable from here too).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from devtools.cloud import notify
from devtools.cloud.common import Caller, GraphError
from devtools.cloud.graph import odata
from devtools.cloud.graph.subscription_controls import control_routes
from devtools.cloud.graph.subscription_rules import (
    PATCHABLE,
    authorize_mailbox,
    check_notification_url,
    check_quota,
    creator_id,
    find,
    invalid,
    json_body,
    parse_change_type,
    parse_client_state,
    parse_expiration,
    parse_tls_version,
    resolve_mailbox,
    visible_to,
)
from devtools.cloud.graph.validation import (
    VALIDATION_MISMATCH,
    VALIDATION_NOT_OK,
    VALIDATION_TIMEOUT,
    validate_endpoint,
    validation_client,
)
from devtools.cloud.state import World

__all__ = [
    "VALIDATION_MISMATCH",
    "VALIDATION_NOT_OK",
    "VALIDATION_TIMEOUT",
    "Authenticator",
    "control_routes",
    "routes",
    "validate_endpoint",
    "validation_client",
]

logger = logging.getLogger(__name__)

Authenticator = Callable[[World, Request], Caller]
Handler = Callable[[World, Authenticator, Request], Awaitable[Response]]


def _default_authenticate(world: World, request: Request) -> Caller:
    from devtools.cloud import tokens

    return tokens.authenticate(world, request)


def _entity(request: Request, payload: dict[str, Any], status_code: int = 200) -> Response:
    return JSONResponse(
        {"@odata.context": odata.context_url(request, "subscriptions/$entity"), **payload}, status_code=status_code
    )


# ---- create ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Checked:
    """A create request that passed every check but the handshake."""

    change_type: str
    notification_url: str
    lifecycle_url: str | None
    mailbox_id: str
    expiration: datetime
    client_state: str | None
    tls: str


def _check_create(world: World, caller: Caller, body: dict[str, Any], now: datetime) -> _Checked:
    change_type = parse_change_type(body.get("changeType"))
    notification_url = check_notification_url(body.get("notificationUrl"), "notificationUrl")
    lifecycle_url = body.get("lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = check_notification_url(lifecycle_url, "lifecycleNotificationUrl")
    mailbox_id = resolve_mailbox(world, caller, body.get("resource"))
    authorize_mailbox(world, caller, mailbox_id)
    expiration = parse_expiration(body.get("expirationDateTime"), operation="Create", now=now)
    client_state = parse_client_state(body.get("clientState"))
    tls = parse_tls_version(body.get("latestSupportedTlsVersion"))
    if body.get("includeResourceData"):
        # Rich notifications need certificate encryption, which the local cloud does not offer.
        raise invalid("includeResourceData is not supported by the local cloud; use basic notifications.")
    check_quota(world, mailbox_id)
    return _Checked(change_type, notification_url, lifecycle_url, mailbox_id, expiration, client_state, tls)


def _new_subscription(
    subscription_id: str, caller: Caller, body: dict[str, Any], checked: _Checked, now: datetime
) -> notify.Subscription:
    return notify.Subscription(
        id=subscription_id,
        tenant_id=caller.tenant_id,
        client_id=caller.client_id,
        creator_id=creator_id(caller),
        delegated_user_id=caller.user_id,
        mailbox_id=checked.mailbox_id,
        resource=str(body["resource"]),
        change_type=checked.change_type,
        notification_url=checked.notification_url,
        lifecycle_notification_url=checked.lifecycle_url,
        client_state=checked.client_state,
        expiration=checked.expiration,
        latest_supported_tls_version=checked.tls,
        notification_url_app_id=body.get("notificationUrlAppId"),
        created_at=now,
    )


async def _create(world: World, auth: Authenticator, request: Request) -> Response:
    try:
        caller = auth(world, request)
        body = await json_body(request)
        now = world.now()
        checked = _check_create(world, caller, body, now)
        subscription_id = str(uuid.uuid4())
        # Two requests even when both URLs are the same, as Graph documents.
        await validate_endpoint(world, checked.notification_url, subscription_id)
        if checked.lifecycle_url is not None:
            await validate_endpoint(world, checked.lifecycle_url, subscription_id)
        sub = _new_subscription(subscription_id, caller, body, checked, now)
        with world.lock:
            check_quota(world, checked.mailbox_id)  # the handshake let other creates run meanwhile
            notify.state(world).subscriptions[sub.id] = sub
            payload = sub.to_json()
    except GraphError as err:
        return err.response()
    notify.start_delivery(world)
    logger.info("subscription %s created on mailbox %s", sub.id, checked.mailbox_id)
    return _entity(request, payload, 201)


# ---- read, renew, delete -----------------------------------------------------------------------
async def _list_all(world: World, auth: Authenticator, request: Request) -> Response:
    try:
        caller = auth(world, request)
    except GraphError as err:
        return err.response()
    now = world.now()
    with world.lock:
        value = [
            s.to_json()
            for s in notify.state(world).subscriptions.values()
            if visible_to(s, caller) and not s.expired(now)
        ]
    return JSONResponse({"@odata.context": odata.context_url(request, "subscriptions"), "value": value})


async def _get_one(world: World, auth: Authenticator, request: Request) -> Response:
    try:
        caller = auth(world, request)
        with world.lock:
            payload = find(world, caller, request.path_params["id"]).to_json()
    except GraphError as err:
        return err.response()
    return _entity(request, payload)


async def _update(world: World, auth: Authenticator, request: Request) -> Response:
    try:
        caller = auth(world, request)
        body = await json_body(request)
        unknown = {k for k in body if not k.startswith("@odata.")} - PATCHABLE
        if unknown:
            raise invalid(f"Only expirationDateTime can be updated; got {', '.join(sorted(unknown))}.")
        sub = find(world, caller, request.path_params["id"])
        authorize_mailbox(world, caller, sub.mailbox_id)
        expiration = parse_expiration(body.get("expirationDateTime"), operation="Update", now=world.now())
        with world.lock:
            sub = find(world, caller, request.path_params["id"])
            sub.expiration = expiration
            # Renewing also reauthorizes, and restarts the near-expiry challenge schedule.
            sub.reauthorized()
            sub.last_expiry_challenge_at = None
            payload = sub.to_json()
    except GraphError as err:
        return err.response()
    return _entity(request, payload)


async def _delete(world: World, auth: Authenticator, request: Request) -> Response:
    try:
        caller = auth(world, request)
        with world.lock:
            sub = find(world, caller, request.path_params["id"])
            del notify.state(world).subscriptions[sub.id]
    except GraphError as err:
        return err.response()
    return Response(status_code=204)


async def _reauthorize(world: World, auth: Authenticator, request: Request) -> Response:
    try:
        caller = auth(world, request)
        sub = find(world, caller, request.path_params["id"])
        authorize_mailbox(world, caller, sub.mailbox_id)
        with world.lock:
            find(world, caller, request.path_params["id"]).reauthorized()
    except GraphError as err:
        return err.response()
    return Response(status_code=204)


_ROUTES: list[tuple[str, Handler, str]] = [
    ("/subscriptions", _create, "POST"),
    ("/subscriptions", _list_all, "GET"),
    ("/subscriptions/{id}", _get_one, "GET"),
    ("/subscriptions/{id}", _update, "PATCH"),
    ("/subscriptions/{id}", _delete, "DELETE"),
    ("/subscriptions/{id}/reauthorize", _reauthorize, "POST"),
]


def routes(world: World, *, prefix: str = "/v1.0", authenticate: Authenticator | None = None) -> list[BaseRoute]:
    """The ``/subscriptions`` API. Building the routes also hooks delivery to the world's event changes."""
    auth = authenticate or _default_authenticate
    notify.attach(world)

    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(world, auth, request)

        return endpoint

    return [Route(prefix + path, bind(handler), methods=[method]) for path, handler, method in _ROUTES]
