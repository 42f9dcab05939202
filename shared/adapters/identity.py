"""Microsoft identity platform through MSAL Python: sign-in, silent refresh, app-only tokens.

MSAL is used unchanged. For the authority hosts MSAL knows (the public and sovereign
Microsoft clouds) it runs with its defaults. For any other host (a private or local
authority) it runs with ``instance_discovery=False``, as MSAL documents for
authorities it cannot validate: otherwise MSAL asks login.microsoftonline.com for
authority aliases after a failed refresh. Each tenant's application objects share one
``http_cache``, so its discovery document is fetched once per worker; MSAL also keeps
error answers of the token endpoint there (an HTTP 400 for 60 seconds), so a verification
that must ask Microsoft afresh (``fresh=True``) starts that tenant's ``http_cache`` anew.

Per worker, each token cache's application object and its last access token are kept in
memory: while the access token is fresh, asking again for the same cache answers from memory
without deserialising anything. "Fresh" follows MSAL (a token within 5 minutes of expiry counts
as expired) for tokens of the lifetimes Entra issues (at least 10 minutes); a shorter-lived
token, which only a private or local authority issues, is used for the first half of its life.

A token Graph refused (``refused``) is never handed out again: the user's refresh token is redeemed
(``force_refresh``, with Graph's claims challenge when it sent one) or a new app-only token is asked
for, once per refusal: concurrent requests that met the same refusal share the one new token.

Both of MSAL's failure forms (an ``error`` in the result dict, and ``ValueError``
for state or nonce mismatches) become our errors here and nowhere else.
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import msal
import requests

from shared.config import Settings
from shared.errors import (
    AdminConsentRequired,
    ConfigurationError,
    InvalidFlowState,
    NotFound,
    ReauthRequired,
    SigninDenied,
    UpstreamError,
    UpstreamUnavailable,
)
from shared.models import AccessToken, SigninResult, SigninStart

logger = logging.getLogger(__name__)

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"

# Directory role template ids (stable across tenants) that may administer the app for their tenant.
ADMIN_ROLE_TEMPLATE_IDS = frozenset(
    {
        "62e90394-69f5-4237-9190-012177145e10",  # Global Administrator
        "e8611ab8-c189-46e8-94e1-60213ab1f814",  # Privileged Role Administrator
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",  # Application Administrator
        "158c047a-c907-4556-b7ef-446551a6b5f7",  # Cloud Application Administrator
    }
)

# invalid_grant sub-codes and errors that only a new interactive sign-in can fix.
REAUTH_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required", "login_required"})
REAUTH_CODES = frozenset({70008, 700082, 50173, 65001, 50076, 50079, 70043, 700084, 54005})
# Client-credential failures that mean "this tenant gives us nothing": consent missing or withdrawn.
NO_CONSENT_CODES = frozenset({700016, 65001, 90002, 500011, 7000112, 50020})
BAD_CREDENTIAL_CODES = frozenset({7000215, 7000222, 700027})
# Entra's claims-challenge page: Graph sends claims challenges only to clients that declare "cp1".
CLIENT_CAPABILITIES = ["cp1"]
# MSAL counts an access token within this many seconds of expiry as expired.
MSAL_EXPIRY_MARGIN = 300
HELD_CACHES = 4096  # token caches (users and tenants) kept in memory per worker
_STRIPES = 64


@dataclass
class _Held:
    """What this worker keeps for one token cache: the MSAL application bound to it and its last token."""

    source: str  # the serialized cache this entry answers for
    parent: str | None  # the cache it was refreshed from: requests that read it before the new one was stored
    app: msal.ConfidentialClientApplication
    cache: msal.SerializableTokenCache
    token: AccessToken
    fresh_until: float  # time.monotonic()

    def answers(self, serialized: str) -> bool:
        return serialized == self.source or serialized == self.parent


def fresh_for(expires_in: int) -> float:
    """How long a token that expires in ``expires_in`` seconds may still be handed out."""
    return expires_in - min(MSAL_EXPIRY_MARGIN, expires_in / 2)


class _NoMsalDebug(logging.Filter):
    """MSAL's DEBUG records carry token-request bodies (authorization codes, PKCE verifiers).
    Drop them whatever level the application logs at; INFO and above carry no secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_MSAL_LOGGERS = (
    "msal.application",
    "msal.token_cache",
    "msal.authority",
    "msal.telemetry",
    "msal.region",
    "msal.oauth2cli.oauth2",
    "msal.oauth2cli.oidc",
    "msal.oauth2cli.authcode",
    "msal.oauth2cli.assertion",
    "msal.throttled_http_client",
    "msal.individual_cache",
)
for _name in _MSAL_LOGGERS:
    logging.getLogger(_name).addFilter(_NoMsalDebug())


def _codes(result: dict[str, Any]) -> set[int]:
    return {int(c) for c in result.get("error_codes") or [] if str(c).isdigit()}


def _describe(result: dict[str, Any]) -> str:
    """A log-safe summary of an MSAL error result: the error and its AADSTS codes, no descriptions."""
    codes = ",".join(f"AADSTS{c}" for c in sorted(_codes(result)))
    return f"{result.get('error')} {codes}".strip()


def jwt_claims(token: str) -> dict[str, Any]:
    """Read the claims of a token we just received from the token endpoint over TLS.

    The signature is not checked: the token came straight from the authority, in
    answer to our authenticated request, and Graph access tokens are not meant to
    be validated by clients. Never use this on a token that arrived from a browser.
    """
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError) as err:
        raise UpstreamError("The identity platform returned an access token that is not a JWT.") from err
    if not isinstance(claims, dict):
        raise UpstreamError("The identity platform returned an access token that is not a JWT.")
    return claims


def _session() -> requests.Session:
    """The session every tenant's and user's token requests share: it keeps no cookies. The identity
    platform may set some on its token endpoint's answers, and a shared jar would send one user's with
    every later user's and tenant's requests; tokens are all the platform needs."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


class MsalIdentity:
    """IdentityProvider over msal.ConfidentialClientApplication."""

    def __init__(self, settings: Settings, *, http_client: requests.Session | None = None) -> None:
        self._settings = settings
        self._client_id = settings.require("CLIENT_ID")
        self._secret = settings.require("CLIENT_SECRET")
        self._host = settings.authority_host
        self._http = http_client or _session()
        self._http_caches: dict[str, dict[Any, Any]] = {}
        known = urlsplit(self._host).hostname in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS
        self._instance_discovery: bool | None = None if known else False
        self._lock = threading.Lock()
        self._held: dict[tuple[str, ...], _Held] = {}
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    # ---- helpers -------------------------------------------------------------------------------
    def _http_cache(self, tenant: str, *, fresh: bool = False) -> dict[Any, Any]:
        with self._lock:
            if fresh or tenant not in self._http_caches:
                self._http_caches[tenant] = {}
            return self._http_caches[tenant]

    def _app(
        self, tenant: str, cache: msal.SerializableTokenCache | None = None, *, fresh: bool = False
    ) -> msal.ConfidentialClientApplication:
        http_cache = self._http_cache(tenant, fresh=fresh)
        try:
            return msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._secret,
                authority=f"{self._host}/{tenant}",
                token_cache=cache,
                instance_discovery=self._instance_discovery,
                # "cp1": the service handles claims challenges, so Entra may issue tokens that continuous
                # access evaluation revokes early, and Graph answers such a token with a challenge.
                client_capabilities=CLIENT_CAPABILITIES,
                http_client=self._http,
                http_cache=http_cache,
                timeout=self._settings.http_timeout_seconds,
            )
        except ValueError as err:
            # MSAL raises ValueError when the authority's discovery document says the tenant is unknown.
            raise NotFound(f"The identity platform does not know the tenant {tenant!r}.") from err
        except requests.RequestException as err:
            raise UpstreamUnavailable("The identity platform did not answer.") from err

    @staticmethod
    def _cache(serialized: str | None) -> msal.SerializableTokenCache:
        cache = msal.SerializableTokenCache()
        if serialized:
            cache.deserialize(serialized)
        return cache

    @staticmethod
    def _changed(cache: msal.SerializableTokenCache) -> str | None:
        return cache.serialize() if cache.has_state_changed else None

    def _stripe(self, key: tuple[str, ...]) -> threading.Lock:
        # One refresh per token cache at a time: concurrent requests for it wait and share the answer.
        return self._stripes[hash(key) % _STRIPES]

    def _recall(self, key: tuple[str, ...], serialized: str | None) -> _Held | None:
        with self._lock:
            held = self._held.get(key)
        return held if held is not None and serialized is not None and held.answers(serialized) else None

    def _keep(
        self,
        key: tuple[str, ...],
        *,
        given: str | None,
        app: msal.ConfidentialClientApplication,
        cache: msal.SerializableTokenCache,
        token: AccessToken,
        expires_in: int,
    ) -> None:
        source = token.serialized_cache or given
        if source is None:
            return
        held = _Held(
            source=source,
            parent=given if token.serialized_cache is not None else None,
            app=app,
            cache=cache,
            token=replace(token, serialized_cache=None),
            fresh_until=time.monotonic() + fresh_for(expires_in),
        )
        with self._lock:
            self._held.pop(key, None)
            self._held[key] = held
            while len(self._held) > HELD_CACHES:
                self._held.pop(next(iter(self._held)))

    def _forget(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._held.pop(key, None)

    # ---- sign-in -------------------------------------------------------------------------------
    def start_signin(
        self, *, scopes: list[str], redirect_uri: str, login_hint: str | None = None, prompt: str | None = None
    ) -> SigninStart:
        app = self._app("organizations")
        # form_post keeps the code out of URLs, browser history and Referer headers (RFC 9700 4.3.1).
        flow = app.initiate_auth_code_flow(
            scopes, redirect_uri=redirect_uri, login_hint=login_hint, prompt=prompt, response_mode="form_post"
        )
        if "error" in flow:
            raise UpstreamError(f"Could not start the sign-in: {_describe(flow)}.")
        return SigninStart(auth_uri=flow["auth_uri"], state=flow["state"], flow=flow)

    def complete_signin(self, flow: dict[str, Any], auth_response: dict[str, str]) -> SigninResult:
        if "error" in auth_response:
            raise SigninDenied("Microsoft did not sign you in.", reason=str(auth_response.get("error"))[:64])
        cache = self._cache(None)
        app = self._app("organizations", cache)
        try:
            result = app.acquire_token_by_auth_code_flow(flow, auth_response)
        except ValueError as err:
            # MSAL's own CSRF and nonce checks: the state did not match the flow, or the ID token's nonce.
            raise InvalidFlowState("The sign-in response does not belong to this sign-in.") from err
        except requests.RequestException as err:
            raise UpstreamUnavailable("The identity platform did not answer.") from err
        if "error" in result:
            logger.warning("Sign-in code redemption failed: %s", _describe(result))
            raise SigninDenied(
                "Microsoft refused to complete the sign-in. Try signing in again.", reason=str(result.get("error"))
            )
        claims = result.get("id_token_claims") or {}
        tenant_id, user_id = claims.get("tid"), claims.get("oid")
        if not tenant_id or not user_id:
            raise UpstreamError("The ID token carries no tenant or user id.")
        roles = set(claims.get("wids") or [])
        return SigninResult(
            tenant_id=str(tenant_id),
            user_id=str(user_id),
            username=str(claims.get("preferred_username") or claims.get("email") or ""),
            display_name=str(claims.get("name") or ""),
            scopes=tuple(sorted(str(result.get("scope", "")).split())),
            is_tenant_admin=bool(roles & ADMIN_ROLE_TEMPLATE_IDS),
            serialized_cache=cache.serialize(),
        )

    # ---- tokens --------------------------------------------------------------------------------
    def acquire_user_token(
        self,
        *,
        tenant_id: str,
        user_id: str,
        serialized_cache: str | None,
        scopes: list[str],
        refused: str | None = None,
        claims_challenge: str | None = None,
    ) -> AccessToken:
        if serialized_cache is None:
            raise ReauthRequired("No stored sign-in for this user.", reason="no_token")
        key = ("user", tenant_id, user_id, *sorted(scopes))
        with self._stripe(key):
            held = self._recall(key, serialized_cache)
            if held is not None and time.monotonic() < held.fresh_until and held.token.token != refused:
                # Fresh, and not the token Graph refused (a request that waited on this stripe finds the
                # token another one just redeemed: one refresh serves them all).
                return held.token
            try:
                return self._refresh_user_token(
                    key,
                    held,
                    tenant_id,
                    user_id,
                    serialized_cache,
                    scopes,
                    force=refused is not None,
                    claims_challenge=claims_challenge,
                )
            except Exception:
                self._forget(key)
                raise

    def _refresh_user_token(
        self,
        key: tuple[str, ...],
        held: _Held | None,
        tenant_id: str,
        user_id: str,
        serialized_cache: str,
        scopes: list[str],
        *,
        force: bool = False,
        claims_challenge: str | None = None,
    ) -> AccessToken:
        if held is not None:
            app, cache = held.app, held.cache
        else:
            cache = self._cache(serialized_cache)
            app = self._app(tenant_id, cache)
        home_id = f"{user_id}.{tenant_id}"
        account = next((a for a in app.get_accounts() if a.get("home_account_id") == home_id), None)
        if account is None:
            raise ReauthRequired("No stored sign-in for this user.", reason="no_token")
        try:
            # force_refresh (or a claims challenge) skips MSAL's cached access token: the refresh token
            # is redeemed, with the challenge's claims when Graph sent one.
            result = app.acquire_token_silent_with_error(
                scopes, account, force_refresh=force, claims_challenge=claims_challenge
            )
        except requests.RequestException as err:
            raise UpstreamUnavailable("The identity platform did not answer.") from err
        if not result:
            raise ReauthRequired("The stored sign-in has no usable token.", reason="no_token")
        if "error" in result:
            codes = _codes(result)
            if result.get("error") in REAUTH_ERRORS or codes & REAUTH_CODES:
                logger.info("User token refresh refused: %s", _describe(result))
                reason = f"AADSTS{min(codes)}" if codes else str(result.get("error"))
                raise ReauthRequired("Your Office 365 sign-in has expired or was revoked.", reason=reason)
            logger.warning("User token refresh failed: %s", _describe(result))
            raise UpstreamError("The identity platform could not refresh the sign-in.")
        token = AccessToken(
            token=result["access_token"],
            tenant_id=tenant_id,
            scopes=tuple(sorted(str(result.get("scope", "")).split())),
            serialized_cache=self._changed(cache),
            user_id=user_id,
        )
        if held is not None and token.scopes == () and held.token.scopes:
            token = replace(token, scopes=held.token.scopes)  # a cache hit carries no scope list
        self._keep(
            key,
            given=serialized_cache,
            app=app,
            cache=cache,
            token=token,
            expires_in=int(result.get("expires_in", 0)),
        )
        return token

    def acquire_app_token(
        self,
        *,
        tenant_id: str,
        serialized_cache: str | None,
        fresh: bool = False,
        refused: str | None = None,
        claims_challenge: str | None = None,
    ) -> AccessToken:
        key = ("app", tenant_id)
        with self._stripe(key):
            held = None if fresh else self._recall(key, serialized_cache)
            if held is not None and time.monotonic() < held.fresh_until and held.token.token != refused:
                return held.token
            if refused is not None:
                # Never from a cache that holds the refused token: an empty one makes MSAL ask the
                # identity platform. Requests still holding the old cache get the new token (parent).
                held = None
            try:
                return self._request_app_token(
                    key,
                    held,
                    tenant_id,
                    serialized_cache,
                    fresh=fresh,
                    bypass=refused is not None,
                    claims_challenge=claims_challenge,
                )
            except Exception:
                self._forget(key)
                raise

    def _request_app_token(
        self,
        key: tuple[str, ...],
        held: _Held | None,
        tenant_id: str,
        serialized_cache: str | None,
        *,
        fresh: bool,
        bypass: bool = False,
        claims_challenge: str | None = None,
    ) -> AccessToken:
        if held is not None:
            app, cache = held.app, held.cache
        else:
            cache = self._cache(None if fresh or bypass else serialized_cache)
            app = self._app(tenant_id, cache, fresh=fresh)
        try:
            result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT_SCOPE], claims_challenge=claims_challenge)
        except requests.RequestException as err:
            raise UpstreamUnavailable("The identity platform did not answer.") from err
        if "error" in result:
            codes = _codes(result)
            logger.warning("App-only token for a tenant failed: %s", _describe(result))
            if codes & BAD_CREDENTIAL_CODES or result.get("error") == "invalid_client" and not codes & NO_CONSENT_CODES:
                raise ConfigurationError("The identity platform refused the app's credentials (CLIENT_SECRET).")
            if codes & NO_CONSENT_CODES or result.get("error") in {"unauthorized_client", "invalid_request"}:
                raise AdminConsentRequired(
                    "The tenant's administrator has not granted (or has withdrawn) consent.",
                    reason=f"AADSTS{min(codes)}" if codes else str(result.get("error")),
                )
            raise UpstreamError("The identity platform did not issue an app-only token.")
        claims = jwt_claims(result["access_token"])
        token = AccessToken(
            token=result["access_token"],
            tenant_id=str(claims.get("tid", "")),
            roles=tuple(sorted(str(r) for r in claims.get("roles") or [])),
            serialized_cache=self._changed(cache),
        )
        self._keep(
            key,
            given=None if fresh else serialized_cache,
            app=app,
            cache=cache,
            token=token,
            expires_in=int(result.get("expires_in", 0)),
        )
        return token

    # ---- tenants -------------------------------------------------------------------------------
    def resolve_tenant(self, tenant: str) -> str:
        url = f"{self._host}/{tenant}/v2.0/.well-known/openid-configuration"
        try:
            response = self._http.get(url, timeout=self._settings.http_timeout_seconds)
        except requests.RequestException as err:
            raise UpstreamUnavailable("The identity platform did not answer.") from err
        if response.status_code in (400, 404):
            raise NotFound(f"The identity platform does not know the tenant {tenant!r}.")
        if response.status_code != 200:
            raise UpstreamError(f"Tenant discovery answered HTTP {response.status_code}.")
        issuer = str(response.json().get("issuer", ""))
        # issuer is https://<host>/<tenant id>/v2.0
        parts = issuer.rstrip("/").split("/")
        if len(parts) < 2 or parts[-1] != "v2.0":
            raise UpstreamError("Tenant discovery returned an issuer of an unexpected form.")
        return parts[-2]

    def admin_consent_url(self, *, tenant: str, state: str, redirect_uri: str) -> str:
        query = urlencode(
            {
                "client_id": self._client_id,
                "scope": GRAPH_DEFAULT_SCOPE,
                "redirect_uri": redirect_uri,
                "state": state,
            }
        )
        return f"{self._host}/{tenant}/v2.0/adminconsent?{query}"
