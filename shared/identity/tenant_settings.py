"""Tenant settings: the tenant's Interviews and Sync mailbox addresses, set by an admin of the tenant, each a
mailbox the tenant holds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shared.booking.write_rule import check_tenant_mailbox
from shared.conflicts import retry_on_conflict
from shared.errors import Forbidden
from shared.identity.guard import RequestContext
from shared.models import Tenant
from shared.ports import Dependencies
from shared.text import mailbox_address


@dataclass(frozen=True)
class TenantSettings:
    interviews_mailbox: str | None
    sync_mailbox: str | None


def settings_of(tenant: Tenant | None) -> TenantSettings:
    """The settings as stored; a tenant the guard did not resolve has none set."""
    if tenant is None:
        return TenantSettings(None, None)
    return TenantSettings(tenant.interviews_mailbox, tenant.sync_mailbox)


def require_settings_admin(ctx: RequestContext) -> None:
    """Only an admin of the tenant may change its settings. Raises Forbidden.

    Handlers call this before reading the body, so a caller who may not write learns that first."""
    if not ctx.user.is_tenant_admin:
        raise Forbidden("Only an administrator of your Office 365 tenant can change these settings.")


def update_tenant_settings(deps: Dependencies, ctx: RequestContext, body: dict[str, Any]) -> TenantSettings:
    """Set the tenant's mailbox addresses, each one the tenant holds (``body`` has the shape openapi.yaml
    gives: no other field). Raises Forbidden, InvalidRequest (naming the field), GraphUnavailable (the
    directory could not be read)."""
    require_settings_admin(ctx)
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

    return settings_of(retry_on_conflict(write))
