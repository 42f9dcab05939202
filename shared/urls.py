"""Every URL of the service itself, built in one place from ``Settings.public_base_url``."""

from __future__ import annotations

from urllib.parse import quote

from shared.config import Settings


def _url(settings: Settings, path: str) -> str:
    return f"{settings.public_base_url}/api/{path}"


def login_url(settings: Settings) -> str:
    """Where a recruiter signs in (again)."""
    return _url(settings, "auth/login")


def signin_callback_url(settings: Settings) -> str:
    """The sign-in redirect URI registered with the app (form_post lands here)."""
    return _url(settings, "auth/callback")


def consent_start_url(settings: Settings, tenant: str) -> str:
    """The link an Office 365 admin opens to grant admin consent for ``tenant``."""
    return _url(settings, f"consent/start?tenant={quote(tenant, safe='')}")


def consent_callback_url(settings: Settings) -> str:
    """The admin-consent redirect URI registered with the app."""
    return _url(settings, "consent/callback")


def consent_request_url(settings: Settings, tenant_id: str) -> str:
    """The ready-to-send email a recruiter forwards to their admin."""
    return _url(settings, f"consent/request?tenant={quote(tenant_id, safe='')}")


def graph_webhook_url(settings: Settings) -> str:
    """Where Graph POSTs change notifications (``notificationUrl``)."""
    return _url(settings, "webhooks/graph")


def graph_lifecycle_url(settings: Settings) -> str:
    """Where Graph POSTs lifecycle notifications (``lifecycleNotificationUrl``)."""
    return _url(settings, "webhooks/graph/lifecycle")
