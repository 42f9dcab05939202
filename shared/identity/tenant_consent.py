"""Tenant consent: what an app-only token proves about a tenant, recorded on the tenant row.

The tenant row changes only when what the tenant granted changes (status, roles, the reason it
needs attention) or when a consent callback verified it with Microsoft afresh. App-token refreshes
on the hot path leave it alone, so concurrent requests do not race on it. ``consented_at`` is when
consent was first proven and never moves; ``verified_at`` moves only when Microsoft was asked
afresh (the consent callback's verification); ``checked_at`` is the last consent check of any kind.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.config import REQUIRED_APP_ROLES
from shared.conflicts import retry_on_conflict
from shared.errors import AdminConsentRequired, ConcurrencyConflict, NotFound, TenantMismatch, UpstreamError
from shared.models import AccessToken, ConsentStatus, Tenant
from shared.ports import Dependencies
from shared.urls import consent_request_url
from shared.worker_cache import pacer_of

logger = logging.getLogger(__name__)

APP_CACHE_OWNER = "app"
# A tenant marked as needing attention is re-checked at most this often.
CONSENT_RECHECK_INTERVAL = timedelta(seconds=60)
# A consented tenant is asked about afresh at most this often per worker, so that a withdrawn consent
# shows within 30 s (the interval plus the time a request takes).
CONSENT_REVERIFY_INTERVAL = timedelta(seconds=25)


def consent_required(deps: Dependencies, tenant_id: str, message: str, **details: Any) -> AdminConsentRequired:
    return AdminConsentRequired(message, consent_request_url=consent_request_url(deps.settings, tenant_id), **details)


def evaluate_roles(roles: tuple[str, ...]) -> tuple[ConsentStatus, tuple[str, ...], str | None]:
    """Status, missing roles and (for needs_attention) why, from the roles an app-only token carries."""
    missing = tuple(r for r in REQUIRED_APP_ROLES if r not in roles)
    if not missing:
        return ConsentStatus.CONSENTED, missing, None
    if not roles:  # consent withdrawn, or the service principal holds no grant at all
        return ConsentStatus.NEEDS_ATTENTION, missing, "no application permissions granted"
    return ConsentStatus.PARTIAL, missing, None


def proves_same(tenant: Tenant, token: AccessToken) -> bool:
    """Whether the tenant row already says what this app-only token proves."""
    status, missing, reason = evaluate_roles(token.roles)
    return (tenant.consent_status, tenant.granted_roles, tenant.missing_roles, tenant.attention_reason) == (
        status,
        token.roles,
        missing,
        reason,
    )


def _get(deps: Dependencies, tenant_id: str) -> Tenant | None:
    try:
        return deps.tenants.get_tenant(tenant_id)
    except NotFound:
        return None


def record_proof(deps: Dependencies, token: AccessToken, *, verified: bool = False) -> Tenant:
    """Record what an app-only token proves about its tenant (its tid and roles).

    ``verified``: the token was just issued by Microsoft for a consent verification, so
    ``verified_at`` moves. Writes nothing when the row already says so; a lost ETag race re-reads
    and usually finds the winner wrote the same. Raises ConcurrencyConflict only after retries.
    """
    status, missing, reason = evaluate_roles(token.roles)
    now = deps.clock.now()
    proven_at = now if token.roles else None

    def write() -> Tenant:
        current = _get(deps, token.tenant_id)
        if current is None:
            return deps.tenants.create_tenant(
                Tenant(
                    tenant_id=token.tenant_id,
                    consent_status=status,
                    granted_roles=token.roles,
                    missing_roles=missing,
                    consented_at=proven_at,
                    verified_at=now if verified else None,
                    checked_at=now,
                    attention_reason=reason,
                )
            )
        fresh_enough = not verified or (current.verified_at is not None and current.verified_at >= now)
        if proves_same(current, token) and fresh_enough:
            return current
        return deps.tenants.update_tenant(
            replace(
                current,
                consent_status=status,
                granted_roles=token.roles,
                missing_roles=missing,
                consented_at=current.consented_at or proven_at,
                verified_at=now if verified else current.verified_at,
                checked_at=now,
                attention_reason=reason,
            )
        )

    return retry_on_conflict(write)


def mark_tenant(deps: Dependencies, tenant_id: str, status: ConsentStatus, reason: str) -> None:
    """Record that Microsoft refused the tenant a token. Losing a race to another marker is fine."""
    now = deps.clock.now()

    def write() -> None:
        current = _get(deps, tenant_id)
        if current is None:
            return
        if (current.consent_status, current.attention_reason) == (status, reason) and (
            current.checked_at is not None and current.checked_at >= now
        ):
            return  # another request marked it since we started
        deps.tenants.update_tenant(replace(current, consent_status=status, attention_reason=reason, checked_at=now))

    try:
        retry_on_conflict(write)
    except ConcurrencyConflict:
        logger.info("Another writer kept updating the tenant; its consent mark is left to the next check")


def save_app_cache(deps: Dependencies, tenant_id: str, serialized: str | None) -> None:
    """Keep the tenant's app-only token cache. Last writer wins; losing that race is harmless."""
    if serialized is None:
        return
    try:
        deps.token_caches.save_cache(tenant_id, APP_CACHE_OWNER, serialized)
    except ConcurrencyConflict:
        logger.info("Another request stored the tenant's app-only token cache first; keeping theirs")


def check_with_microsoft(
    deps: Dependencies,
    tenant_id: str,
    *,
    known: Tenant | None = None,
    afresh: bool = False,
    refused: AccessToken | None = None,
    claims_challenge: str | None = None,
) -> tuple[AccessToken, Tenant | None]:
    """An app-only token for the tenant (from the token cache while fresh) and the tenant row, updated
    only when the token proves something else than ``known`` (read here when not given). A refusal
    marks the tenant needs_attention and raises AdminConsentRequired.

    ``afresh``: a new token from the identity platform, never a cached one (what the tenant grants
    now); it is not stored. ``refused``: the token Graph just refused, never answered again."""
    cache = None if afresh else deps.token_caches.load_cache(tenant_id, APP_CACHE_OWNER)
    try:
        token = deps.identity.acquire_app_token(
            tenant_id=tenant_id,
            serialized_cache=cache,
            refused=refused.token if refused is not None else None,
            claims_challenge=claims_challenge,
        )
    except AdminConsentRequired as err:
        mark_tenant(deps, tenant_id, ConsentStatus.NEEDS_ATTENTION, str(err.details.get("reason", "refused")))
        raise consent_required(
            deps,
            tenant_id,
            "Microsoft refused the app-only token: the administrator's consent was withdrawn or never completed.",
        ) from err
    if token.tenant_id != tenant_id:
        raise AdminConsentRequired("The app-only token names another tenant.")
    if not afresh:
        save_app_cache(deps, tenant_id, token.serialized_cache)
    tenant = known if known is not None else _get(deps, tenant_id)
    if tenant is None or not proves_same(tenant, token):
        try:
            tenant = record_proof(deps, token)
        except ConcurrencyConflict:
            # The token itself is the proof this request needs; the row catches up on the next change.
            logger.info("Another writer kept updating the tenant; using the fresh app-only token")
    return token, tenant


def verify_consent(deps: Dependencies, tenant_id: str) -> Tenant:
    """Ask Microsoft afresh (no token cache, no remembered error answers) for an app-only token, as the
    consent callback must, then record what it proves and move ``verified_at``. Raises TenantMismatch
    when the token names another tenant, AdminConsentRequired when Microsoft issues none."""
    token = deps.identity.acquire_app_token(tenant_id=tenant_id, serialized_cache=None, fresh=True)
    if token.tenant_id.lower() != tenant_id.lower():
        raise TenantMismatch("The app-only token names another tenant than the one that consented.")
    tenant = record_proof(deps, token, verified=True)
    save_app_cache(deps, tenant.tenant_id, token.serialized_cache)
    return tenant


def refresh_tenant_consent(deps: Dependencies, tenant_id: str) -> Tenant:
    """Re-check a tenant with an app-only token and return its row. Raises AdminConsentRequired."""
    _token, tenant = check_with_microsoft(deps, tenant_id)
    if tenant is None:
        return deps.tenants.get_tenant(tenant_id)
    if tenant.consent_status is not ConsentStatus.CONSENTED and (
        tenant.checked_at is None or tenant.checked_at < deps.clock.now()
    ):
        # Nothing changed, but the next re-check waits a full interval from now.
        try:
            tenant = deps.tenants.update_tenant(replace(tenant, checked_at=deps.clock.now()))
        except ConcurrencyConflict:
            tenant = deps.tenants.get_tenant(tenant_id)
    return tenant


def reverify_consent(deps: Dependencies, tenant_id: str, *, known: Tenant | None = None) -> Tenant | None:
    """What the tenant grants now, from a new app-only token (never a cached one, whose roles are
    those of its issue): the tenant row, marked needs_attention when Microsoft issues no token and
    updated when the token's roles differ. An identity platform that does not answer leaves the row
    as it was (logged)."""
    try:
        _token, tenant = check_with_microsoft(deps, tenant_id, known=known, afresh=True)
    except AdminConsentRequired:
        return _get(deps, tenant_id)
    except UpstreamError as err:
        logger.warning("Re-checking a tenant's consent failed (%s); keeping what is recorded", err.code)
        return known if known is not None else _get(deps, tenant_id)
    return tenant if tenant is not None else _get(deps, tenant_id)


def current_tenant(deps: Dependencies, tenant_id: str) -> Tenant | None:
    """The tenant row as the two-token rule sees it now (None: never consented).

    A consented tenant is asked about afresh at most once per CONSENT_REVERIFY_INTERVAL on this
    worker: an administrator who withdraws consent leaves every token already issued working (Graph
    checks the token's own roles and scopes until it expires), so only a new token shows it. A
    tenant that needs attention is re-checked at most once per CONSENT_RECHECK_INTERVAL."""
    tenant = _get(deps, tenant_id)
    if tenant is None:
        return None
    if tenant.consent_status is ConsentStatus.CONSENTED:
        if pacer_of(deps, "consent", deps.clock, CONSENT_REVERIFY_INTERVAL).due(tenant_id):
            tenant = reverify_consent(deps, tenant_id, known=tenant) or tenant
        return tenant
    due = tenant.checked_at is None or deps.clock.now() - tenant.checked_at >= CONSENT_RECHECK_INTERVAL
    if due:
        try:
            tenant = refresh_tenant_consent(deps, tenant_id)
        except AdminConsentRequired:
            tenant = deps.tenants.get_tenant(tenant_id)
    return tenant


def ensure_tenant_consent(deps: Dependencies, tenant_id: str) -> Tenant:
    """Return the tenant if it holds full consent (see ``current_tenant`` for when Microsoft is asked
    again). Raises AdminConsentRequired."""
    tenant = current_tenant(deps, tenant_id)
    if tenant is None:
        raise consent_required(deps, tenant_id, "Your Office 365 administrator has not granted consent yet.")
    if tenant.consent_status is ConsentStatus.CONSENTED:
        return tenant
    raise tenant_consent_required(deps, tenant)


def tenant_consent_required(deps: Dependencies, tenant: Tenant) -> AdminConsentRequired:
    """The error a request of a tenant without full consent answers."""
    return consent_required(
        deps,
        tenant.tenant_id,
        "Your Office 365 administrator's consent is missing or incomplete.",
        consent_status=tenant.consent_status.value,
        missing_permissions=list(tenant.missing_roles),
    )
