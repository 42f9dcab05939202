"""Token acquisition: the only place that turns stored token material into Graph access tokens.

Every Graph call goes through ``with_user_token`` (delegated) or ``with_app_token`` (app-only), which
share ``call_with_renewal``: when Graph refuses the token (401), that token is dropped (never handed
out again, from the identity adapter's memory or MSAL's cache), a new one is acquired once (the user's
refresh token redeemed, with Graph's claims challenge when it sent one) and the call is made once
more. A second refusal, or a refresh the identity platform refuses, ends it: no loop.

A refusal marks the user (``reauth_required``) or the tenant (``needs_attention``) so that a broken
grant never shows up as an empty calendar and is not retried in a loop. A user whose refresh is
refused in a tenant whose consent is gone is not marked: the tenant is (``admin_consent_required``).

Token caches are stored last-writer-wins in their own rows: when two requests refresh at once, the
loser's write is simply replaced by the winner's (both hold working tokens), and a conflict on a
cache write never fails the request that made it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from shared.conflicts import retry_on_conflict
from shared.errors import ConcurrencyConflict, GraphRequestFailed, ReauthRequired
from shared.identity.tenant_consent import (
    check_with_microsoft,
    consent_required,
    evaluate_roles,
    mark_tenant,
    reverify_consent,
    tenant_consent_required,
)
from shared.models import AccessToken, ConsentStatus, Tenant, TokenHealth, User
from shared.ports import Dependencies
from shared.urls import login_url

logger = logging.getLogger(__name__)

# The delegated scopes a calendar call needs (a subset of what sign-in asks for).
USER_TOKEN_SCOPES = ["Calendars.ReadWrite.Shared", "User.ReadBasic.All", "MailboxSettings.Read"]
SIGN_IN_EXPIRED = "Your Office 365 sign-in has expired or was revoked. Sign in again."

T = TypeVar("T")


def app_token(
    deps: Dependencies,
    tenant_id: str,
    *,
    known: Tenant | None = None,
    refused: AccessToken | None = None,
    claims_challenge: str | None = None,
) -> AccessToken:
    """An app-only Graph token for the tenant; a refusal, or a token without the roles the service
    needs, marks the tenant and raises AdminConsentRequired. ``known``: the tenant record the caller
    already read (the tenant row is written only when the token proves something else). ``refused``:
    the token Graph just refused, replaced by a new one."""
    token, _tenant = check_with_microsoft(
        deps, tenant_id, known=known, refused=refused, claims_challenge=claims_challenge
    )
    _status, missing, _reason = evaluate_roles(token.roles)
    if missing:
        # A token without the roles would only earn 403s from Graph: never use it.
        raise consent_required(
            deps,
            tenant_id,
            "The administrator's consent lacks permissions the service needs.",
            missing_permissions=list(missing),
        )
    return token


def call_with_renewal(
    call: Callable[[AccessToken], T], token: AccessToken, renew: Callable[[GraphRequestFailed], AccessToken]
) -> T:
    """The one place a Graph call meets a refused token: run ``call`` with ``token``; if Graph answers
    401, get a new token from ``renew`` (given the refusal, with its claims challenge) and run ``call``
    exactly once more. Anything else, and a second refusal, reaches the caller."""
    try:
        return call(token)
    except GraphRequestFailed as err:
        if not err.token_refused:
            raise
        refusal = err
    logger.info(
        "Graph refused an access token%s; acquiring a new one and retrying once",
        " with a claims challenge" if refusal.claims_challenge else "",
    )
    return call(renew(refusal))


def with_app_token(
    deps: Dependencies, tenant_id: str, call: Callable[[AccessToken], T], *, known: Tenant | None = None
) -> T:
    """Run a Graph call with the tenant's app-only token. If Graph refuses the token (revoked early,
    signing keys rolled), a new one is acquired and the call made once more; if Graph refuses that
    one too, the tenant is marked needs_attention and AdminConsentRequired raised."""
    token = app_token(deps, tenant_id, known=known)

    def renew(refusal: GraphRequestFailed) -> AccessToken:
        return app_token(deps, tenant_id, known=known, refused=token, claims_challenge=refusal.claims_challenge)

    try:
        return call_with_renewal(call, token, renew)
    except GraphRequestFailed as err:
        if not err.token_refused:
            raise
        logger.warning("Graph refused a new app-only token of a tenant too; marking the tenant")
        mark_tenant(deps, tenant_id, ConsentStatus.NEEDS_ATTENTION, "app-only token refused by Graph")
        raise consent_required(
            deps, tenant_id, "Microsoft Graph refused the app's access to your organisation's calendars."
        ) from err


def with_user_token(
    deps: Dependencies,
    user: User,
    call: Callable[[AccessToken], T],
    *,
    token: AccessToken | None = None,
    scopes: Sequence[str] | None = None,
) -> T:
    """Run a Graph call with the user's delegated token (``token``: the one the guard already
    acquired; ``scopes``: the delegated scopes the call needs, the calendar's by default). If Graph refuses
    it, the refresh token is redeemed once (with Graph's claims challenge) and the call made once more.
    Raises ReauthRequired (the user marked) when the refresh is refused or Graph refuses the new token too,
    AdminConsentRequired when the tenant's consent is gone."""
    first = token if token is not None else user_token(deps, user, scopes=scopes)

    def renew(refusal: GraphRequestFailed) -> AccessToken:
        return user_token(deps, user, refused=first, claims_challenge=refusal.claims_challenge, scopes=scopes)

    try:
        return call_with_renewal(call, first, renew)
    except GraphRequestFailed as err:
        if not err.token_refused:
            raise
        logger.warning("Graph refused a freshly redeemed user token too; marking the user")
        mark_user_reauth(deps, user)
        raise reauth_required(
            deps, "Microsoft Graph refused your Office 365 sign-in. Sign in again.", reason="token_refused"
        ) from err


def user_token(
    deps: Dependencies,
    user: User,
    *,
    refused: AccessToken | None = None,
    claims_challenge: str | None = None,
    scopes: Sequence[str] | None = None,
) -> AccessToken:
    """A delegated Graph token for the signed-in user (``refused``: the token Graph just refused, so
    the refresh token is redeemed; ``scopes``: what the token is for, the calendar's by default). A refusal
    marks the user reauth_required, unless the tenant's consent turns out to be gone: then the tenant is
    marked and AdminConsentRequired raised."""
    cache = deps.token_caches.load_cache(user.tenant_id, user.user_id)
    try:
        token = deps.identity.acquire_user_token(
            tenant_id=user.tenant_id,
            user_id=user.user_id,
            serialized_cache=cache,
            scopes=list(scopes) if scopes is not None else USER_TOKEN_SCOPES,
            refused=refused.token if refused is not None else None,
            claims_challenge=claims_challenge,
        )
    except ReauthRequired as err:
        reason = err.details.get("reason")
        if reason != "no_token":
            # Withdrawn admin consent takes the tenant-wide delegated grant with it, so the refresh
            # fails (AADSTS65001) for everyone: that is the tenant's to fix, not the user's.
            _blame_the_tenant_if_consent_is_gone(deps, user.tenant_id)
        mark_user_reauth(deps, user)
        raise reauth_required(deps, SIGN_IN_EXPIRED, reason=reason) from err
    if token.serialized_cache is not None:
        try:
            deps.token_caches.save_cache(user.tenant_id, user.user_id, token.serialized_cache)
        except ConcurrencyConflict:
            # Another request of this user stored its refreshed cache first: theirs works as well as ours.
            logger.info("Another request stored the user's token cache first; keeping theirs")
    return token


def _blame_the_tenant_if_consent_is_gone(deps: Dependencies, tenant_id: str) -> None:
    """Raises AdminConsentRequired when a new app-only token shows the tenant's consent is gone."""
    tenant = reverify_consent(deps, tenant_id)
    if tenant is not None and tenant.consent_status is not ConsentStatus.CONSENTED:
        raise tenant_consent_required(deps, tenant)


def reauth_required(deps: Dependencies, message: str, **details: Any) -> ReauthRequired:
    """The one answer to a user whose own grant no longer yields a token Graph takes (Graph's 401 to a
    fresh token, a refused refresh, a user already marked): 401 ``reauth_required`` with the sign-in link."""
    return ReauthRequired(message, login_url=login_url(deps.settings), **details)


def mark_user_reauth(deps: Dependencies, user: User) -> None:
    def write() -> None:
        current = deps.users.get_user(user.tenant_id, user.user_id)
        if current.token_health is not TokenHealth.REAUTH_REQUIRED:
            deps.users.update_user(replace(current, token_health=TokenHealth.REAUTH_REQUIRED))

    try:
        retry_on_conflict(write)
    except ConcurrencyConflict:
        logger.info("Another writer kept updating the user; the reauth mark is left to the next refusal")
