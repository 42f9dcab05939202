"""Entra ID error answers: the token endpoint's JSON body and the redirect/page forms of /authorize.

Token errors have the documented shape ``{"error", "error_description": "AADSTSnnnn: ... Trace ID:
... Correlation ID: ... Timestamp: ...", "error_codes": [n], "timestamp", "trace_id",
"correlation_id", "error_uri"}``. Clients branch on ``error`` (and ``error_codes``), never on the
description, so descriptions here follow Microsoft's error-code reference closely but not verbatim.
"""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse

from devtools.cloud.state import utcnow

# Message templates, keyed by AADSTS number (wording after Microsoft's error-code reference).
MESSAGES: dict[int, str] = {
    28000: "Provided value for the input parameter scope is not valid because it contains more than one resource.",
    50011: (
        "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
        "configured for the application '{client_id}'."
    ),
    50020: "User account '{upn}' from identity provider does not exist in tenant '{tenant}'.",
    50058: "A silent sign-in request was sent but no user is signed in.",
    16000: (
        "SelectUserAccount: the signed-in session is not for the account the request names; the user must "
        "select an account, which a request with prompt=none cannot show."
    ),
    50059: "No tenant-identifying information found in either the request or implied by any provided credentials.",
    50126: "Error validating credentials due to invalid username or password.",
    50057: "The user account is disabled.",
    501481: "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    500112: (
        "The reply address '{got}' does not match the reply address '{expected}' provided when requesting "
        "Authorization code."
    ),
    700054: "response_type '{response_type}' is not enabled for the application.",
    50173: (
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have "
        "changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before "
        "which tokens are not valid) for this user is '{valid_from}'."
    ),
    54005: (
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing "
        "refresh token."
    ),
    65001: (
        "The user or administrator has not consented to use the application with ID '{client_id}' named "
        "'{app_name}'. Send an interactive authorization request for this user and resource."
    ),
    65004: "User declined to consent to access the app.",
    650053: (
        "The application '{app_name}' asked for scope '{scope}' that doesn't exist on the resource "
        "'00000003-0000-0000-c000-000000000000'. Contact the app vendor."
    ),
    70000: "Provided grant is invalid or malformed.",
    70008: (
        "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive "
        "authorization request for this user and resource."
    ),
    700082: (
        "The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for "
        "90.00:00:00."
    ),
    70011: "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
    700005: "Provided Authorization Code is intended to use against other tenant, thus rejected.",
    700016: (
        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the "
        "application has not been installed by the administrator of the tenant or consented to by any user in the "
        "tenant. You may have sent your authentication request to the wrong tenant."
    ),
    7000215: (
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
        "not the client secret ID, for a secret added to app '{client_id}'."
    ),
    7000218: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    900144: "The request body must contain the following parameter: '{parameter}'.",
    90002: (
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant."
    ),
    90094: "Admin consent is required for the permissions requested by this application.",
    1002012: (
        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with "
        "/.default suffixed to the resource identifier (application ID URI)."
    ),
    500011: (
        "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the "
        "application has not been installed by the administrator of the tenant or consented to by any user in the "
        "tenant. You might have sent your authentication request to the wrong tenant."
    ),
    9002313: "Invalid request. Request is malformed or invalid.",
    900561: "The endpoint only accepts POST requests. Received a GET request.",
    70003: "The app requested an unsupported grant type '{grant_type}'.",
}


class AadstsError(Exception):
    """An Entra error: OAuth ``error`` string, AADSTS number, HTTP status for the token endpoint."""

    def __init__(
        self,
        error: str,
        code: int | None,
        status: int = 400,
        *,
        suberror: str | None = None,
        message: str | None = None,
        **fields: str,
    ) -> None:
        """``code`` None: a condition for which no AADSTS number is documented; ``message`` says what failed."""
        self.error = error
        self.code = code
        self.status = status
        self.suberror = suberror
        template = message if message is not None else MESSAGES.get(code or 0, "")
        try:
            self.message = template.format(**fields) if fields else template
        except KeyError:
            self.message = template
        super().__init__(self.short_description)

    @property
    def short_description(self) -> str:
        return f"AADSTS{self.code}: {self.message}" if self.code is not None else self.message

    def description(self, trace_id: str, correlation_id: str, timestamp: str) -> str:
        return (
            f"{self.short_description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\n"
            f"Timestamp: {timestamp}"
        )

    def response(self, *, correlation_id: str | None = None) -> JSONResponse:
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        timestamp = utcnow().strftime("%Y-%m-%d %H:%M:%SZ")
        body: dict[str, object] = {
            "error": self.error,
            "error_description": self.description(trace_id, correlation_id, timestamp),
            "error_codes": [self.code] if self.code is not None else [],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        }
        if self.code is not None:
            body["error_uri"] = f"https://login.microsoftonline.com/error?code={self.code}"
        if self.suberror:
            body["suberror"] = self.suberror
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="local-entra"'
        return JSONResponse(body, status_code=self.status, headers=headers)
