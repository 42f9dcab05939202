"""Token acquisition: the only place that turns stored token material into Graph access tokens.

A refusal marks the user (``reauth_required``) or the tenant (``needs_attention``) so that a broken
grant never shows up as an empty calendar and is not retried in a loop. Token caches are stored
last-writer-wins in their own rows: when two requests refresh at once, the loser's write is
simply replaced by the winner's (both hold working tokens), and a conflict on a cache write never
fails the request that made it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from shared.conflicts import retry_on_conflict
from shared.errors import ConcurrencyConflict, GraphRequestFailed, ReauthRequired
from shared.models import AccessToken, Tenant, TokenHealth, User
from shared.ports import Dependencies
from shared.tenant_consent import APP_CACHE_OWNER, check_with_microsoft, consent_required, evaluate_roles
from shared.urls import login_url

logger = logging.getLogger(__name__)

# The delegated scopes a calendar call needs (a subset of what sign-in asks for).
USER_TOKEN_SCOPES = ["Calendars.ReadWrite.Shared", "User.ReadBasic.All", "MailboxSettings.Read"]

T = TypeVar("T")


def app_token(deps: Dependencies, tenant_id: str, *, known: Tenant | None = None) -> AccessToken:
    """An app-only Graph token for the tenant; a refusal, or a token without the roles the service
    needs, marks the tenant and raises AdminConsentRequired. ``known``: the tenant record the caller
    already read (the tenant row is written only when the token proves something else)."""
    token, _tenant = check_with_microsoft(deps, tenant_id, known=known)
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
        return call(app_token(deps, tenant_id, known=known))


def user_token(deps: Dependencies, user: User) -> AccessToken:
    """A delegated Graph token for the signed-in user; a refusal marks the user reauth_required."""
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
        try:
            deps.token_caches.save_cache(user.tenant_id, user.user_id, token.serialized_cache)
        except ConcurrencyConflict:
            # Another request of this user stored its refreshed cache first: theirs works as well as ours.
            logger.info("Another request stored the user's token cache first; keeping theirs")
    return token


def mark_user_reauth(deps: Dependencies, user: User) -> None:
    def write() -> None:
        current = deps.users.get_user(user.tenant_id, user.user_id)
        if current.token_health is not TokenHealth.REAUTH_REQUIRED:
            deps.users.update_user(replace(current, token_health=TokenHealth.REAUTH_REQUIRED))

    try:
        retry_on_conflict(write)
    except ConcurrencyConflict:
        logger.info("Another writer kept updating the user; the reauth mark is left to the next refusal")
