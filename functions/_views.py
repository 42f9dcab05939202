"""JSON for the core's values: the one place that decides how a readiness report, the caller's profile, a
directory user, the tenant's settings, the subscriptions' health and candidate email look on the wire."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.cache.view import BusyCacheHealth
    from shared.email.trail import TrailEntry
    from shared.identity.readiness import ReadinessReport
    from shared.identity.signin import Me
    from shared.identity.tenant_settings import TenantSettings
    from shared.models import DirectoryUser, EmailRecord, EmailTemplate
    from shared.sync.report import SubscriptionsHealth


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def readiness_json(report: ReadinessReport) -> dict[str, Any]:
    return {
        "tenant_id": report.tenant_id,
        "ready": report.ready,
        "checks": [{**asdict(c), "status": c.status.value} for c in report.checks],
    }


def tenant_settings_json(settings: TenantSettings) -> dict[str, Any]:
    return {"interviews_mailbox": settings.interviews_mailbox, "sync_mailbox": settings.sync_mailbox}


def directory_user_json(user: DirectoryUser) -> dict[str, Any]:
    return {
        "id": user.user_id,
        "user_principal_name": user.user_principal_name,
        "display_name": user.display_name,
        "mail": user.mail,
    }


def me_json(me: Me) -> dict[str, Any]:
    consent: dict[str, Any] = {"status": me.consent.status, "missing_permissions": list(me.consent.missing_permissions)}
    if me.consent.consent_request_url is not None:
        consent["consent_request_url"] = me.consent.consent_request_url
    token_health: dict[str, Any] = {"status": me.token_health.status}
    if me.token_health.login_url is not None:
        token_health["login_url"] = me.token_health.login_url
    if me.token_health.consent_request_url is not None:
        token_health["consent_request_url"] = me.token_health.consent_request_url
    user = me.user
    return {
        "user": {
            "id": user.user_id,
            "username": user.username,
            "display_name": user.display_name,
            "is_tenant_admin": user.is_tenant_admin,
        },
        "tenant": {"id": user.tenant_id, "consent": consent},
        "granted_scopes": list(user.granted_scopes),
        "features": list(user.features),
        "token_health": token_health,
        "session_expires_at": me.session_expires_at.isoformat(),
    }


def busy_cache_json(health: BusyCacheHealth) -> dict[str, Any]:
    """Only what is known: a disabled cache says so alone; an unreachable one says it is unavailable."""
    if not health.enabled:
        return {"enabled": False}
    if not health.available:
        return {"enabled": True, "available": False}
    return {
        key: _iso(value) if isinstance(value, datetime) else value for key, value in asdict(health).items()
    }


def subscriptions_health_json(health: SubscriptionsHealth) -> dict[str, Any]:
    from shared.sync.report import DROPPED_NOTE, POISON_NOTE, SECONDARY_CALENDAR_NOTE

    return {
        "subscriptions": [
            {
                "subscription_id": s.subscription_id,
                "resource": s.resource,
                "mailbox": s.mailbox,
                "expires_at": _iso(s.expires_at),
                "expired": s.expired,
                "last_notification_at": _iso(s.last_notification_at),
                "last_renewed_at": _iso(s.last_renewed_at),
                "last_error": s.last_error,
                "last_error_at": _iso(s.last_error_at),
                "last_delta_at": _iso(s.last_delta_at),
            }
            for s in health.subscriptions
        ],
        "mailboxes_without_subscription": list(health.mailboxes_without_subscription),
        "poison_queue": {**asdict(health.poison_queue), "note": POISON_NOTE},
        "dropped_notifications": {**asdict(health.dropped_notifications), "note": DROPPED_NOTE},
        "secondary_calendars": SECONDARY_CALENDAR_NOTE,
        "secondary_calendar_bookings": health.secondary_calendar_bookings,
    }


def email_template_json(template: EmailTemplate) -> dict[str, Any]:
    return {
        "name": template.name,
        "subject": template.subject,
        "html": template.html,
        "is_default": template.updated_by is None,
        "updated_at": _iso(template.updated_at),
        "updated_by": template.updated_by,
    }


def email_json(record: EmailRecord) -> dict[str, Any]:
    """A message we send, as a booking's answer and the on-demand send show it."""
    queued = record.status.value == "queued"
    return {
        "template": record.template,
        "status": record.status.value,
        "to": record.to,
        "subject": record.subject or None,
        "sent_at": _iso(record.sent_at),
        "not_before": _iso(record.not_before) if queued else None,
        "error": record.error,
    }


def trail_entry_json(entry: TrailEntry) -> dict[str, Any]:
    return {
        "direction": entry.direction,
        "subject": entry.subject,
        "from": entry.sender,
        "to": list(entry.to),
        "at": _iso(entry.at),
        "preview": entry.preview,
        "template": entry.template,
        "status": entry.status,
        "error": entry.error,
    }
