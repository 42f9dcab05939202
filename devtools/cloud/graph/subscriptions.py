"""Graph v1.0 ``/subscriptions`` for Outlook events, and the controls that drive change notifications.

Create validates both notification endpoints with Graph's handshake before storing anything, then
change and lifecycle notifications flow through :mod:`devtools.cloud.notify`.

Local-cloud relaxation: Graph requires HTTPS notification URLs; here ``http://`` is also accepted
for loopback hosts (127.0.0.0/8, ::1, localhost), the same exception Entra makes for loopback
redirect URIs, because the service under test listens on plain HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from devtools.cloud import notify
from devtools.cloud.common import Caller, GraphError
from devtools.cloud.graph import odata
from devtools.cloud.state import World

logger = logging.getLogger(__name__)

Authenticator = Callable[[World, Request], Caller]

# Outlook event subscriptions: documented maximum lifetime without resource data.
MAX_EXPIRATION_MINUTES = 10080
MAX_CLIENT_STATE_LENGTH = 128
READ_PERMISSIONS = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
PATCHABLE = frozenset({"expirationDateTime"})

VALIDATION_NOT_OK = (
    "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
)
VALIDATION_MISMATCH = (
    "Subscription validation request failed. Response must exactly match validationToken query parameter."
)
VALIDATION_TIMEOUT = "Subscription validation request timed out."


def _default_authenticate(world: World, request: Request) -> Caller:
    from devtools.cloud import tokens

    return tokens.authenticate(world, request)


# ---- errors ------------------------------------------------------------------------------------
def _not_found() -> GraphError:
    return GraphError(404, "ResourceNotFound", "The object was not found.")


def _invalid(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


def _access_denied() -> GraphError:
    return GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def _extension_error(operation: str, status: str, reason: str) -> GraphError:
    # Outlook-backed subscription failures arrive wrapped this way (code ExtensionError).
    code = 403 if status == "Forbidden" else 400
    return GraphError(
        code, "ExtensionError", f"Operation: {operation}; Exception: [Status Code: {status}; Reason: {reason}]"
    )


# ---- parsing -----------------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_notification_url(value: Any, name: str) -> str:
    """HTTPS, or HTTP on a loopback host (the local-cloud relaxation described above)."""
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} is required.")
    parts = urlsplit(value)
    if not parts.hostname:
        raise _invalid(f"Invalid {name}: '{value}'.")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname)):
        return value
    raise _invalid(f"The {name} must use the HTTPS protocol.")


def parse_expiration(value: Any, *, operation: str, now: datetime) -> datetime:
    if not isinstance(value, str) or not value:
        raise _invalid("expirationDateTime is required.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise GraphError(400, "BadRequest", f"Invalid expirationDateTime value '{value}'.") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Graph reads an offset-less time as UTC
    parsed = parsed.astimezone(UTC)
    if parsed <= now:
        raise _extension_error(operation, "BadRequest", "Subscription expiration must be in the future.")
    if parsed - now > timedelta(minutes=MAX_EXPIRATION_MINUTES):
        raise _extension_error(
            operation,
            "BadRequest",
            f"Subscription expiration can only be {MAX_EXPIRATION_MINUTES} minutes in the future.",
        )
    return parsed


def parse_change_type(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("changeType is required.")
    parts = [p.strip() for p in value.split(",")]
    for part in parts:
        if part not in notify.CHANGE_TYPES:
            raise _invalid(f"Invalid changeType '{part}'. Supported values: created, updated, deleted.")
    return ",".join(parts)


def resolve_mailbox(world: World, caller: Caller, resource: Any) -> str:
    """The mailbox user id of ``me/events`` or ``users/{id or UPN}/events`` (leading slash optional)."""
    if not isinstance(resource, str) or not resource.strip():
        raise _invalid("resource is required.")
    segments = resource.strip().strip("/").split("/")
    lowered = [s.lower() for s in segments]
    if lowered == ["me", "events"]:
        if caller.user_id is None:
            # /me means nothing without a signed-in user.
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        return caller.user_id
    if len(segments) == 3 and lowered[0] == "users" and lowered[2] == "events" and segments[1]:
        key = segments[1]
        if key.startswith("('") and key.endswith("')"):
            key = key[2:-2]
        user = world.find_user(caller.tenant_id, key)
        if user is None:
            # Another tenant's users are as invisible as users that do not exist.
            raise _not_found()
        return user.id
    raise _invalid(f"Resource '{resource}' is not supported for change notifications.")


def authorize_mailbox(world: World, caller: Caller, mailbox_id: str) -> None:
    """Calendars.Read: app-only for any mailbox in the tenant, delegated only for the signed-in user's own."""
    granted = caller.roles if caller.app_only else caller.scopes
    if not granted & READ_PERMISSIONS:
        raise _access_denied()
    if not caller.app_only and mailbox_id != caller.user_id:
        raise _access_denied()
    with world.lock:
        blocked = mailbox_id in world.switches.access_policy_blocked
    if blocked and caller.app_only:
        raise GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")


def _creator_id(caller: Caller) -> str:
    if caller.user_id is not None:
        return caller.user_id
    # The app's service principal in this tenant, the same id its app-only tokens carry as oid.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{caller.tenant_id}:{caller.client_id}"))


def visible_to(sub: notify.Subscription, caller: Caller) -> bool:
    """A caller sees its own app's subscriptions in its own tenant; a delegated caller only its user's."""
    if sub.tenant_id != caller.tenant_id or sub.client_id != caller.client_id:
        return False
    return caller.app_only or sub.delegated_user_id == caller.user_id


def _find(world: World, caller: Caller, subscription_id: str) -> notify.Subscription:
    now = world.now()
    with world.lock:
        sub = notify.state(world).subscriptions.get(subscription_id)
        if sub is None or sub.expired(now) or not visible_to(sub, caller):
            raise _not_found()
        return sub


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as err:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from err
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body


# ---- validation handshake ----------------------------------------------------------------------
def new_validation_token() -> str:
    # Graph's tokens contain spaces and colons, so an endpoint that echoes the raw query value
    # (still URL-encoded) fails exactly as it would against Graph.
    return f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"


def validation_client() -> httpx.AsyncClient:
    """The HTTP client of the handshake. It has no timeout of its own (httpx's default would end the wait
    after 5 seconds): the endpoint gets the documented 10 seconds (``validation_timeout_seconds``),
    applied around the request."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=None)


async def validate_endpoint(world: World, url: str, subscription_id: str) -> None:
    """POST ``{url}?validationToken=...`` and require 200, text/plain and the decoded token, in time."""
    token = new_validation_token()
    separator = "&" if urlsplit(url).query else "?"
    target = f"{url}{separator}validationToken={quote_plus(token)}"
    timeout = world.switches.validation_timeout_seconds
    started = asyncio.get_running_loop().time()
    status: int | None = None
    error: GraphError | None = None
    async with validation_client() as client:
        try:
            response = await asyncio.wait_for(
                client.post(target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"}), timeout
            )
            status = response.status_code
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if status != 200:
                error = GraphError(400, "ValidationError", VALIDATION_NOT_OK)
            elif content_type != "text/plain" or response.text != token:
                error = GraphError(400, "ValidationError", VALIDATION_MISMATCH)
        except (TimeoutError, httpx.TimeoutException):
            error = GraphError(400, "InvalidRequest", VALIDATION_TIMEOUT)
        except httpx.HTTPError:
            error = GraphError(400, "ValidationError", VALIDATION_NOT_OK)
    elapsed = asyncio.get_running_loop().time() - started
    with world.lock:
        notify.state(world).log.append(
            notify.DeliveryRecord(
                "validation",
                url,
                "rejected" if error else "validated",
                status,
                1,
                (subscription_id,),
                None,
                world.now(),
                elapsed,
                error.message if error else None,
            )
        )
    if error is not None:
        logger.warning("validation of notification endpoint %s failed: %s", url, error.message)
        raise error


# ---- handlers ----------------------------------------------------------------------------------
def routes(world: World, *, prefix: str = "/v1.0", authenticate: Authenticator | None = None) -> list[BaseRoute]:
    """The ``/subscriptions`` API. Building the routes also hooks delivery to the world's event changes."""
    auth = authenticate or _default_authenticate
    notify.attach(world)

    async def create(request: Request) -> Response:
        try:
            caller = auth(world, request)
            body = await _json_body(request)
            now = world.now()
            change_type = parse_change_type(body.get("changeType"))
            notification_url = check_notification_url(body.get("notificationUrl"), "notificationUrl")
            lifecycle_url = body.get("lifecycleNotificationUrl")
            if lifecycle_url is not None:
                lifecycle_url = check_notification_url(lifecycle_url, "lifecycleNotificationUrl")
            mailbox_id = resolve_mailbox(world, caller, body.get("resource"))
            authorize_mailbox(world, caller, mailbox_id)
            expiration = parse_expiration(body.get("expirationDateTime"), operation="Create", now=now)
            client_state = body.get("clientState")
            if client_state is not None and (
                not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE_LENGTH
            ):
                raise _invalid(f"clientState must be a string of at most {MAX_CLIENT_STATE_LENGTH} characters.")
            tls = body.get("latestSupportedTlsVersion") or "v1_2"
            if tls not in TLS_VERSIONS:
                raise _invalid(f"Invalid latestSupportedTlsVersion '{tls}'.")
            if body.get("includeResourceData"):
                # Rich notifications need certificate encryption, which the local cloud does not offer.
                raise _invalid("includeResourceData is not supported by the local cloud; use basic notifications.")
            _check_quota(world, mailbox_id)

            subscription_id = str(uuid.uuid4())
            # Two requests even when both URLs are the same, as Graph documents.
            await validate_endpoint(world, notification_url, subscription_id)
            if lifecycle_url is not None:
                await validate_endpoint(world, lifecycle_url, subscription_id)

            sub = notify.Subscription(
                id=subscription_id,
                tenant_id=caller.tenant_id,
                client_id=caller.client_id,
                creator_id=_creator_id(caller),
                delegated_user_id=caller.user_id,
                mailbox_id=mailbox_id,
                resource=str(body["resource"]),
                change_type=change_type,
                notification_url=notification_url,
                lifecycle_notification_url=lifecycle_url,
                client_state=client_state,
                expiration=expiration,
                latest_supported_tls_version=tls,
                notification_url_app_id=body.get("notificationUrlAppId"),
                created_at=now,
            )
            with world.lock:
                _check_quota(world, mailbox_id)  # the handshake let other creates run meanwhile
                notify.state(world).subscriptions[sub.id] = sub
                payload = sub.to_json()
        except GraphError as err:
            return err.response()
        notify.start_delivery(world)
        logger.info("subscription %s created on mailbox %s", sub.id, mailbox_id)
        return JSONResponse(
            {"@odata.context": odata.context_url(request, "subscriptions/$entity"), **payload}, status_code=201
        )

    async def list_all(request: Request) -> Response:
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

    async def get_one(request: Request) -> Response:
        try:
            caller = auth(world, request)
            with world.lock:
                payload = _find(world, caller, request.path_params["id"]).to_json()
        except GraphError as err:
            return err.response()
        return JSONResponse({"@odata.context": odata.context_url(request, "subscriptions/$entity"), **payload})

    async def update(request: Request) -> Response:
        try:
            caller = auth(world, request)
            body = await _json_body(request)
            unknown = {k for k in body if not k.startswith("@odata.")} - PATCHABLE
            if unknown:
                raise _invalid(f"Only expirationDateTime can be updated; got {', '.join(sorted(unknown))}.")
            sub = _find(world, caller, request.path_params["id"])
            authorize_mailbox(world, caller, sub.mailbox_id)
            expiration = parse_expiration(body.get("expirationDateTime"), operation="Update", now=world.now())
            with world.lock:
                sub = _find(world, caller, request.path_params["id"])
                sub.expiration = expiration
                # Renewing also reauthorizes, and restarts the near-expiry challenge schedule.
                sub.reauthorized()
                sub.last_expiry_challenge_at = None
                payload = sub.to_json()
        except GraphError as err:
            return err.response()
        return JSONResponse({"@odata.context": odata.context_url(request, "subscriptions/$entity"), **payload})

    async def delete(request: Request) -> Response:
        try:
            caller = auth(world, request)
            with world.lock:
                sub = _find(world, caller, request.path_params["id"])
                del notify.state(world).subscriptions[sub.id]
        except GraphError as err:
            return err.response()
        return Response(status_code=204)

    async def reauthorize(request: Request) -> Response:
        try:
            caller = auth(world, request)
            sub = _find(world, caller, request.path_params["id"])
            authorize_mailbox(world, caller, sub.mailbox_id)
            with world.lock:
                _find(world, caller, request.path_params["id"]).reauthorized()
        except GraphError as err:
            return err.response()
        return Response(status_code=204)

    return [
        Route(f"{prefix}/subscriptions", create, methods=["POST"]),
        Route(f"{prefix}/subscriptions", list_all, methods=["GET"]),
        Route(f"{prefix}/subscriptions/{{id}}", get_one, methods=["GET"]),
        Route(f"{prefix}/subscriptions/{{id}}", update, methods=["PATCH"]),
        Route(f"{prefix}/subscriptions/{{id}}", delete, methods=["DELETE"]),
        Route(f"{prefix}/subscriptions/{{id}}/reauthorize", reauthorize, methods=["POST"]),
    ]


def _check_quota(world: World, mailbox_id: str) -> None:
    now = world.now()
    with world.lock:
        live = sum(
            1 for s in notify.state(world).subscriptions.values() if s.mailbox_id == mailbox_id and not s.expired(now)
        )
        limit = world.switches.subscriptions_per_mailbox
    if live >= limit:
        raise _extension_error(
            "Create", "Forbidden", f"The maximum number of subscriptions ({limit}) for this mailbox has been reached."
        )


# ---- controls ----------------------------------------------------------------------------------
def control_routes(world: World) -> list[BaseRoute]:
    """``/_control/subscriptions/...``: inspect subscriptions and deliveries, fire lifecycle events, flush."""
    notify.attach(world)

    async def list_subscriptions(request: Request) -> Response:
        with world.lock:
            value = []
            for s in notify.state(world).subscriptions.values():
                body = s.to_json()
                body["clientState"] = None if s.client_state is None else "***"
                body.update(
                    tenantId=s.tenant_id,
                    mailboxId=s.mailbox_id,
                    reauthorizationRequiredAt=(
                        notify.format_datetime(s.reauthorization_required_at) if s.reauthorization_required_at else None
                    ),
                    paused=s.paused(world, world.now()),
                )
                value.append(body)
        return JSONResponse({"value": value})

    async def deliveries(request: Request) -> Response:
        return JSONResponse(
            {"value": [r.to_json() for r in notify.delivery_log(world)], "pending": notify.pending_count(world)}
        )

    async def clear_deliveries(request: Request) -> Response:
        notify.clear_delivery_log(world)
        return Response(status_code=204)

    async def flush(request: Request) -> Response:
        body = await _control_body(request)
        timeout = float(body.get("timeout", 10.0))
        try:
            records = await notify.flush_async(world, timeout)
        except TimeoutError as err:
            return JSONResponse({"error": str(err), "pending": notify.pending_count(world)}, status_code=504)
        return JSONResponse({"value": [r.to_json() for r in records]})

    async def lifecycle(request: Request) -> Response:
        body = await _control_body(request)
        event = body.get("lifecycleEvent")
        if event not in notify.LIFECYCLE_EVENTS:
            return JSONResponse(
                {"error": f"lifecycleEvent must be one of {', '.join(notify.LIFECYCLE_EVENTS)}"}, status_code=400
            )
        try:
            queued = notify.fire_lifecycle_event(world, request.path_params["id"], str(event))
        except KeyError:
            return JSONResponse({"error": "no such subscription"}, status_code=404)
        return JSONResponse({"queued": queued}, status_code=202)

    async def expire(request: Request) -> Response:
        try:
            notify.expire_subscription(world, request.path_params["id"])
        except KeyError:
            return JSONResponse({"error": "no such subscription"}, status_code=404)
        return Response(status_code=204)

    async def deliver(request: Request) -> Response:
        records = await notify.deliver_now_async(world)
        return JSONResponse({"value": [r.to_json() for r in records], "pending": notify.pending_count(world)})

    async def clock(request: Request) -> Response:
        body = await _control_body(request)
        try:
            now = notify.advance_clock(world, float(body.get("advanceSeconds", 0)))
        except (TypeError, ValueError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse({"now": notify.format_datetime(now)})

    base = "/_control/subscriptions"
    return [
        # The cloud's clock (World.now): notification retries, the retry window and subscription expiry.
        Route("/_control/clock/advance", clock, methods=["POST"]),
        Route(f"{base}/deliver", deliver, methods=["POST"]),
        Route(base, list_subscriptions, methods=["GET"]),
        Route(f"{base}/deliveries", deliveries, methods=["GET"]),
        Route(f"{base}/deliveries", clear_deliveries, methods=["DELETE"]),
        Route(f"{base}/flush", flush, methods=["POST"]),
        Route(f"{base}/{{id}}/lifecycle", lifecycle, methods=["POST"]),
        Route(f"{base}/{{id}}/expire", expire, methods=["POST"]),
    ]


async def _control_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}
