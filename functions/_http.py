"""HTTP plumbing shared by every HTTP function: the one error-to-status map and JSON helpers.

Every error body has the shape ``{"error": {"code": "...", "message": "..."}}``
with a stable ``code`` (see shared/errors.py). Unexpected exceptions are logged
with their traceback and answered with a generic 500, never with their text.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

import azure.functions as func

from shared import errors

logger = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024

# The one place where an error becomes an HTTP status. Subclasses inherit their base's status.
STATUS_BY_ERROR: dict[type[errors.ServiceError], int] = {
    errors.InvalidRequest: 400,
    errors.UnsupportedMediaType: 415,
    errors.PayloadTooLarge: 413,
    errors.NotFound: 404,
    errors.ConcurrencyConflict: 409,
    errors.AuthError: 401,
    errors.SigninRequired: 401,
    errors.ReauthRequired: 401,
    errors.AdminConsentRequired: 403,
    errors.Forbidden: 403,
    errors.TokenIntegrityError: 500,
    errors.ConfigurationError: 500,
    errors.UpstreamError: 502,
    errors.UpstreamUnavailable: 503,
}

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def status_for(error: errors.ServiceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **details}}


def error_response(error: errors.ServiceError) -> func.HttpResponse:
    status = status_for(error)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="interview-calendar"'
    if isinstance(error, errors.UpstreamUnavailable) and "retry_after" in error.details:
        headers["Retry-After"] = str(error.details["retry_after"])
    details = {k: v for k, v in error.details.items() if k != "retry_after"}
    return json_response(error_body(error.code, error.message, **details), status=status, headers=headers)


def internal_error_response() -> func.HttpResponse:
    return json_response(
        error_body("internal_error", "The service failed unexpectedly. Try again later."),
        status=HTTPStatus.INTERNAL_SERVER_ERROR,
    )


def read_json(req: func.HttpRequest, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Parse a JSON object body, refusing a wrong content type, an oversized or malformed body."""
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise errors.UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    body = req.get_body() or b""
    if len(body) > max_bytes:
        raise errors.PayloadTooLarge(f"The body is larger than {max_bytes} bytes.", limit_bytes=max_bytes)
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise errors.InvalidJson(f"The body is not valid JSON: {type(err).__name__}.") from None
    if not isinstance(parsed, dict):
        raise errors.InvalidJson("The body must be a JSON object.")
    return parsed


Handler = TypeVar("Handler", bound=Callable[..., func.HttpResponse | Awaitable[func.HttpResponse]])


def http_endpoint(handler: Handler) -> Handler:
    """Answer ServiceErrors through the status map and anything unexpected with a generic 500."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            return handler(*args, **kwargs)  # type: ignore[return-value]
        except errors.ServiceError as err:
            level = logging.ERROR if status_for(err) >= 500 else logging.INFO
            logger.log(level, "%s answered %s: %s", handler.__name__, err.code, err.message)
            return error_response(err)
        except Exception:
            logger.exception("%s failed unexpectedly", handler.__name__)
            return internal_error_response()

    return wrapper  # type: ignore[return-value]
