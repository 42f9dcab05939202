"""Readiness: the integration guide's compatibility checks for the signed-in user's tenant.

Each check says pass, fail or skipped, what it found, and what to do. A failed
check is a normal outcome (a value), not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from shared.errors import AdminConsentRequired, GraphRequestFailed, NotFound, ServiceError
from shared.identity.guard import RequestContext
from shared.identity.tokens import app_token, with_user_token
from shared.models import AccessToken, Tenant
from shared.ports import Dependencies

HYBRID_REQUIREMENTS = (
    "Only v1.0 of the Mail, Calendar and Contacts API is available for mailboxes in hybrid deployments.",
    "Mailbox databases on Exchange 2016 CU3 or later, and every Exchange 2016 server at CU3 or later.",
    "On-premises Active Directory synchronised to Entra ID (Azure AD).",
    "No Exchange 2013 servers in load-balanced arrays with Exchange 2016 servers.",
    "Autodiscover and the client namespace published in Internet DNS.",
    "See https://learn.microsoft.com/microsoft-365/enterprise/hybrid-modern-auth-overview",
)


class CheckStatus(StrEnum):
    PASSED = "pass"
    FAILED = "fail"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: CheckStatus
    detail: str
    action: str | None = None
    requirements: tuple[str, ...] = ()
    required: bool = True  # whether ``ready`` needs it to pass


def _graph_failure(check_id: str, title: str, err: ServiceError, mailbox: str) -> Check:
    if isinstance(err, NotFound):
        return Check(
            check_id,
            title,
            CheckStatus.FAILED,
            f"{mailbox} does not exist in the tenant's directory.",
            "Create the shared mailbox as the integration guide describes, or correct the address.",
        )
    if isinstance(err, GraphRequestFailed) and err.reason == "access_policy":
        return Check(
            check_id,
            title,
            CheckStatus.FAILED,
            f"An application access policy blocks the app from {mailbox}.",
            "Ask your Exchange admin to add the mailbox to the policy's security group "
            "(New-ApplicationAccessPolicy / Set-ApplicationAccessPolicy).",
        )
    if isinstance(err, GraphRequestFailed) and err.reason == "on_premises":
        return Check(
            check_id,
            title,
            CheckStatus.FAILED,
            f"{mailbox} is on premises and Microsoft Graph cannot reach it.",
            "Hybrid deployments are supported when these requirements are met.",
            HYBRID_REQUIREMENTS,
        )
    if isinstance(err, AdminConsentRequired):
        return Check(
            check_id,
            title,
            CheckStatus.FAILED,
            "The tenant gives the app no token.",
            "Ask your Office 365 administrator to grant consent again.",
        )
    return Check(
        check_id,
        title,
        CheckStatus.FAILED,
        f"Microsoft Graph failed: {err.message}",
        "Try again later; if it persists, contact support with the time of the check.",
    )


def _mailbox_check(
    deps: Dependencies, token: AccessToken | None, check_id: str, title: str, address: str | None, setting: str
) -> Check:
    if not address:
        return Check(
            check_id,
            title,
            CheckStatus.FAILED,
            "No mailbox address is configured.",
            f"An admin of the tenant sets {setting} with PUT /api/tenants/me/settings.",
        )
    if token is None:
        return Check(check_id, title, CheckStatus.SKIPPED, "No app-only token for the tenant.")
    try:
        deps.graph.get_user(token, address)
        deps.graph.probe_calendar(token, address)
    except ServiceError as err:
        return _graph_failure(check_id, title, err, address)
    return Check(check_id, title, CheckStatus.PASSED, f"{address} exists and the app can read its calendar.")


# The mail-enabled security group whose members hold Full Access on the Interviews and Sync mailboxes
# (the integration guide's set-up).
RECRUITING_GROUP = "Recruiting Team"


def _interviews_write_check(deps: Dependencies, ctx: RequestContext, address: str | None) -> Check:
    """Whether the signed-in recruiter's own token opens the Interviews calendar (bookings there are written
    with it, Calendars.ReadWrite.Shared). Exchange grants read and write together with Full Access, so a
    read through the delegated token stands for write access without writing anything."""
    title = "You can book into the Interviews calendar"
    if not address:
        return Check("interviews_write_access", title, CheckStatus.SKIPPED, "No Interviews mailbox is configured.")
    try:
        with_user_token(deps, ctx.user, lambda token: deps.graph.probe_calendar(token, address))
    except GraphRequestFailed as err:
        if err.status == 403 and err.reason == "forbidden":
            return Check(
                "interviews_write_access",
                title,
                CheckStatus.FAILED,
                f"Your Office 365 account has no access to {address}.",
                f'Ask your admin to add you to the "{RECRUITING_GROUP}" group, which holds access to the mailbox.',
            )
        return _graph_failure("interviews_write_access", title, err, address)
    except ServiceError as err:
        return _graph_failure("interviews_write_access", title, err, address)
    return Check("interviews_write_access", title, CheckStatus.PASSED, f"Your account can open {address}.")


SYNC_NOT_NEEDED = (
    "Optional: the service writes nothing to a Sync mailbox and does not need one. Attendees' responses are "
    "kept only on the organizer's copy of an interview, so the service watches each organizing mailbox "
    "(the Interviews mailbox and interviewers who organise) instead."
)


def _sync_check(deps: Dependencies, token: AccessToken | None, address: str | None) -> Check:
    """The integration guide's Sync ("webhook calendar") mailbox: reported, never required (see the README)."""
    if not address:
        return Check("sync_mailbox", "Sync mailbox (optional)", CheckStatus.SKIPPED, SYNC_NOT_NEEDED, required=False)
    check = _mailbox_check(deps, token, "sync_mailbox", "Sync mailbox (optional)", address, "sync_mailbox")
    return replace(check, required=False)


@dataclass(frozen=True)
class ReadinessReport:
    tenant_id: str
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        """Every required check passed."""
        return all(c.status is CheckStatus.PASSED for c in self.checks if c.required)


def _consent_check(deps: Dependencies, tenant_id: str, tenant: Tenant | None) -> tuple[Check, AccessToken | None]:
    """Admin consent, proved by an app-only token and the roles it carries; the token reads what follows."""
    try:
        token = app_token(deps, tenant_id, known=tenant)
    except ServiceError as err:
        action = "Send your Office 365 administrator the consent request email."
        return Check("admin_consent", "Admin consent", CheckStatus.FAILED, err.message, action), None
    missing = list(deps.tenants.get_tenant(tenant_id).missing_roles)
    if missing:
        detail = f"Missing application permissions: {', '.join(missing)}."
        action = "Ask your administrator to grant consent again."
        return Check("admin_consent", "Admin consent", CheckStatus.FAILED, detail, action), token
    return Check(
        "admin_consent", "Admin consent", CheckStatus.PASSED, "All application permissions are granted."
    ), token


def _directory_check(deps: Dependencies, token: AccessToken | None) -> Check:
    title = "The app can read the directory"
    if token is None:
        return Check("directory", title, CheckStatus.SKIPPED, "No app-only token for the tenant.")
    try:
        deps.graph.list_users(token, top=1)
    except ServiceError as err:
        return _graph_failure("directory", title, err, "the directory")
    return Check("directory", title, CheckStatus.PASSED, "Users can be listed.")


def _user_mailbox_check(deps: Dependencies, ctx: RequestContext) -> Check:
    title = "Your mailbox is reachable through Microsoft Graph"
    try:
        with_user_token(deps, ctx.user, lambda token: deps.graph.probe_calendar(token, None))
    except ServiceError as err:
        return _graph_failure("user_mailbox", title, err, ctx.user.username or "your mailbox")
    return Check("user_mailbox", title, CheckStatus.PASSED, "Your calendar can be read.")


def run_readiness(deps: Dependencies, ctx: RequestContext) -> ReadinessReport:
    """The integration guide's checks for the caller's tenant, each a value: a failed check is an outcome."""
    tenant: Tenant | None
    try:
        tenant = deps.tenants.get_tenant(ctx.tenant_id)
    except NotFound:
        tenant = None
    consent, token = _consent_check(deps, ctx.tenant_id, tenant)
    if token is not None:
        tenant = deps.tenants.get_tenant(ctx.tenant_id)  # as the consent check just recorded it
    interviews = tenant.interviews_mailbox if tenant else None
    checks = (
        consent,
        _directory_check(deps, token),
        _user_mailbox_check(deps, ctx),
        _mailbox_check(
            deps, token, "interviews_mailbox", "Candidate-facing Interviews mailbox", interviews, "interviews_mailbox"
        ),
        _interviews_write_check(deps, ctx, interviews),
        _sync_check(deps, token, tenant.sync_mailbox if tenant else None),
    )
    return ReadinessReport(ctx.tenant_id, checks)
