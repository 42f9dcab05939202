"""OpenTelemetry to Application Insights (azure-monitor-opentelemetry), configured once per worker.

``shared.bootstrap.get_container`` calls ``configure_telemetry`` at the worker's first invocation, and only
when APPLICATIONINSIGHTS_CONNECTION_STRING is set: without it nothing here is imported (cold start).
The Functions host (host.json ``"telemetryMode": "OpenTelemetry"``) traces each invocation and the
Python worker (``PYTHON_ENABLE_OPENTELEMETRY=true``) hands its trace context to the function, so the
spans made here for Graph (httpx), the identity platform and storage (the Azure SDK) join the
invocation's trace.

Nothing secret may reach a span: ``RedactingSpanProcessor`` runs before the exporter and rewrites every
attribute as the span starts (the HTTP instrumentations set the URL then): the values of query
parameters that carry codes, tokens, state or clientState are replaced, credentials in a URL's userinfo
are removed, and header attributes that carry credentials are blanked. Logs are the app's own, which
never hold such values.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.config import Settings

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

logger = logging.getLogger(__name__)

REDACTED = "REDACTED"
# Query parameters whose values are bearer-like or single-use secrets (lower case; "$" prefixes dropped).
SENSITIVE_QUERY_PARAMETERS = frozenset(
    {
        "code",
        "state",
        "nonce",
        "session_state",
        "validationtoken",
        "clientstate",
        "deltatoken",
        "skiptoken",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "client_assertion",
        "code_verifier",
        "token",
        "sig",
        "login_hint",
    }
)
# Attribute names holding any of these (lower case) are blanked whatever their value.
SENSITIVE_ATTRIBUTE_WORDS = ("authorization", "cookie", "secret", "password", "token", "clientstate", "x-functions-key")

# Loggers of libraries that log each request at INFO: production keeps them at WARNING.
QUIET_LOGGERS = ("azure", "msal", "httpx", "httpcore", "urllib3")

_configured = False
_lock = threading.Lock()


def redact_text(value: str) -> str:
    """``value`` with sensitive query values replaced and URL credentials removed; other text unchanged."""
    if "?" not in value and "@" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return REDACTED
    if not parts.scheme and not parts.query:
        return value
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if k.lstrip("$").lower() in SENSITIVE_QUERY_PARAMETERS else v) for k, v in pairs],
            safe="$/:,",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redacted_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes that must change, with their safe values."""
    changed: dict[str, Any] = {}
    for key, value in attributes.items():
        lowered = key.lower()
        if any(word in lowered for word in SENSITIVE_ATTRIBUTE_WORDS):
            if value != REDACTED:
                changed[key] = REDACTED
        elif isinstance(value, str):
            safe = redact_text(value)
            if safe != value:
                changed[key] = safe
        elif isinstance(value, (tuple, list)) and any(isinstance(v, str) for v in value):
            safe_values = [redact_text(v) if isinstance(v, str) else v for v in value]
            if safe_values != list(value):
                changed[key] = safe_values
    return changed


class RedactingSpanProcessor:
    """A ``SpanProcessor`` placed before the exporter: rewrites secrets out of a span's attributes as it starts."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        changed = redacted_attributes(span.attributes or {})
        if changed:
            span.set_attributes(changed)

    def _on_ending(self, span: Span) -> None:
        # Attributes set after the start are checked once more as the span ends, before the exporter's copy
        # is taken (opentelemetry-sdk calls this hook before on_end). The span's attributes are frozen by
        # then, so they are rewritten in place: the SDK has no public way to do this (pinned version).
        changed = redacted_attributes(span.attributes or {})
        attributes = getattr(span, "_attributes", None)
        if not changed or attributes is None:
            return
        frozen = getattr(attributes, "_immutable", False)
        attributes._immutable = False
        try:
            for key, value in changed.items():
                attributes[key] = value
        finally:
            attributes._immutable = frozen

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def configure_telemetry(settings: Settings) -> bool:
    """Configure the Azure Monitor distro once per process; returns whether it is (now) configured."""
    global _configured
    connection_string = settings.appinsights_connection_string
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        from azure.monitor.opentelemetry import configure_azure_monitor

        options: dict[str, Any] = {}
        client_id = _entra_client_id(settings.appinsights_authentication)
        if client_id is not None:
            # Local authentication is off on the Application Insights resource: ingestion by identity.
            from azure.identity import ManagedIdentityCredential

            options["credential"] = (
                ManagedIdentityCredential(client_id=client_id) if client_id else (ManagedIdentityCredential())
            )
        configure_azure_monitor(
            connection_string=connection_string,
            span_processors=[RedactingSpanProcessor()],
            enable_live_metrics=False,
            instrumentation_options={
                "azure_sdk": {"enabled": True},
                "httpx": {"enabled": True},
                "requests": {"enabled": True},
                "urllib": {"enabled": False},
                "urllib3": {"enabled": False},
                "django": {"enabled": False},
                "fastapi": {"enabled": False},
                "flask": {"enabled": False},
                "psycopg2": {"enabled": False},
            },
            **options,
        )
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        _configured = True
    logger.info("OpenTelemetry export to Application Insights is on")
    return True


def _entra_client_id(authentication: str | None) -> str | None:
    """From ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (``ClientId=<id>;Authorization=AAD``): the client id
    of the identity to ingest with ("" for a system-assigned one), or None when it asks for no Entra auth."""
    if not authentication:
        return None
    fields = {}
    for part in authentication.split(";"):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip()
    if fields.get("authorization", "").upper() != "AAD":
        return None
    return fields.get("clientid", "")
