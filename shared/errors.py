"""One small exception tree; ``functions/_http.py`` maps it to HTTP once.

    ServiceError                      code                      (HTTP, in functions/_http.py)
    ├── InvalidRequest                invalid_request           400
    │   ├── InvalidJson               invalid_json              400
    │   ├── UnsupportedMediaType      unsupported_media_type    415
    │   ├── PayloadTooLarge           payload_too_large         413
    │   ├── InvalidFlowState          invalid_state             400
    │   └── TenantMismatch            tenant_mismatch           400
    ├── NotFound                      not_found                 404
    ├── ConcurrencyConflict           conflict                  409
    │   ├── IdempotencyKeyReused      idempotency_key_reused    409
    │   ├── IdempotencyKeyInProgress  idempotency_key_in_progress 409
    │   └── SlotUnavailable           slot_unavailable          409 (busy: who)
    ├── PreconditionFailed            precondition_failed       412
    ├── PreconditionRequired          precondition_required     428
    ├── AuthError
    │   ├── SigninRequired            signin_required           401
    │   ├── ReauthRequired            reauth_required           401
    │   ├── AdminConsentRequired      admin_consent_required    403
    │   ├── Forbidden                 forbidden                 403
    │   │   ├── NotOurEvent           not_our_event             403
    │   │   └── NoAccessToCalendar    no_access_to_calendar     403 (group: who grants access)
    │   └── SigninDenied              signin_failed             401
    │       ├── ConsentDeclined       consent_declined          401 (cancelled: AADSTS65004)
    │       ├── InteractionRequired   interaction_required      401 (prompt=none: AADSTS50058, 16000, 65001)
    │       └── AdminApprovalRequired admin_approval_required   403 (an admin must approve: AADSTS90094)
    ├── TokenIntegrityError           token_unreadable          answered 401 reauth_required (details logged)
    ├── ConfigurationError            configuration_error       500
    │   └── NotConfigured             not_configured            503
    └── UpstreamError                 upstream_error            502
        ├── UpstreamUnavailable       upstream_unavailable      503
        │   └── GraphUnavailable      graph_unavailable         503 (Graph could not be read: nothing is known)
        └── GraphRequestFailed        graph_request_failed      502 (reason: access_policy, on_premises, ...)
            └── DeltaExpired          delta_expired             502 (Graph's 410: sync the mailbox afresh)

Built-in ``ValueError`` stays for programming errors (bad arguments from our own code).
Messages never contain tokens, codes, secrets or clientState values.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error a caller acts on. ``code`` is stable and machine-readable."""

    code = "internal_error"

    def __init__(self, message: str, *, internal: str | None = None, **details: Any) -> None:
        # str() of the error (what logs and tracebacks show) carries the internal detail; never answered.
        super().__init__(f"{message} ({internal})" if internal else message)
        self.message = message
        self.details = details
        # What operators need and clients must not see (a storage action, a record's key): logged, never
        # answered. ``message`` and ``details`` are what the client is told.
        self.internal = internal

    def describe(self) -> str:
        """The message with its internal detail, for logs."""
        return str(self)


class InvalidRequest(ServiceError):
    code = "invalid_request"


class InvalidJson(InvalidRequest):
    code = "invalid_json"


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class InvalidFlowState(InvalidRequest):
    """An OAuth ``state`` that is unknown, reused or expired."""

    code = "invalid_state"


class NotFound(ServiceError):
    code = "not_found"


class ConcurrencyConflict(ServiceError):
    """An ETag precondition failed or a record that must be new already exists."""

    code = "conflict"


class IdempotencyKeyReused(ConcurrencyConflict):
    """The same Idempotency-Key came with a different request body."""

    code = "idempotency_key_reused"


class IdempotencyKeyInProgress(ConcurrencyConflict):
    """A request with the same Idempotency-Key is still being processed."""

    code = "idempotency_key_in_progress"


class SlotUnavailable(ConcurrencyConflict):
    """Someone the booking needs is busy (or could not be read) in the slot; ``busy`` names them."""

    code = "slot_unavailable"


class PreconditionFailed(ServiceError):
    """The If-Match ETag is not the record's current one."""

    code = "precondition_failed"


class PreconditionRequired(ServiceError):
    """A change that must name the version it was based on came without If-Match."""

    code = "precondition_required"


class AuthError(ServiceError):
    code = "unauthorized"


class SigninRequired(AuthError):
    code = "signin_required"


class ReauthRequired(AuthError):
    code = "reauth_required"


class AdminConsentRequired(AuthError):
    code = "admin_consent_required"


class Forbidden(AuthError):
    code = "forbidden"


class FeatureNotEnabled(Forbidden):
    """The recruiter has not opted into the feature (``automation``: Mail.Read and Mail.Send); ``login_url``
    asks for it."""

    code = "feature_not_enabled"


class NotOurEvent(Forbidden):
    """The event does not carry our booking property: this service never changes it."""

    code = "not_our_event"


class NoAccessToCalendar(Forbidden):
    """Graph refused the caller's own token for the target calendar; ``group`` grants access."""

    code = "no_access_to_calendar"


class TokenIntegrityError(ServiceError):
    """Stored token material failed to decrypt: tampered, moved or under an unknown key."""

    code = "token_unreadable"


class ConfigurationError(ServiceError):
    code = "configuration_error"


class NotConfigured(ConfigurationError):
    """Required settings are missing, so the app refuses to serve at all (503 until they are set)."""

    code = "not_configured"

    def __init__(self, missing: tuple[str, ...]) -> None:
        names = ", ".join(missing)
        super().__init__(
            f"The service is not configured: required settings missing: {names}.", missing_settings=list(missing)
        )


class UpstreamError(ServiceError):
    """Microsoft Graph, the identity platform, Key Vault or Storage failed in a way we cannot fix."""

    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"


class GraphUnavailable(UpstreamUnavailable):
    """Microsoft Graph could not be read (5xx, timeouts, throttling) for something a decision needs, such as
    an interviewer's free/busy: nothing is known, so nothing is claimed (never "busy"); retry later."""

    code = "graph_unavailable"


class SigninDenied(AuthError):
    """Microsoft answered the sign-in or consent redirect with an error (cancelled, declined, ...)."""

    code = "signin_failed"


class ConsentDeclined(SigninDenied):
    """The user (or the administrator) cancelled the permissions page: AADSTS65004."""

    code = "consent_declined"


class InteractionRequired(SigninDenied):
    """A sign-in without interaction (``prompt=none``) could not finish: no session, another account
    is signed in, or consent is missing (AADSTS50058, AADSTS16000, AADSTS65001)."""

    code = "interaction_required"


class AdminApprovalRequired(SigninDenied):
    """The permissions need an administrator's approval and the signed-in account is not one: AADSTS90094."""

    code = "admin_approval_required"


class InvalidTemplate(InvalidRequest):
    """An email template that cannot be saved: ``field`` (subject or html) and ``line`` say where."""

    code = "invalid_template"


class TenantMismatch(InvalidRequest):
    """A redirect named a tenant other than the one the flow was started for or the token proves."""

    code = "tenant_mismatch"


class GraphRequestFailed(UpstreamError):
    """A Graph call failed. ``reason`` is one of GRAPH_FAILURE_REASONS; never branch on the message."""

    code = "graph_request_failed"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str,
        graph_code: str = "",
        claims_challenge: str | None = None,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after  # seconds Graph asked to wait (429, 503), when it said
        self.status = status
        self.reason = reason
        self.graph_code = graph_code
        # A 401's claims challenge (the decoded JSON of WWW-Authenticate's ``claims``), for the token
        # refresh only: kept out of ``details``, which reach the client, and never logged.
        self.claims_challenge = claims_challenge

    @property
    def token_refused(self) -> bool:
        """Graph answered 401: the access token itself was refused (a new one may be taken)."""
        return self.reason == "unauthorized"


GRAPH_FAILURE_REASONS = (
    "access_policy",  # an application access policy blocks the mailbox
    "on_premises",  # the mailbox is on premises and not reachable through Graph
    "forbidden",  # the token lacks a permission
    "unauthorized",  # the token was refused
    "throttled",
    "unavailable",
    "other",
)


class DeltaExpired(GraphRequestFailed):
    """Graph answered 410 to a delta link (``resyncRequired``, ``syncStateNotFound``): sync afresh."""

    code = "delta_expired"


def error_from_code(code: str, message: str, details: dict[str, Any] | None = None) -> ServiceError:
    """The error of this tree that ``code`` names (the most general class that carries it), to answer
    again what was answered before; an unknown code becomes a plain ServiceError with that code."""
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop(0)
        if cls.code == code:
            return cls(message, **(details or {}))
        pending.extend(cls.__subclasses__())
    error = ServiceError(message, **(details or {}))
    error.code = code
    return error
