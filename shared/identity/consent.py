"""Admin consent: start, callback, and the email a recruiter sends to their Office 365 admin.

The callback trusts nothing in the redirect but a single-use ``state`` bound to
the browser that started the flow. The tenant id comes from an app-only token
that we acquire for the tenant the flow was started for (its ``tid`` claim), never
from the redirect's ``tenant`` parameter, which may only agree with it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from shared.config import Settings
from shared.errors import InvalidRequest, SigninDenied, TenantMismatch
from shared.identity.flows import BrowserFlowStart, redirect_error, seal_flow, take_flow
from shared.identity.tenant_consent import verify_consent
from shared.models import FlowKind, Tenant
from shared.ports import Dependencies
from shared.text import clean_text, mailbox_address
from shared.urls import consent_callback_url, consent_request_url, consent_start_url

# Application permissions and why we need each (shown to the admin and in the email).
APP_PERMISSIONS: tuple[tuple[str, str], ...] = (
    (
        "Calendars.ReadWrite",
        "Find times when interviewers are free and create interviews with their "
        "attendees. We write only to events we created.",
    ),
    ("User.Read.All", "Look up interviewers' names and email addresses to schedule interviews."),
    (
        "MailboxSettings.Read",
        "Read interviewers' time zones and working hours. This does not grant access to read anyone's mail.",
    ),
)

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DOMAIN = re.compile(r"(?=.{4,253}\Z)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}")
# Multi-tenant aliases cannot name the tenant that consents (v2 admin consent: "Do not use 'common'").
_ALIASES = {"common", "organizations", "consumers"}


def validate_tenant_hint(tenant: str | None) -> str:
    value = (clean_text(tenant, parameter="tenant", max_length=253) or "").lower()
    if not value:
        raise InvalidRequest("Name the tenant: its domain (contoso.com) or tenant id.", parameter="tenant")
    if value in _ALIASES or not (_GUID.fullmatch(value) or _DOMAIN.fullmatch(value)):
        raise InvalidRequest("The tenant must be a tenant id (GUID) or a verified domain name.", parameter="tenant")
    return value


def start_admin_consent(deps: Dependencies, tenant: str | None) -> BrowserFlowStart:
    hint = validate_tenant_hint(tenant)
    state = secrets.token_urlsafe(32)
    # Build the URL first: a missing CLIENT_ID fails before anything is stored.
    url = deps.identity.admin_consent_url(tenant=hint, state=state, redirect_uri=consent_callback_url(deps.settings))
    return BrowserFlowStart(redirect_url=url, binding=seal_flow(deps, FlowKind.CONSENT, state, {"tenant_hint": hint}))


def complete_admin_consent(deps: Dependencies, params: Mapping[str, str], binding: str | None) -> Tenant:
    """Raises InvalidFlowState, SigninDenied (admin cancelled or Microsoft refused), TenantMismatch,
    AdminConsentRequired (no app-only token)."""
    flow = take_flow(deps, FlowKind.CONSENT, params.get("state"), binding)
    hint = str(flow.data["tenant_hint"])
    retry_url = consent_start_url(deps.settings, hint)
    if params.get("error"):
        # By AADSTS number: 90094 (the account is not an administrator: offer the email for one, never a
        # retry that meets the same answer), 65004 (declined: v2 sends it as consent_required, classic as
        # permission_denied, the Cancel button as access_denied); anything else: nothing was granted.
        raise redirect_error(
            params,
            "Microsoft did not grant the consent, so nothing was granted.",
            retry_url=retry_url,
            consent_request_url=consent_request_url(deps.settings, hint),
        )
    if params.get("admin_consent", "").lower() != "true":
        raise SigninDenied("Microsoft did not confirm the administrator's consent.", retry_url=retry_url)
    expected = deps.identity.resolve_tenant(hint)
    claimed = params.get("tenant")
    if claimed and claimed.lower() != expected.lower():
        raise TenantMismatch("The consent response names another tenant than the one it was started for.")
    # Microsoft is asked afresh: an earlier refusal it remembers (such as one a forged callback
    # provoked before the admin consented) must not answer for the real admin.
    return verify_consent(deps, expected)


def consent_link(settings: Settings, tenant: str) -> str:
    return consent_start_url(settings, tenant)


def consent_request_email(settings: Settings, tenant: str | None, *, requested_by: str | None = None) -> dict[str, str]:
    """A ready-to-send email asking the Office 365 admin to grant consent."""
    hint = validate_tenant_hint(tenant)
    requested_by = mailbox_address(requested_by, parameter="from")
    link = consent_link(settings, hint)
    lines = [
        "Hello,",
        "",
        "Our recruiting team schedules interviews with an interview scheduling service that reads "
        "interviewers' Outlook free/busy and books interview events. It needs a one-time admin consent "
        "for our Office 365 tenant.",
        "",
        "Please open this link, sign in as an Office 365 administrator and accept:",
        link,
        "",
        "It asks for these application permissions, and only these:",
    ]
    lines += [f"  - {name}: {why}" for name, why in APP_PERMISSIONS]
    lines += [
        "",
        "The service never reads or sends anyone's mail with these permissions. Each recruiter still "
        "signs in with their own Office 365 account, and both grants are needed for any calendar request.",
        "",
        "Thank you" + (f",\n{requested_by}" if requested_by else ""),
    ]
    return {
        "subject": "Admin consent needed for interview scheduling with Office 365",
        "body": "\n".join(lines),
        "consent_url": link,
    }
