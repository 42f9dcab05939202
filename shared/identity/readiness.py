"""Readiness: the integration guide's compatibility checks for the signed-in user's tenant.

Each check says pass, fail or skipped, what it found, and what to do. A failed
check is a normal outcome (a value), not an exception.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from shared.booking.write_rule import check_tenant_mailbox
from shared.conflicts import retry_on_conflict
from shared.errors import AdminConsentRequired, Forbidden, GraphRequestFailed, InvalidRequest, NotFound, ServiceError
from shared.identity.guard import RequestContext
from shared.identity.tokens import app_token, with_user_token
from shared.models import AccessToken, Tenant
from shared.ports import Dependencies
from shared.text import clean_text, mailbox_address

HYBRID_REQUIREMENTS = (
    "Only v1.0 of the Mail, Calendar and Contacts API is available for mailboxes in hybrid deployments.",
    "Mailbox databases on Exchange 2016 CU3 or later, and every Exchange 2016 server at CU3 or later.",
    "On-premises Active Directory synchronised to Entra ID (Azure AD).",
    "No Exchange 2013 servers in load-balanced arrays with Exchange 2016 servers.",
    "Autodiscover and the client namespace published in Internet DNS.",
    "See https://learn.microsoft.com/microsoft-365/enterprise/hybrid-modern-auth-overview",
)


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: str  # pass | fail | skipped
    detail: str
    action: str | None = None
    requirements: tuple[str, ...] = ()
    required: bool = True  # whether ``ready`` needs it to pass


def _graph_failure(check_id: str, title: str, err: ServiceError, mailbox: str) -> Check:
    if isinstance(err, NotFound):
        return Check(
            check_id,
            title,
            "fail",
            f"{mailbox} does not exist in the tenant's directory.",
            "Create the shared mailbox as the integration guide describes, or correct the address.",
        )
    if isinstance(err, GraphRequestFailed) and err.reason == "access_policy":
        return Check(
            check_id,
            title,
            "fail",
            f"An application access policy blocks the app from {mailbox}.",
            "Ask your Exchange admin to add the mailbox to the policy's security group "
            "(New-ApplicationAccessPolicy / Set-ApplicationAccessPolicy).",
        )
    if isinstance(err, GraphRequestFailed) and err.reason == "on_premises":
        return Check(
            check_id,
            title,
            "fail",
            f"{mailbox} is on premises and Microsoft Graph cannot reach it.",
            "Hybrid deployments are supported when these requirements are met.",
            HYBRID_REQUIREMENTS,
        )
    if isinstance(err, AdminConsentRequired):
        return Check(
            check_id,
            title,
            "fail",
            "The tenant gives the app no token.",
            "Ask your Office 365 administrator to grant consent again.",
        )
    return Check(
        check_id,
        title,
        "fail",
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
            "fail",
            "No mailbox address is configured.",
            f"An admin of the tenant sets {setting} with PUT /api/tenants/me/settings.",
        )
    if token is None:
        return Check(check_id, title, "skipped", "No app-only token for the tenant.")
    try:
        deps.graph.get_user(token, address)
        deps.graph.probe_calendar(token, address)
    except ServiceError as err:
        return _graph_failure(check_id, title, err, address)
    return Check(check_id, title, "pass", f"{address} exists and the app can read its calendar.")


# The mail-enabled security group whose members hold Full Access on the Interviews and Sync mailboxes
# (the integration guide's set-up).
RECRUITING_GROUP = "Recruiting Team"


def _interviews_write_check(deps: Dependencies, ctx: RequestContext, address: str | None) -> Check:
    """Whether the signed-in recruiter's own token opens the Interviews calendar (bookings there are written
    with it, Calendars.ReadWrite.Shared). Exchange grants read and write together with Full Access, so a
    read through the delegated token stands for write access without writing anything."""
    title = "You can book into the Interviews calendar"
    if not address:
        return Check("interviews_write_access", title, "skipped", "No Interviews mailbox is configured.")
    try:
        with_user_token(deps, ctx.user, lambda token: deps.graph.probe_calendar(token, address))
    except GraphRequestFailed as err:
        if err.status == 403 and err.reason == "forbidden":
            return Check(
                "interviews_write_access",
                title,
                "fail",
                f"Your Office 365 account has no access to {address}.",
                f'Ask your admin to add you to the "{RECRUITING_GROUP}" group, which holds access to the mailbox.',
            )
        return _graph_failure("interviews_write_access", title, err, address)
    except ServiceError as err:
        return _graph_failure("interviews_write_access", title, err, address)
    return Check("interviews_write_access", title, "pass", f"Your account can open {address}.")


SYNC_NOT_NEEDED = (
    "Optional: the service writes nothing to a Sync mailbox and does not need one. Attendees' responses are "
    "kept only on the organizer's copy of an interview, so the service watches each organizing mailbox "
    "(the Interviews mailbox and interviewers who organise) instead."
)


def _sync_check(deps: Dependencies, token: AccessToken | None, address: str | None) -> Check:
    """The integration guide's Sync ("webhook calendar") mailbox: reported, never required (see the README)."""
    if not address:
        return Check("sync_mailbox", "Sync mailbox (optional)", "skipped", SYNC_NOT_NEEDED, required=False)
    check = _mailbox_check(deps, token, "sync_mailbox", "Sync mailbox (optional)", address, "sync_mailbox")
    return replace(check, required=False)


def run_readiness(deps: Dependencies, ctx: RequestContext) -> dict[str, Any]:
    checks: list[Check] = []
    tenant: Tenant | None
    try:
        tenant = deps.tenants.get_tenant(ctx.tenant_id)
    except NotFound:
        tenant = None
    token: AccessToken | None = None
    try:
        token = app_token(deps, ctx.tenant_id, known=tenant)
    except ServiceError as err:
        checks.append(
            Check(
                "admin_consent",
                "Admin consent",
                "fail",
                err.message,
                "Send your Office 365 administrator the consent request email.",
            )
        )
    else:
        tenant = deps.tenants.get_tenant(ctx.tenant_id)
        missing = list(tenant.missing_roles)
        checks.append(
            Check(
                "admin_consent",
                "Admin consent",
                "fail" if missing else "pass",
                f"Missing application permissions: {', '.join(missing)}."
                if missing
                else "All application permissions are granted.",
                "Ask your administrator to grant consent again." if missing else None,
            )
        )
    directory_title = "The app can read the directory"
    if token is None:
        checks.append(Check("directory", directory_title, "skipped", "No app-only token for the tenant."))
    else:
        try:
            deps.graph.list_users(token, top=1)
            checks.append(Check("directory", directory_title, "pass", "Users can be listed."))
        except ServiceError as err:
            checks.append(_graph_failure("directory", directory_title, err, "the directory"))
    mailbox_title = "Your mailbox is reachable through Microsoft Graph"
    try:
        with_user_token(deps, ctx.user, lambda token: deps.graph.probe_calendar(token, None))
        checks.append(Check("user_mailbox", mailbox_title, "pass", "Your calendar can be read."))
    except ServiceError as err:
        checks.append(_graph_failure("user_mailbox", mailbox_title, err, ctx.user.username or "your mailbox"))
    checks.append(
        _mailbox_check(
            deps,
            token,
            "interviews_mailbox",
            "Candidate-facing Interviews mailbox",
            tenant.interviews_mailbox if tenant else None,
            "interviews_mailbox",
        )
    )
    checks.append(_interviews_write_check(deps, ctx, tenant.interviews_mailbox if tenant else None))
    checks.append(_sync_check(deps, token, tenant.sync_mailbox if tenant else None))
    return {
        "tenant_id": ctx.tenant_id,
        "ready": all(c.status == "pass" for c in checks if c.required),
        "checks": [asdict(c) for c in checks],
    }


def tenant_settings_view(tenant: Tenant | None) -> dict[str, Any]:
    """The settings as stored; a tenant the guard did not resolve has none set."""
    if tenant is None:
        return {"interviews_mailbox": None, "sync_mailbox": None}
    return {"interviews_mailbox": tenant.interviews_mailbox, "sync_mailbox": tenant.sync_mailbox}


def require_settings_admin(ctx: RequestContext) -> None:
    """Only an admin of the tenant may change its settings. Raises Forbidden.

    Handlers call this before reading the body, so a caller who may not write learns that first."""
    if not ctx.user.is_tenant_admin:
        raise Forbidden("Only an administrator of your Office 365 tenant can change these settings.")


def update_tenant_settings(deps: Dependencies, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    """Set the tenant's mailbox addresses, each one the tenant holds. Raises Forbidden, InvalidRequest
    (naming the field), GraphUnavailable (the directory could not be read)."""
    require_settings_admin(ctx)
    unknown = set(body) - {"interviews_mailbox", "sync_mailbox"}
    if unknown:
        names = ", ".join(sorted(clean_text(n, parameter="setting name", max_length=64) or "" for n in unknown))
        raise InvalidRequest(f"Unknown setting(s): {names}.")
    interviews = mailbox_address(body.get("interviews_mailbox"), parameter="interviews_mailbox")
    sync = mailbox_address(body.get("sync_mailbox"), parameter="sync_mailbox")
    # Only mailboxes of the admin's own tenant: Graph finds them with this tenant's app token, or they are
    # on the admin's own domain (a mailbox the admin has yet to create; readiness says it does not exist).
    own_domains = [ctx.user.username.rpartition("@")[2]] if ctx.user.username else []
    for field, address in (("interviews_mailbox", interviews), ("sync_mailbox", sync)):
        if address is not None:
            check_tenant_mailbox(deps, ctx.tenant_id, ctx.tenant, address, field, own_domains=own_domains)

    def write() -> Tenant:
        current = deps.tenants.get_tenant(ctx.tenant_id)
        return deps.tenants.update_tenant(
            replace(
                current,
                interviews_mailbox=interviews if "interviews_mailbox" in body else current.interviews_mailbox,
                sync_mailbox=sync if "sync_mailbox" in body else current.sync_mailbox,
            )
        )

    return tenant_settings_view(retry_on_conflict(write))
