"""The two-token rule: a valid user session AND the tenant's admin consent, checked in one place."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from shared.errors import NotFound, ReauthRequired, SigninRequired
from shared.identity.tenant_consent import ensure_tenant_consent
from shared.identity.tokens import user_token
from shared.models import AccessToken, Session, Tenant, TokenHealth, User
from shared.ports import Dependencies
from shared.urls import login_url


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
    # Warm, this reads nothing from storage: the session, user, tenant and token cache come from the
    # worker's memory and a fresh access token from the identity adapter's; a refusal marks the user.
    return replace(ctx, tenant=tenant, user_access=user_token(deps, ctx.user))
