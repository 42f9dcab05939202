"""HTTP plumbing shared by every HTTP function: the one error-to-status map and JSON helpers.

Every error body has the shape ``{"error": {"code": "...", "message": "..."}}``
with a stable ``code`` (see shared/errors.py). Unexpected exceptions are logged
with their traceback and answered with a generic 500, never with their text.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import azure.functions as func
import orjson

from shared import errors

logger = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_JSON_INT_DIGITS = 64

# The one place where an error becomes an HTTP status. Subclasses inherit their base's status.
STATUS_BY_ERROR: dict[type[errors.ServiceError], int] = {
    errors.InvalidRequest: 400,
    errors.UnsupportedMediaType: 415,
    errors.PayloadTooLarge: 413,
    errors.NotFound: 404,
    errors.ConcurrencyConflict: 409,
    errors.PreconditionFailed: 412,
    errors.PreconditionRequired: 428,
    errors.AuthError: 401,
    errors.SigninRequired: 401,
    errors.ReauthRequired: 401,
    errors.AdminConsentRequired: 403,
    errors.AdminApprovalRequired: 403,
    errors.Forbidden: 403,
    errors.TokenIntegrityError: 401,  # answered as reauth_required: see public_error
    errors.ConfigurationError: 500,
    errors.NotConfigured: 503,  # required settings missing: the app refuses to serve until they are set
    errors.UpstreamError: 502,
    errors.UpstreamUnavailable: 503,
}


@dataclass(frozen=True)
class ErrorPage:
    """How a browser leg shows an error: a title, whether the error's own message is shown, advice,
    and buttons as (label, link name); a link name is a key of the error's details or of the
    links the handler passes (``login``)."""

    title: str
    advice: tuple[str, ...] = ()
    show_message: bool = True
    links: tuple[tuple[str, str], ...] = ()


_NOTHING_RECORDED = "Nothing was recorded."
_ADMIN_APPROVAL = ErrorPage(
    "An Office 365 administrator must approve this app",
    (
        "The account you signed in with is not an administrator of your organisation, so Microsoft "
        "could not grant the permissions (AADSTS90094). Nothing was recorded.",
        "Send your administrator the ready-to-send consent request email; once they accept, sign in again.",
    ),
    show_message=False,
    links=(("Get the email for your admin", "consent_request_url"),),
)
# The one place where an error on a browser leg becomes a page, per flow. Subclasses inherit.
PAGE_BY_ERROR: dict[str, dict[type[errors.ServiceError], ErrorPage]] = {
    "signin": {
        errors.InvalidFlowState: ErrorPage(
            "This sign-in has expired", ("Nothing was stored.",), links=(("Sign in again", "login"),)
        ),
        errors.SigninDenied: ErrorPage("You were not signed in", links=(("Sign in again", "login"),)),
        errors.ConsentDeclined: ErrorPage(
            "You declined the permissions",
            (
                "Nothing was stored. The app needs these permissions to read calendars and book interviews; "
                "sign in again and accept them when you are ready.",
            ),
            show_message=False,
            links=(("Sign in again", "login"),),
        ),
        errors.InteractionRequired: ErrorPage(
            "Sign in to continue",
            (
                "Microsoft could not sign you in without asking (no session, another account signed in, or "
                "permissions to accept). Nothing was stored. Sign in and choose your account.",
            ),
            show_message=False,
            links=(("Sign in", "interactive_login"),),
        ),
        errors.AdminApprovalRequired: _ADMIN_APPROVAL,
        errors.AdminConsentRequired: ErrorPage(
            "Your organisation has not connected Office 365 yet",
            ("Send your Office 365 administrator the consent request email; once they accept, sign in again.",),
            links=(("Get the email for your admin", "consent_request_url"), ("Sign in again", "login")),
        ),
    },
    "consent": {
        errors.InvalidFlowState: ErrorPage(
            "This consent link has expired",
            ("Nothing was recorded. Open the consent link from the email again.",),
        ),
        errors.SigninDenied: ErrorPage(
            "Consent was not granted",
            ("Nothing was recorded. You can try again; an Office 365 administrator must sign in and accept.",),
            links=(("Try again", "retry_url"),),
        ),
        errors.ConsentDeclined: ErrorPage(
            "Consent was declined",
            (
                "The administrator cancelled the permissions page, so nothing was granted or recorded. "
                "Open the consent link again to review and accept the permissions.",
            ),
            show_message=False,
            links=(("Review the permissions again", "retry_url"),),
        ),
        errors.AdminApprovalRequired: _ADMIN_APPROVAL,
        errors.TenantMismatch: ErrorPage("Consent could not be verified", (_NOTHING_RECORDED,)),
        errors.NotFound: ErrorPage("Consent could not be verified", (_NOTHING_RECORDED,)),
        errors.AdminConsentRequired: ErrorPage(
            "Consent could not be verified",
            (
                "Microsoft did not give the app a token for your tenant, so the consent could not be "
                "confirmed. Nothing was recorded. Try again in a few minutes.",
            ),
            show_message=False,
        ),
    },
}


def page_for(flow: str, error: errors.ServiceError) -> ErrorPage | None:
    """The page a browser leg of ``flow`` shows for ``error``, or None (answered as JSON)."""
    pages = PAGE_BY_ERROR[flow]
    for cls in type(error).__mro__:
        if cls in pages:
            return pages[cls]
    return None


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def status_for(error: errors.ServiceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


# orjson writes what json.dumps(separators=(",", ":"), default=str) would, several times faster (an answer for
# 200 interviewers is half a megabyte); datetimes and dataclasses go through ``str`` as they did there.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        orjson.dumps(body, default=str, option=_JSON_OPTIONS),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **details}}


def public_error(error: errors.ServiceError) -> errors.ServiceError:
    """What the client is told. Stored token material that no longer decrypts is the operators'
    problem (logged with its details by ``http_endpoint``); the user can only sign in again."""
    if isinstance(error, errors.TokenIntegrityError):
        return errors.ReauthRequired("Your stored Office 365 sign-in could not be read. Sign in again.")
    return error


def error_response(error: errors.ServiceError) -> func.HttpResponse:
    error = public_error(error)
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


class _JsonValueRefused(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    # Python refuses to convert integers over 4300 digits (a ValueError from deep inside json);
    # no field of ours needs more than a few.
    if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise _JsonValueRefused(f"a number has more than {MAX_JSON_INT_DIGITS} digits")
    return int(digits)


def _refuse_constant(name: str) -> Any:
    raise _JsonValueRefused(f"{name} is not a JSON value")


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nesting_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``: checked before parsing, because
    the parser recurses once per level and a deep enough document exhausts the interpreter's stack."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    for found in brackets:
        if found in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def read_json(req: func.HttpRequest, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Parse a JSON object body, refusing a wrong content type, an oversized or malformed body."""
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise errors.UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    body = req.get_body() or b""
    if len(body) > max_bytes:
        raise errors.PayloadTooLarge(f"The body is larger than {max_bytes} bytes.", limit_bytes=max_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise errors.InvalidJson(f"The body is not valid UTF-8 text (at byte {err.start}).") from None
    if _nesting_depth_exceeds(text, MAX_JSON_DEPTH):
        raise errors.InvalidJson(f"The body nests objects or arrays deeper than {MAX_JSON_DEPTH} levels.")
    try:
        parsed = json.loads(text, parse_int=_bounded_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise errors.InvalidJson(
            f"The body is not valid JSON: {err.msg.lower()} at line {err.lineno}, column {err.colno}."
        ) from None
    except _JsonValueRefused as err:
        raise errors.InvalidJson(f"The body is not valid JSON: {err}.") from None
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
        except errors.TokenIntegrityError as err:
            # For operators only: which record, tenant and key version failed; never in the body.
            logger.error(
                "%s: stored token material failed to decrypt (%s): %s details=%s",
                handler.__name__,
                err.code,
                err.message,
                err.details,
            )
            return error_response(err)
        except errors.ServiceError as err:
            level = logging.ERROR if status_for(err) >= 500 else logging.INFO
            logger.log(level, "%s answered %s: %s", handler.__name__, err.code, err.describe())
            return error_response(err)
        except Exception:
            logger.exception("%s failed unexpectedly", handler.__name__)
            return internal_error_response()

    return wrapper  # type: ignore[return-value]
