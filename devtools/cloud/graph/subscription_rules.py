"""What a ``/subscriptions`` request must satisfy: notification URLs, expiry, change types, the mailbox a
resource names and who may watch it, the per-mailbox quota, and which subscriptions a caller sees.

Local-cloud relaxation: Graph requires HTTPS notification URLs; here ``http://`` is also accepted
for loopback hosts (127.0.0.0/8, ::1, localhost), the same exception Entra makes for loopback
redirect URIs, because the service under test listens on plain HTTP on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from devtools.cloud import notify
from devtools.cloud.common import Caller, GraphError
from devtools.cloud.state import World

# Outlook event subscriptions: documented maximum lifetime without resource data.
MAX_EXPIRATION_MINUTES = 10080
MAX_CLIENT_STATE_LENGTH = 128
READ_PERMISSIONS = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
PATCHABLE = frozenset({"expirationDateTime"})


# ---- errors ------------------------------------------------------------------------------------
def not_found() -> GraphError:
    return GraphError(404, "ResourceNotFound", "The object was not found.")


def invalid(message: str) -> GraphError:
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
        raise invalid(f"{name} is required.")
    parts = urlsplit(value)
    if not parts.hostname:
        raise invalid(f"Invalid {name}: '{value}'.")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname)):
        return value
    raise invalid(f"The {name} must use the HTTPS protocol.")


def parse_expiration(value: Any, *, operation: str, now: datetime) -> datetime:
    if not isinstance(value, str) or not value:
        raise invalid("expirationDateTime is required.")
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
        raise invalid("changeType is required.")
    parts = [p.strip() for p in value.split(",")]
    for part in parts:
        if part not in notify.CHANGE_TYPES:
            raise invalid(f"Invalid changeType '{part}'. Supported values: created, updated, deleted.")
    return ",".join(parts)


def parse_client_state(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_CLIENT_STATE_LENGTH):
        raise invalid(f"clientState must be a string of at most {MAX_CLIENT_STATE_LENGTH} characters.")
    return value


def parse_tls_version(value: Any) -> str:
    tls = value or "v1_2"
    if tls not in TLS_VERSIONS:
        raise invalid(f"Invalid latestSupportedTlsVersion '{tls}'.")
    return str(tls)


def resolve_mailbox(world: World, caller: Caller, resource: Any) -> str:
    """The mailbox user id of ``me/events`` or ``users/{id or UPN}/events`` (leading slash optional)."""
    if not isinstance(resource, str) or not resource.strip():
        raise invalid("resource is required.")
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
            raise not_found()
        return user.id
    raise invalid(f"Resource '{resource}' is not supported for change notifications.")


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


def check_quota(world: World, mailbox_id: str) -> None:
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


def creator_id(caller: Caller) -> str:
    if caller.user_id is not None:
        return caller.user_id
    # The app's service principal in this tenant, the same id its app-only tokens carry as oid.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{caller.tenant_id}:{caller.client_id}"))


# ---- which subscriptions a caller sees ---------------------------------------------------------------
def visible_to(sub: notify.Subscription, caller: Caller) -> bool:
    """A caller sees its own app's subscriptions in its own tenant; a delegated caller only its user's."""
    if sub.tenant_id != caller.tenant_id or sub.client_id != caller.client_id:
        return False
    return caller.app_only or sub.delegated_user_id == caller.user_id


def find(world: World, caller: Caller, subscription_id: str) -> notify.Subscription:
    now = world.now()
    with world.lock:
        sub = notify.state(world).subscriptions.get(subscription_id)
        if sub is None or sub.expired(now) or not visible_to(sub, caller):
            raise not_found()
        return sub


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as err:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from err
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body
