"""The two-token rule: a valid user session AND the tenant's admin consent, checked in one place.

Also the only place that turns stored token material into Graph access tokens,
marking the user (``reauth_required``) or the tenant (``needs_attention``) when
Microsoft refuses, so that a broken grant never shows up as an empty calendar and
is not retried in a loop.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TypeVar
from urllib.parse import quote

from shared.config import REQUIRED_APP_ROLES, Settings
from shared.errors import (
    AdminConsentRequired,
    ConcurrencyConflict,
    GraphRequestFailed,
    NotFound,
    ReauthRequired,
    SigninRequired,
)
from shared.models import AccessToken, ConsentStatus, Session, Tenant, TokenHealth, User
from shared.ports import Dependencies

logger = logging.getLogger(__name__)

APP_CACHE_OWNER = "app"
# The delegated scopes a calendar call needs (a subset of what sign-in asks for).
USER_TOKEN_SCOPES = ["Calendars.ReadWrite.Shared", "User.ReadBasic.All", "MailboxSettings.Read"]
# A tenant marked as needing attention is re-checked at most this often.
CONSENT_RECHECK_INTERVAL = timedelta(seconds=60)

T = TypeVar("T")


@dataclass(frozen=True)
class RequestContext:
    """Who is calling: the session, the user and (for calendar calls) the consented tenant."""

    session: Session
    user: User
    tenant: Tenant | None = None
    user_access: AccessToken | None = None  # the user's delegated Graph token, proven live

    @property
    def tenant_id(self) -> str:
        return self.user.tenant_id


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def login_url(settings: Settings) -> str:
    return f"{settings.public_base_url}/api/auth/login"


def consent_request_url(settings: Settings, tenant_id: str) -> str:
    return f"{settings.public_base_url}/api/consent/request?tenant={quote(tenant_id)}"


def retry_on_conflict(action: Callable[[], T], *, attempts: int = 3) -> T:
    """Re-run a read-modify-write whose ETag went stale because another writer got there first."""
    for attempt in range(attempts):
        try:
            return action()
        except ConcurrencyConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# ---- sessions ------------------------------------------------------------------------------------
def authenticate_session(deps: Dependencies, credential: str | None) -> RequestContext:
    """Raises SigninRequired (no, unknown, expired or revoked session) or ReauthRequired."""
    settings = deps.settings
    if not credential:
        raise SigninRequired("Sign in with Office 365 first.", login_url=login_url(settings))
    try:
        session = deps.sessions.get_session(hash_secret(credential))
    except NotFound:
        raise SigninRequired(
            "Your session is unknown or has ended. Sign in again.", login_url=login_url(settings)
        ) from None
    if session.revoked or session.expires_at <= deps.clock.now():
        raise SigninRequired("Your session has ended. Sign in again.", login_url=login_url(settings))
    try:
        user = deps.users.get_user(session.tenant_id, session.user_id)
    except NotFound:
        raise SigninRequired("Sign in again.", login_url=login_url(settings)) from None
    return RequestContext(session=session, user=user)


def require_calendar_access(deps: Dependencies, credential: str | None) -> RequestContext:
    """The two-token rule: a live session whose user's own grant still yields a token, in a tenant
    that holds admin consent. Raises SigninRequired, ReauthRequired or AdminConsentRequired."""
    ctx = authenticate_session(deps, credential)
    if ctx.user.token_health is TokenHealth.REAUTH_REQUIRED:
        raise ReauthRequired(
            "Your Office 365 sign-in has expired or was revoked. Sign in again.", login_url=login_url(deps.settings)
        )
    tenant = ensure_tenant_consent(deps, ctx.tenant_id)
    # MSAL answers from its cache while the access token is fresh, so this costs a storage read,
    # and a refresh only when the token nears expiry; a refused refresh marks the user.
    return replace(ctx, tenant=tenant, user_access=user_token(deps, ctx))


# ---- tenant consent ------------------------------------------------------------------------------
def _consent_required(deps: Dependencies, tenant_id: str, message: str, **details: object) -> AdminConsentRequired:
    return AdminConsentRequired(message, consent_request_url=consent_request_url(deps.settings, tenant_id), **details)


def ensure_tenant_consent(deps: Dependencies, tenant_id: str) -> Tenant:
    """Return the tenant if it holds full consent; re-check a tenant that needs attention, at most
    once per CONSENT_RECHECK_INTERVAL. Raises AdminConsentRequired."""
    try:
        tenant = deps.tenants.get_tenant(tenant_id)
    except NotFound:
        raise _consent_required(deps, tenant_id, "Your Office 365 administrator has not granted consent yet.") from None
    if tenant.consent_status is ConsentStatus.CONSENTED:
        return tenant
    due = tenant.checked_at is None or deps.clock.now() - tenant.checked_at >= CONSENT_RECHECK_INTERVAL
    if due:
        try:
            tenant = refresh_tenant_consent(deps, tenant_id)
        except AdminConsentRequired:
            tenant = deps.tenants.get_tenant(tenant_id)
        if tenant.consent_status is ConsentStatus.CONSENTED:
            return tenant
    raise _consent_required(
        deps,
        tenant_id,
        "Your Office 365 administrator's consent is missing or incomplete.",
        consent_status=tenant.consent_status.value,
        missing_permissions=list(tenant.missing_roles),
    )


def evaluate_roles(roles: tuple[str, ...]) -> tuple[ConsentStatus, tuple[str, ...], str | None]:
    """Status, missing roles and (for needs_attention) why, from the roles an app-only token carries."""
    missing = tuple(r for r in REQUIRED_APP_ROLES if r not in roles)
    if not missing:
        return ConsentStatus.CONSENTED, missing, None
    if not roles:  # consent withdrawn, or the service principal holds no grant at all
        return ConsentStatus.NEEDS_ATTENTION, missing, "no application permissions granted"
    return ConsentStatus.PARTIAL, missing, None


def record_app_token(deps: Dependencies, token: AccessToken, *, consented: bool = False) -> Tenant:
    """Record what an app-only token proves about the tenant (its tid and roles) and keep its cache."""
    status, missing, reason = evaluate_roles(token.roles)
    now = deps.clock.now()

    def write() -> Tenant:
        try:
            current: Tenant | None = deps.tenants.get_tenant(token.tenant_id)
        except NotFound:
            current = None
        if current is None:
            return deps.tenants.create_tenant(
                Tenant(
                    tenant_id=token.tenant_id,
                    consent_status=status,
                    granted_roles=token.roles,
                    missing_roles=missing,
                    consented_at=now,
                    checked_at=now,
                    attention_reason=reason,
                )
            )
        return deps.tenants.update_tenant(
            replace(
                current,
                consent_status=status,
                granted_roles=token.roles,
                missing_roles=missing,
                consented_at=now if consented else current.consented_at,
                checked_at=now,
                attention_reason=reason,
            )
        )

    tenant = retry_on_conflict(write)
    if token.serialized_cache is not None:
        deps.token_caches.save_cache(token.tenant_id, APP_CACHE_OWNER, token.serialized_cache)
    return tenant


def mark_tenant(deps: Dependencies, tenant_id: str, status: ConsentStatus, reason: str) -> None:
    def write() -> None:
        try:
            current = deps.tenants.get_tenant(tenant_id)
        except NotFound:
            return
        deps.tenants.update_tenant(
            replace(current, consent_status=status, attention_reason=reason, checked_at=deps.clock.now())
        )

    retry_on_conflict(write)


def refresh_tenant_consent(deps: Dependencies, tenant_id: str) -> Tenant:
    """Get an app-only token for the tenant and record what it proves. Raises AdminConsentRequired."""
    app_token(deps, tenant_id)
    return deps.tenants.get_tenant(tenant_id)


# ---- tokens --------------------------------------------------------------------------------------
def app_token(deps: Dependencies, tenant_id: str, *, known: Tenant | None = None) -> AccessToken:
    """An app-only Graph token for the tenant; a refusal, or a token without the roles the service
    needs, marks the tenant and raises AdminConsentRequired. ``known``: the tenant record the caller
    already read (saves a storage read on the hot path)."""
    cache = deps.token_caches.load_cache(tenant_id, APP_CACHE_OWNER)
    try:
        token = deps.identity.acquire_app_token(tenant_id=tenant_id, serialized_cache=cache)
    except AdminConsentRequired as err:
        mark_tenant(deps, tenant_id, ConsentStatus.NEEDS_ATTENTION, str(err.details.get("reason", "refused")))
        raise _consent_required(
            deps,
            tenant_id,
            "Microsoft refused the app-only token: the administrator's consent was withdrawn or never completed.",
        ) from err
    if token.tenant_id != tenant_id:
        raise AdminConsentRequired("The app-only token names another tenant.")
    status, missing, _reason = evaluate_roles(token.roles)
    if known is None:
        try:
            known = deps.tenants.get_tenant(tenant_id)
        except NotFound:
            known = None
    if token.serialized_cache is not None or known is None or known.consent_status is not status:
        record_app_token(deps, token)
    if missing:
        # A token without the roles would only earn 403s from Graph: never use it.
        raise _consent_required(
            deps,
            tenant_id,
            "The administrator's consent lacks permissions the service needs.",
            missing_permissions=list(missing),
        )
    return token


def with_app_token(
    deps: Dependencies, tenant_id: str, call: Callable[[AccessToken], T], *, known: Tenant | None = None
) -> T:
    """Run a Graph call with the tenant's app-only token. If Graph refuses the token (revoked early,
    signing keys rolled), drop the cached token and try once more with a fresh one."""
    try:
        return call(app_token(deps, tenant_id, known=known))
    except GraphRequestFailed as err:
        if err.reason != "unauthorized":
            raise
        logger.info("Graph refused the cached app-only token; acquiring a fresh one")
        deps.token_caches.delete_cache(tenant_id, APP_CACHE_OWNER)
        return call(app_token(deps, tenant_id))


def user_token(deps: Dependencies, ctx: RequestContext) -> AccessToken:
    """A delegated Graph token for the signed-in user; a refusal marks the user reauth_required."""
    user = ctx.user
    cache = deps.token_caches.load_cache(user.tenant_id, user.user_id)
    try:
        token = deps.identity.acquire_user_token(
            tenant_id=user.tenant_id, user_id=user.user_id, serialized_cache=cache, scopes=USER_TOKEN_SCOPES
        )
    except ReauthRequired as err:
        mark_user_reauth(deps, user)
        raise ReauthRequired(
            "Your Office 365 sign-in has expired or was revoked. Sign in again.",
            login_url=login_url(deps.settings),
            reason=err.details.get("reason"),
        ) from err
    if token.serialized_cache is not None:
        deps.token_caches.save_cache(user.tenant_id, user.user_id, token.serialized_cache)
    return token


def mark_user_reauth(deps: Dependencies, user: User) -> None:
    def write() -> None:
        current = deps.users.get_user(user.tenant_id, user.user_id)
        if current.token_health is not TokenHealth.REAUTH_REQUIRED:
            deps.users.update_user(replace(current, token_health=TokenHealth.REAUTH_REQUIRED))

    retry_on_conflict(write)
