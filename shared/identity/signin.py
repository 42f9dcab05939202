"""Recruiter sign-in (delegated auth-code flow with PKCE through MSAL), sessions and sign-out.

The MSAL flow (PKCE verifier, nonce) travels sealed in the browser's own cookie
(``shared.identity.flows``), so an anonymous sign-in start stores nothing. The session credential handed to
the web frontend is random and opaque; only its hash is stored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from shared.conflicts import retry_on_conflict
from shared.errors import AdminConsentRequired, InvalidRequest, NotFound, ReauthRequired, ServiceError
from shared.identity.consent import validate_tenant_hint
from shared.identity.flows import BrowserFlowStart, redirect_error, seal_flow, take_flow
from shared.identity.guard import RequestContext, hash_secret
from shared.identity.tenant_consent import current_tenant, ensure_tenant_consent
from shared.identity.tokens import user_token
from shared.models import ConsentStatus, FlowKind, Session, Tenant, TokenHealth, User
from shared.ports import Dependencies
from shared.text import clean_text
from shared.urls import consent_request_url, login_url, signin_callback_url

# Least-privilege delegated scopes (openid, profile and offline_access are added by MSAL).
BASE_SCOPES = [
    "Calendars.Read",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite",
    "Calendars.ReadWrite.Shared",
    "User.Read",
    "User.ReadBasic.All",
    "MailboxSettings.Read",
    "email",
]
# Entra's documented prompt values (v2-oauth2-auth-code-flow): login forces credentials, none never
# asks (an error redirect instead), consent shows the permissions page, select_account the account picker.
PROMPTS = ("login", "none", "consent", "select_account")
# /me's token_health when the tenant's consent is missing: what a calendar request answers then.
ADMIN_CONSENT_REQUIRED = "admin_consent_required"
_PROMPT = re.compile("|".join(PROMPTS))
# Opt-in features and the extra scopes each asks for, incrementally.
FEATURE_SCOPES: dict[str, tuple[str, ...]] = {"automation": ("Mail.Read", "Mail.Send")}


@dataclass(frozen=True)
class SigninOutcome:
    session_credential: str
    user: User
    return_to: str | None


# Characters a URL may carry unencoded (RFC 3986 unreserved and reserved, and "%" of existing escapes).
_URL_SAFE = "/?:@!$&'()*+,;=-._~%"


def _normalise_return(url: str) -> str:
    """The return address as plain ASCII, safe to send back in a ``Location`` header.

    Raises InvalidRequest for anything that is not an absolute http(s) URL without credentials,
    for control or bidi characters anywhere, and for a host that is not plain ASCII.
    """
    text = clean_text(url, parameter="return_to", max_length=2048) or ""
    refused = InvalidRequest("The return address must be an absolute http(s) URL.", parameter="return_to")
    try:
        # urlsplit raises ValueError for an unbalanced IPv6 bracket or a host that changes under NFKC.
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise refused from None
    if (
        parts.scheme not in {"https", "http"}
        or not parts.netloc
        or parts.username is not None
        or parts.password is not None
        or not parts.netloc.isascii()
        or not parts.netloc.isprintable()
        or " " in parts.netloc
    ):
        raise refused
    # Non-ASCII in the path or query is percent-encoded (UTF-8) here, before anything is stored.
    path = quote(parts.path or "/", safe=_URL_SAFE)
    query = quote(parts.query, safe=_URL_SAFE)
    return f"{parts.scheme}://{parts.netloc.lower()}{path}".rstrip("/") + (f"?{query}" if query else "")


def check_return_to(allowed: tuple[str, ...], return_to: str | None) -> str | None:
    """Accept a return address only if it is exactly on the allow-list (query string aside)."""
    if not return_to:
        return None
    normalised = _normalise_return(return_to)
    base = normalised.split("?", 1)[0]
    if base not in {a.rstrip("/") for a in allowed}:
        raise InvalidRequest("The return address is not on the allow-list.", parameter="return_to")
    return normalised


def parse_features(raw: str | None) -> tuple[str, ...]:
    text = clean_text(raw, parameter="features", max_length=256) or ""
    names = tuple(sorted({f.strip().lower() for f in text.split(",") if f.strip()}))
    unknown = [n for n in names if n not in FEATURE_SCOPES]
    if unknown:
        raise InvalidRequest(f"Unknown feature(s): {', '.join(unknown)}.", parameter="features")
    return names


def parse_prompt(raw: str | None) -> str | None:
    """One of Entra's four ``prompt`` values, or None; anything else is refused."""
    if raw is None or raw == "":
        return None
    if not _PROMPT.fullmatch(raw):
        raise InvalidRequest(f"prompt must be one of {', '.join(PROMPTS)}.", parameter="prompt")
    return raw


def _hint_domain(login_hint: str | None) -> str | None:
    """The domain of a ``user@domain`` hint: the tenant to name in an admin-approval email."""
    if not login_hint or "@" not in login_hint:
        return None
    domain = login_hint.rsplit("@", 1)[1].lower()
    try:
        return validate_tenant_hint(domain)
    except InvalidRequest:
        return None


def start_signin(
    deps: Dependencies,
    *,
    features: tuple[str, ...] = (),
    return_to: str | None = None,
    login_hint: str | None = None,
    prompt: str | None = None,
) -> BrowserFlowStart:
    checked_return = check_return_to(deps.settings.allowed_return_urls, return_to)
    login_hint = clean_text(login_hint, parameter="login_hint", max_length=256)
    prompt = parse_prompt(prompt)
    scopes = list(BASE_SCOPES)
    for feature in features:
        scopes += [s for s in FEATURE_SCOPES[feature] if s not in scopes]
    start = deps.identity.start_signin(
        scopes=scopes, redirect_uri=signin_callback_url(deps.settings), login_hint=login_hint, prompt=prompt
    )
    # The flow's copy of the authorization URL is not needed to redeem the code: leave it out of the cookie.
    flow = {k: v for k, v in start.flow.items() if k != "auth_uri"}
    binding = seal_flow(
        deps,
        FlowKind.SIGNIN,
        start.state,
        {
            "flow": flow,
            "return_to": checked_return,
            "features": list(features),
            "tenant_hint": _hint_domain(login_hint),
        },
    )
    return BrowserFlowStart(redirect_url=start.auth_uri, binding=binding)


def complete_signin(deps: Dependencies, params: Mapping[str, str], binding: str | None) -> SigninOutcome:
    """Raises InvalidFlowState, SigninDenied, AdminConsentRequired (tenant has not consented)."""
    pending = take_flow(deps, FlowKind.SIGNIN, params.get("state"), binding)
    if params.get("error"):
        tenant_hint = pending.data.get("tenant_hint")
        details = {"consent_request_url": consent_request_url(deps.settings, tenant_hint)} if tenant_hint else {}
        raise redirect_error(params, "Microsoft did not sign you in.", **details)
    result = deps.identity.complete_signin(pending.data["flow"], dict(params))
    # The tenant comes from the ID token MSAL just validated, never from the redirect.
    try:
        ensure_tenant_consent(deps, result.tenant_id)
    except AdminConsentRequired as err:
        raise AdminConsentRequired(
            "Your organisation's Office 365 administrator has not granted consent yet, so you cannot "
            "sign in. Ask them to grant it: the consent request email has the link.",
            consent_request_url=consent_request_url(deps.settings, result.tenant_id),
            **{k: v for k, v in err.details.items() if k != "consent_request_url"},
        ) from err
    granted = set(result.scopes)
    features = tuple(sorted(f for f, needed in FEATURE_SCOPES.items() if all(s in granted for s in needed)))
    now = deps.clock.now()

    def write_user() -> User:
        try:
            current: User | None = deps.users.get_user(result.tenant_id, result.user_id)
        except NotFound:
            current = None
        fields: dict[str, Any] = dict(
            username=result.username,
            display_name=result.display_name,
            granted_scopes=result.scopes,
            features=features,
            token_health=TokenHealth.OK,
            signed_in_at=now,
            is_tenant_admin=result.is_tenant_admin,
        )
        if current is None:
            return deps.users.create_user(User(tenant_id=result.tenant_id, user_id=result.user_id, **fields))
        return deps.users.update_user(replace(current, **fields))

    user = retry_on_conflict(write_user)
    if result.serialized_cache is not None:
        deps.token_caches.save_cache(result.tenant_id, result.user_id, result.serialized_cache)
    credential = secrets.token_urlsafe(32)
    deps.sessions.create_session(
        Session(
            session_hash=hash_secret(credential),
            tenant_id=result.tenant_id,
            user_id=result.user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=deps.settings.session_ttl_seconds),
        )
    )
    return SigninOutcome(session_credential=credential, user=user, return_to=pending.data.get("return_to"))


def logout(deps: Dependencies, credential: str | None, *, everywhere: bool = False) -> None:
    """End this session. ``everywhere``: end all of the user's sessions and delete their token
    cache, so no session is left that could only fail. Succeeds when already signed out."""
    if not credential:
        return
    session_hash = hash_secret(credential)
    try:
        session = deps.sessions.get_session(session_hash)
    except NotFound:
        return
    if not everywhere:
        # The user's other sessions keep working, so their token cache stays.
        deps.sessions.delete_session(session_hash)
        return
    deps.sessions.delete_user_sessions(session.tenant_id, session.user_id)
    deps.sessions.delete_session(session_hash)  # in case the index missed it
    deps.token_caches.delete_cache(session.tenant_id, session.user_id)


@dataclass(frozen=True)
class TenantConsentView:
    status: str  # a ConsentStatus value, or "none" when the tenant never consented
    missing_permissions: tuple[str, ...]
    consent_request_url: str | None  # when consent is not granted: the link for the admin


@dataclass(frozen=True)
class TokenHealthView:
    status: str  # a TokenHealth value, ADMIN_CONSENT_REQUIRED, or "unknown" when Microsoft did not answer
    login_url: str | None = None  # when the user must sign in again
    consent_request_url: str | None = None  # when the tenant's consent is gone


@dataclass(frozen=True)
class Me:
    user: User
    consent: TenantConsentView
    token_health: TokenHealthView
    session_expires_at: datetime


def _token_health(deps: Dependencies, ctx: RequestContext, tenant: Tenant | None) -> tuple[str, Tenant | None]:
    """What a calendar request would meet: the tenant as the two-token guard sees it (asked about afresh at
    most every CONSENT_REVERIFY_INTERVAL), then the user's own grant."""
    user = ctx.user
    if user.token_health is not TokenHealth.OK:
        return user.token_health.value, tenant
    if tenant is None or tenant.consent_status is not ConsentStatus.CONSENTED:
        return ADMIN_CONSENT_REQUIRED, tenant
    try:
        user_token(deps, ctx.user)
    except ReauthRequired:
        return TokenHealth.REAUTH_REQUIRED.value, tenant
    except AdminConsentRequired:
        return ADMIN_CONSENT_REQUIRED, current_tenant(deps, user.tenant_id)  # the refresh showed consent is gone
    except ServiceError:
        return "unknown", tenant  # Microsoft did not answer; the grant itself may be fine
    return user.token_health.value, tenant


def describe_me(deps: Dependencies, ctx: RequestContext) -> Me:
    """The signed-in user, their tenant's consent, scopes, features and whether their token works."""
    user = ctx.user
    health, tenant = _token_health(deps, ctx, current_tenant(deps, user.tenant_id))
    status = tenant.consent_status.value if tenant is not None else "none"
    consent = TenantConsentView(
        status,
        tuple(tenant.missing_roles) if tenant is not None else (),
        consent_request_url(deps.settings, user.tenant_id) if status != "consented" else None,
    )
    token_health = TokenHealthView(
        health,
        login_url=login_url(deps.settings) if health == TokenHealth.REAUTH_REQUIRED.value else None,
        consent_request_url=consent_request_url(deps.settings, user.tenant_id)
        if health == ADMIN_CONSENT_REQUIRED
        else None,
    )
    return Me(user, consent, token_health, ctx.session.expires_at)
