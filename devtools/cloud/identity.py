"""The local Entra ID (identity platform v2): discovery, /authorize, /token, admin consent, sign-in pages.

Follows Microsoft's protocol documentation (v2-oauth2-auth-code-flow, v2-oauth2-client-creds-grant-
flow, v2-admin-consent). Noted choices where the documentation is silent or this cloud differs:

* PKCE: Entra supports ``S256`` and ``plain`` (a challenge without method is ``plain``) and does not
  require PKCE from confidential clients; so does this cloud. A given challenge is always verified.
* Loopback redirect URIs: Entra ignores the port of ``http://localhost`` / ``http://127.0.0.1``
  redirect URIs when matching ("the port component is ignored" for loopback addresses), so a
  registered ``http://localhost:7071/api/auth/callback`` also accepts ``http://127.0.0.1:<any>/...``
  with the same path. Everything else must match exactly.
* Client credentials for a tenant where nobody consented: 400 ``unauthorized_client`` AADSTS700016
  (the app is not in the directory). With consent but no granted roles the token has no ``roles``.
* A refresh or redemption that needs delegated consent the user or tenant no longer has:
  ``consent_required`` AADSTS65001 (documented as a token-endpoint error: "send the user back to
  the /authorize endpoint").
* A token request whose ``claims`` parameter declares the ``cp1`` client capability gets a token that
  continuous access evaluation covers: once revoked (``expire_access_tokens``, or a user's sign-in
  sessions revoked), Graph answers it 401 with a claims challenge in ``WWW-Authenticate``; the
  challenge's ``nbf`` is always met by a new token, which is issued now.
* ``/v2.0/adminconsent`` with tenant ``common``: the documentation says not to; no AADSTS number is
  documented for it, so the redirect carries ``invalid_request`` with a plain description.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from devtools.cloud import consent, tokens
from devtools.cloud.aadsts import AadstsError
from devtools.cloud.signin import (
    CODE_LIFETIME_SECONDS,
    DEMO_PASSWORD,
    PROMPTS,
    AuthCode,
    Pending,
    add_code,
    add_pending,
    new_opaque,
    signin_state,
)
from devtools.cloud.state import AppRegistration, RefreshTokenGrant, Tenant, User, World, utcnow

SESSION_COOKIE = "ESTSAUTH"
MULTI_TENANT_SEGMENTS = ("common", "organizations")


# ---- helpers ------------------------------------------------------------------------------------
def resolve_tenant(world: World, segment: str) -> Tenant | None:
    """The tenant a path segment names; None for ``common``/``organizations``.

    Raises ``AadstsError`` 90002 for a tenant this cloud does not know (``consumers`` included:
    personal Microsoft accounts do not exist here).
    """
    if segment.lower() in MULTI_TENANT_SEGMENTS:
        return None
    tenant = world.tenant_by_id_or_domain(segment)
    if tenant is None:
        raise AadstsError("invalid_tenant", 90002, tenant=segment)
    return tenant


def redirect_uri_allowed(app: AppRegistration, redirect_uri: str) -> bool:
    if redirect_uri in app.redirect_uris:
        return True
    asked = urlsplit(redirect_uri)
    if asked.scheme != "http" or asked.hostname not in ("localhost", "127.0.0.1", "::1"):
        return False
    for registered in app.redirect_uris:
        reg = urlsplit(registered)
        # Loopback: the port is ignored; scheme, path and query must still match.
        loopback = reg.scheme == "http" and reg.hostname in ("localhost", "127.0.0.1", "::1")
        if loopback and reg.path == asked.path and reg.query == asked.query:
            return True
    return False


def _with_params(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def respond_to_client(redirect_uri: str, response_mode: str, params: Mapping[str, str]) -> Response:
    """Deliver an authorization response the way ``response_mode`` asks."""
    if response_mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>' for k, v in params.items()
        )
        page = (
            "<html><head><title>Working...</title></head>"
            '<body onload="document.forms[0].submit()">'
            f'<form method="POST" name="hiddenform" action="{html.escape(redirect_uri)}">{fields}'
            "<noscript><p>Script is disabled. Click Submit to continue.</p>"
            '<input type="submit" value="Submit"/></noscript></form></body></html>'
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})
    if response_mode == "fragment":
        return RedirectResponse(f"{redirect_uri}#{urlencode(dict(params))}", status_code=302)
    return RedirectResponse(_with_params(redirect_uri, params), status_code=302)


def _error_params(err: AadstsError, state: str | None) -> dict[str, str]:
    params = {"error": err.error, "error_description": err.short_description}
    if err.suberror:
        params["error_subcode"] = err.suberror
    if state is not None:
        params["state"] = state
    return params


LOCAL_NOTICE = (
    "<p id='local-notice' style='background:#fff4ce;padding:.5rem;border-radius:4px'>"
    "This is the <strong>local Microsoft cloud</strong>: the project's stand-in for Microsoft's sign-in "
    "(devtools/cloud), running on your machine. No real account is involved.</p>"
)


def _account_banner(account: User | None) -> str:
    if account is None:
        return "<p id='account'>Not signed in.</p>"
    return (
        f"<p id='account'>Signed in as <strong>{html.escape(account.display_name)}</strong> "
        f"&lt;{html.escape(account.user_principal_name)}&gt;</p>"
    )


def _page(title: str, body: str, status: int = 200, *, account: User | None = None) -> HTMLResponse:
    """A page of the local Entra ID: it always says it is the local stand-in and who is signed in."""
    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:Segoe UI,sans-serif;max-width:32rem;margin:3rem auto}"
        "label{display:block;margin:.3rem 0}button{margin:.5rem .5rem 0 0}</style></head>"
        f"<body>{LOCAL_NOTICE}{_account_banner(account)}<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers={"Cache-Control": "no-store"})


def error_page(err: AadstsError, account: User | None = None) -> HTMLResponse:
    """Errors Entra shows in the browser because the redirect URI cannot be trusted."""
    return _page(
        "Sign in",
        f"<p>Sorry, but we're having trouble signing you in.</p><p id='error'>{html.escape(err.short_description)}</p>",
        status=400,
        account=account,
    )


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, the only form encoding OAuth uses."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _client_info(user: User) -> str:
    raw = json.dumps({"uid": user.id, "utid": user.tenant_id}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _verify_pkce(challenge: str, method: str | None, verifier: str | None) -> bool:
    if not verifier:
        return False
    if (method or "plain") == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


def _sign_in_expired() -> Response:
    return error_page(AadstsError("invalid_request", None, message="The sign-in request has expired. Start again."))


class Identity:
    """Request handlers bound to one world."""

    def __init__(self, world: World) -> None:
        self.world = world

    # ---- discovery --------------------------------------------------------------------------------
    async def instance_discovery(self, request: Request) -> Response:
        """The documented instance-discovery answer; only this cloud's own host is a known instance."""
        base = tokens.authority_host(self.world, request)
        endpoint = request.query_params.get("authorization_endpoint", "")
        parts = urlsplit(endpoint)
        own_host = urlsplit(base).hostname
        segments = [s for s in parts.path.split("/") if s]
        if parts.scheme != "https" or parts.hostname != own_host or not segments:
            return JSONResponse(
                {
                    "error": "invalid_instance",
                    "error_description": "AADSTS50049: Unknown or invalid instance.",
                    "error_codes": [50049],
                },
                status_code=400,
            )
        tenant = segments[0]
        host = urlsplit(base).netloc
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    async def openid_configuration(self, request: Request) -> Response:
        segment = request.path_params["tenant"]
        try:
            tenant = resolve_tenant(self.world, segment)
        except AadstsError as err:
            return err.response()
        base = tokens.authority_host(self.world, request)
        # For common/organizations the issuer is a template, as Microsoft's own document shows.
        issuer_tid = tenant.tenant_id if tenant else "{tenantid}"
        path_tenant = tenant.tenant_id if tenant else segment.lower()
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{path_tenant}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "jwks_uri": f"{base}/{path_tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{issuer_tid}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/{path_tenant}/oauth2/v2.0/authorize",
                "code_challenge_methods_supported": ["plain", "S256"],
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{path_tenant}/oauth2/v2.0/logout",
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "preferred_username",
                    "name",
                    "tid",
                    "ver",
                    "email",
                    "oid",
                ],
                "tenant_region_scope": "NA",
                "cloud_instance_name": urlsplit(base).hostname,
                "msgraph_host": urlsplit(base).netloc,
            }
        )

    async def keys(self, request: Request) -> Response:
        try:
            resolve_tenant(self.world, request.path_params["tenant"])
        except AadstsError as err:
            return err.response()
        return JSONResponse(tokens.jwks(self.world))

    # ---- browser sessions ---------------------------------------------------------------------------
    def _session_user(self, request: Request) -> User | None:
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return None
        state = signin_state(self.world)
        with self.world.lock:
            user_id = state.sessions.get(value)
            return self.world.users.get(user_id) if user_id else None

    def _browser_accounts(self, request: Request) -> list[User]:
        """Every account signed in with this browser, the active one first (the account picker's list)."""
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return []
        state = signin_state(self.world)
        with self.world.lock:
            active = state.sessions.get(value)
            ids = ([active] if active else []) + [i for i in state.accounts.get(value, []) if i != active]
            return [self.world.users[i] for i in ids if i in self.world.users]

    def _start_session(self, request: Request, response: Response, user: User) -> None:
        """Make ``user`` the browser's active account; accounts signed in before stay in its picker."""
        state = signin_state(self.world)
        value = request.cookies.get(SESSION_COOKIE)
        with self.world.lock:
            if not value or value not in state.sessions:
                value = new_opaque()
            state.sessions[value] = user.id
            known = state.accounts.setdefault(value, [])
            if user.id not in known:
                known.append(user.id)
        response.set_cookie(SESSION_COOKIE, value, secure=True, httponly=True, samesite="lax", path="/")

    def _user_for_hint(self, hint: str, tenant: Tenant | None) -> User | None:
        with self.world.lock:
            tenants = [tenant] if tenant else list(self.world.tenants.values())
            for candidate in tenants:
                user = self.world.find_user(candidate.tenant_id, hint)
                if user is not None:
                    return user
        return None

    def _auto_user(self, tenant: Tenant | None, login_hint: str | None) -> User | None:
        """The user the automatic browser signs in as, if automatic sign-in is on."""
        auto = signin_state(self.world).auto
        if auto is None:
            return None
        if auto.user_id is not None:
            with self.world.lock:
                return self.world.users.get(auto.user_id)
        if login_hint:
            return self._user_for_hint(login_hint, tenant)
        return None

    # ---- /authorize ---------------------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        if request.method == "POST":
            params = await read_form(request)
        else:
            params = dict(request.query_params)
        return self._authorize(request, request.path_params["tenant"], params)

    def _app(self, client_id: str) -> AppRegistration:
        if not client_id:
            raise AadstsError("invalid_request", 900144, parameter="client_id")
        with self.world.lock:
            app = self.world.apps.get(client_id.lower())
        if app is None:
            raise AadstsError("unauthorized_client", 700016, client_id=client_id, tenant="the directory")
        return app

    def _client_redirect(self, params: dict[str, str]) -> tuple[AppRegistration, str]:
        """The requesting app and its redirect URI, once the URI is known to be registered for it."""
        app = self._app(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            raise AadstsError("invalid_request", 900144, parameter="redirect_uri")
        if not redirect_uri_allowed(app, redirect_uri):
            raise AadstsError("invalid_request", 50011, redirect_uri=redirect_uri, client_id=app.client_id)
        return app, redirect_uri

    def _known_user(self, request: Request, tenant: Tenant | None, params: dict[str, str]) -> User | None:
        """The user to continue as without asking, as Entra decides it (v2-oauth2-auth-code-flow, ``prompt``
        and ``login_hint``): the automatic user; else the browser's signed-in account, unless ``prompt=login``
        or ``select_account`` asks anew or ``login_hint`` names another account. ``prompt=none`` never asks:
        no session is ``login_required`` (AADSTS50058), a session of another account than the hint is
        ``interaction_required`` (AADSTS16000, the account-selection interrupt)."""
        hint = params.get("login_hint") or None
        user = self._auto_user(tenant, hint)
        if user is not None:
            return user
        prompt = params.get("prompt", "")
        session_user = self._session_user(request)
        hinted = self._user_for_hint(hint, tenant) if hint else None
        matches_hint = session_user is not None and (
            hint is None or (hinted is not None and hinted.id == session_user.id)
        )
        if prompt == "none":
            if session_user is None:
                raise AadstsError("login_required", 50058)
            if not matches_hint:
                raise AadstsError("interaction_required", 16000)
            return session_user
        if prompt in ("login", "select_account") or not matches_hint:
            return None
        return session_user

    def _sign_in_or_continue(
        self,
        request: Request,
        kind: str,
        segment: str,
        tenant: Tenant | None,
        params: dict[str, str],
        user: User | None,
    ) -> Response:
        """Show the sign-in page when no user is known, else continue the flow as that user."""
        if user is None:
            ctx = add_pending(self.world, Pending(kind=kind, tenant_segment=segment, params=params))
            accounts = self._browser_accounts(request)
            hint = params.get("login_hint") or None
            hinted = self._user_for_hint(hint, tenant) if hint else None
            known = hinted is None or any(u.id == hinted.id for u in accounts)
            if params.get("prompt") == "select_account" and accounts and known:
                # login_hint "pre-fill[s] the username/email address field of the sign-in page"
                # (v2-oauth2-auth-code-flow): a hinted account this browser knows is offered first; one it
                # does not know goes straight to the sign-in page with that account filled in. How the
                # picker orders its accounts for a hint is not documented; this is the behaviour users see.
                first = [u for u in accounts if hinted is not None and u.id == hinted.id]
                return self._picker_page(segment, ctx, first + [u for u in accounts if u not in first])
            return self._sign_in_page(segment, tenant, ctx, hint, account=accounts[0] if accounts else None)
        response = self._after_sign_in(request, Pending(kind, segment, params, user.id), user)
        # The browser now holds a session for this user, as Entra's cookie would give it.
        self._start_session(request, response, user)
        return response

    def _authorize(self, request: Request, segment: str, params: dict[str, str]) -> Response:
        # Failures before the redirect URI is trusted are shown in the browser, never redirected.
        try:
            tenant = resolve_tenant(self.world, segment)
            app, redirect_uri = self._client_redirect(params)
        except AadstsError as err:
            return error_page(err)

        state = params.get("state")
        mode = params.get("response_mode", "query")
        if mode not in ("query", "fragment", "form_post"):
            mode = "query"
        try:
            response_type = params.get("response_type", "")
            if not response_type:
                raise AadstsError("invalid_request", 900144, parameter="response_type")
            if response_type != "code":
                if set(response_type.split()) - {"code", "id_token", "token"}:
                    raise AadstsError(
                        "unsupported_response_type", None, message=f"Unsupported response_type '{response_type}'."
                    )
                raise AadstsError("unsupported_response_type", 700054, response_type=response_type)
            if "scope" not in params or not params["scope"].strip():
                raise AadstsError("invalid_request", 900144, parameter="scope")
            consent.parse_scopes(params["scope"], app)
            method = params.get("code_challenge_method")
            if method is not None and method not in ("plain", "S256"):
                raise AadstsError("invalid_request", None, message=f"Unsupported code_challenge_method '{method}'.")
            if method is not None and not params.get("code_challenge"):
                raise AadstsError("invalid_request", 900144, parameter="code_challenge")
            prompt = params.get("prompt")
            if prompt is not None and prompt not in PROMPTS:
                # Entra documents the four values; no AADSTS number is documented for another one.
                raise AadstsError("invalid_request", None, message=f"Invalid value '{prompt}' for parameter 'prompt'.")
            user = self._known_user(request, tenant, params)
        except AadstsError as err:
            return respond_to_client(redirect_uri, mode, _error_params(err, state))
        return self._sign_in_or_continue(request, "authorize", segment, tenant, params, user)

    def _check_user_for_tenant(self, user: User, tenant: Tenant | None) -> AadstsError | None:
        if user.kind != "user":
            # Shared mailboxes are backed by disabled accounts.
            return AadstsError("invalid_request", 50057)
        if tenant is not None and user.tenant_id != tenant.tenant_id:
            return AadstsError("invalid_request", 50020, upn=user.user_principal_name, tenant=tenant.tenant_id)
        return None

    def _after_sign_in(self, request: Request, pending: Pending, user: User) -> Response:
        """Continue a flow once the user is known: consent if needed, then answer the client."""
        segment = pending.tenant_segment
        tenant = resolve_tenant(self.world, segment)
        problem = self._check_user_for_tenant(user, tenant)
        if problem is not None:
            return error_page(problem, account=self._session_user(request))
        if pending.kind != "authorize":
            return self._admin_after_sign_in(request, pending, user)

        params = pending.params
        app = self._app(params["client_id"])
        redirect_uri = params["redirect_uri"]
        mode = params.get("response_mode", "query")
        state = params.get("state")
        scope_request = consent.parse_scopes(params["scope"], app)
        missing = consent.missing_consent(self.world, user, app, scope_request)
        prompt = params.get("prompt", "")
        if missing or prompt == "consent":
            if prompt == "none":
                err = AadstsError("consent_required", 65001, client_id=app.client_id, app_name=app.display_name)
                return respond_to_client(redirect_uri, mode, _error_params(err, state))
            wanted = scope_request.delegated_needed(app)
            if consent.needs_admin(missing) and not user.is_admin:
                err = AadstsError("access_denied", 90094)
                return respond_to_client(redirect_uri, mode, _error_params(err, state))
            auto = signin_state(self.world).auto
            if auto is None:
                pending.user_id = user.id
                ctx = add_pending(self.world, pending)
                return self._consent_page(segment, ctx, app, sorted(wanted), admin=False, account=user)
            if auto.consent != "accept":
                err = AadstsError("access_denied", 65004, suberror="cancel")
                return respond_to_client(redirect_uri, mode, _error_params(err, state))
            consent.grant_user_consent(self.world, user, app.client_id, wanted)
        return self._issue_code(pending, app, user)

    def _issue_code(self, pending: Pending, app: AppRegistration, user: User) -> Response:
        params = pending.params
        challenge = params.get("code_challenge") or None
        code = add_code(
            self.world,
            AuthCode(
                client_id=app.client_id,
                redirect_uri=params["redirect_uri"],
                tenant_id=user.tenant_id,
                user_id=user.id,
                request_scope=params["scope"],
                nonce=params.get("nonce"),
                code_challenge=challenge,
                code_challenge_method=(params.get("code_challenge_method") or "plain") if challenge else None,
                expires_at=time.time() + CODE_LIFETIME_SECONDS,
            ),
        )
        answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        answer["session_state"] = hashlib.sha256(user.id.encode()).hexdigest()[:36]
        if params.get("client_info") == "1":
            answer["client_info"] = _client_info(user)
        return respond_to_client(params["redirect_uri"], params.get("response_mode", "query"), answer)

    # ---- pages ------------------------------------------------------------------------------------------
    def _sign_in_page(
        self,
        segment: str,
        tenant: Tenant | None,
        ctx: str,
        login_hint: str | None,
        error: str | None = None,
        *,
        account: User | None = None,
    ) -> HTMLResponse:
        with self.world.lock:
            tenants = [tenant] if tenant else sorted(self.world.tenants.values(), key=lambda t: t.display_name)
            options = []
            for t in tenants:
                # The hinted account first (and chosen), the others after it.
                for u in sorted(
                    self.world.tenant_users(t.tenant_id),
                    key=lambda u: (not _is_hinted(u, login_hint), u.user_principal_name),
                ):
                    if u.kind != "user":
                        continue
                    checked = " checked" if _is_hinted(u, login_hint) else ""
                    admin = " (admin)" if u.is_admin else ""
                    options.append(
                        f"<label><input type='radio' name='login' value='{html.escape(u.user_principal_name)}'"
                        f"{checked}/> {html.escape(u.display_name)} &lt;{html.escape(u.user_principal_name)}&gt;"
                        f" {html.escape(t.display_name)}{admin}</label>"
                    )
        notice = f"<p id='error' style='color:#a00'>{html.escape(error)}</p>" if error else ""
        hinted = self._user_for_hint(login_hint, tenant) if login_hint else None
        ask = (
            f"<p id='enter-password'>Enter the password for <strong>{html.escape(hinted.user_principal_name)}</strong>"
            " (chosen below), or pick another account.</p>"
            if hinted is not None
            else ""
        ) + "<p>Pick an account</p>"
        body = (
            f"{notice}{ask}"
            f"<form method='POST' action='/{html.escape(segment)}/login'>"
            f"<input type='hidden' name='ctx' value='{html.escape(ctx)}'/>{''.join(options)}"
            "<label>Password <input type='password' name='passwd'/></label>"
            "<button type='submit'>Sign in</button></form>"
            f"<p id='demo-password'>Demo password for every account: <code>{html.escape(DEMO_PASSWORD)}</code></p>"
        )
        return _page("Sign in", body, status=200 if not error else 400, account=account)

    def _picker_page(self, segment: str, ctx: str, accounts: list[User]) -> HTMLResponse:
        """``prompt=select_account``: the accounts signed in with this browser, and "Use another account"."""
        action = f"/{html.escape(segment)}/pick"
        hidden = f"<input type='hidden' name='ctx' value='{html.escape(ctx)}'/>"
        choices = "".join(
            f"<form method='POST' action='{action}'>{hidden}"
            f"<input type='hidden' name='account' value='{html.escape(u.user_principal_name)}'/>"
            f"<button type='submit'>{html.escape(u.display_name)} &lt;{html.escape(u.user_principal_name)}&gt;"
            "</button></form>"
            for u in accounts
        )
        another = (
            f"<form method='POST' action='{action}'>{hidden}<input type='hidden' name='account' value=''/>"
            "<button type='submit' id='use-another-account'>Use another account</button></form>"
        )
        return _page("Pick an account", choices + another, account=accounts[0])

    def _consent_page(
        self,
        segment: str,
        ctx: str,
        app: AppRegistration,
        scopes: list[str],
        *,
        admin: bool,
        roles: list[str] | None = None,
        account: User | None = None,
    ) -> HTMLResponse:
        items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        role_items = "".join(f"<li>{html.escape(r)} (application)</li>" for r in roles or [])
        org = "<p>Consent on behalf of your organization.</p>" if admin else ""
        body = (
            f"<p><strong>{html.escape(app.display_name)}</strong> needs permission to:</p>"
            f"<ul>{items}{role_items}</ul>{org}"
            f"<form method='POST' action='/{html.escape(segment)}/consent'>"
            f"<input type='hidden' name='ctx' value='{html.escape(ctx)}'/>"
            "<button type='submit' name='answer' value='accept'>Accept</button>"
            "<button type='submit' name='answer' value='cancel'>Cancel</button></form>"
        )
        return _page("Permissions requested", body, account=account)

    def _peek_pending(self, ctx: str) -> Pending | None:
        state = signin_state(self.world)
        with self.world.lock:
            return state.pending.get(ctx)

    def _take_pending(self, ctx: str) -> Pending | None:
        state = signin_state(self.world)
        with self.world.lock:
            return state.pending.pop(ctx, None)

    async def login_post(self, request: Request) -> Response:
        form = await read_form(request)
        ctx = str(form.get("ctx", ""))
        pending = self._peek_pending(ctx)
        if pending is None:
            return _sign_in_expired()
        tenant = resolve_tenant(self.world, pending.tenant_segment)
        login = str(form.get("login", ""))
        password = str(form.get("passwd", ""))
        user = self._user_for_hint(login, tenant) if login else None
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            err = AadstsError("invalid_request", 50126)
            return self._sign_in_page(
                pending.tenant_segment,
                tenant,
                ctx,
                login or None,
                error=err.short_description,
                account=self._session_user(request),
            )
        self._take_pending(ctx)
        response = self._after_sign_in(request, pending, user)
        self._start_session(request, response, user)
        return response

    async def pick_post(self, request: Request) -> Response:
        """The account picker's answer: continue as an account of this browser, or ask for credentials."""
        form = await read_form(request)
        ctx = str(form.get("ctx", ""))
        pending = self._peek_pending(ctx)
        if pending is None:
            return _sign_in_expired()
        tenant = resolve_tenant(self.world, pending.tenant_segment)
        chosen = str(form.get("account", "")).lower()
        accounts = self._browser_accounts(request)
        user = next((u for u in accounts if u.user_principal_name.lower() == chosen), None) if chosen else None
        if user is None:
            hint = pending.params.get("login_hint")
            return self._sign_in_page(
                pending.tenant_segment, tenant, ctx, hint, account=accounts[0] if accounts else None
            )
        self._take_pending(ctx)
        response = self._after_sign_in(request, pending, user)
        self._start_session(request, response, user)
        return response

    # ---- sign-out ---------------------------------------------------------------------------------------
    async def logout(self, request: Request) -> Response:
        """The advertised ``end_session_endpoint`` (v2-protocols-oidc, "Send a sign-out request"): ends the
        browser's session, then redirects to ``post_logout_redirect_uri`` when it is one of the app's
        registered redirect URIs (the app named by ``client_id``, else by the ``id_token_hint``'s audience,
        else any app registered here); without one, or with one that is not registered, a page says the
        user signed out."""
        params = await read_form(request) if request.method == "POST" else dict(request.query_params)
        try:
            resolve_tenant(self.world, request.path_params["tenant"])
        except AadstsError as err:
            return error_page(err)
        state = signin_state(self.world)
        value = request.cookies.get(SESSION_COOKIE)
        with self.world.lock:
            signed_out = self.world.users.get(state.sessions.pop(value, "")) if value else None
            if value:
                state.accounts.pop(value, None)
        target = params.get("post_logout_redirect_uri", "")
        allowed = bool(target) and self._logout_target_registered(target, params)
        if allowed:
            response: Response = RedirectResponse(
                _with_params(target, {"state": params["state"]}) if params.get("state") else target, status_code=302
            )
        else:
            note = (
                f"<p id='error'>The address {html.escape(target)} is not a redirect URI registered for the "
                "application, so you stay on this page.</p>"
                if target
                else ""
            )
            who = f" ({html.escape(signed_out.user_principal_name)})" if signed_out else ""
            response = _page(
                "You signed out of your account",
                f"<p>You signed out{who}. It's a good idea to close all browser windows.</p>{note}",
            )
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
        return response

    def _logout_target_registered(self, target: str, params: dict[str, str]) -> bool:
        with self.world.lock:
            apps = list(self.world.apps.values())
        client_id = params.get("client_id", "").lower()
        if not client_id and params.get("id_token_hint"):
            client_id = tokens.id_token_audience(self.world, params["id_token_hint"]) or ""
        if client_id:
            apps = [a for a in apps if a.client_id == client_id]
        return any(redirect_uri_allowed(app, target) for app in apps)

    async def consent_post(self, request: Request) -> Response:
        form = await read_form(request)
        pending = self._take_pending(str(form.get("ctx", "")))
        if pending is None or pending.user_id is None:
            return error_page(
                AadstsError("invalid_request", None, message="The consent request has expired. Start again.")
            )
        with self.world.lock:
            user = self.world.users.get(pending.user_id)
        if user is None:
            return error_page(AadstsError("invalid_request", None, message="The signed-in user no longer exists."))
        accepted = str(form.get("answer", "")) == "accept"
        if pending.kind != "authorize":
            return self._admin_answer(pending, user, accepted=accepted, grant_roles=None)
        params = pending.params
        app = self._app(params["client_id"])
        mode = params.get("response_mode", "query")
        if not accepted:
            err = AadstsError("access_denied", 65004, suberror="cancel")
            return respond_to_client(params["redirect_uri"], mode, _error_params(err, params.get("state")))
        scope_request = consent.parse_scopes(params["scope"], app)
        consent.grant_user_consent(self.world, user, app.client_id, scope_request.delegated_needed(app))
        return self._issue_code(pending, app, user)

    # ---- admin consent ---------------------------------------------------------------------------------
    async def admin_consent_v2(self, request: Request) -> Response:
        return self._admin_consent(request, "adminconsent_v2")

    async def admin_consent_classic(self, request: Request) -> Response:
        return self._admin_consent(request, "adminconsent")

    def _admin_consent(self, request: Request, kind: str) -> Response:
        segment = request.path_params["tenant"]
        params = dict(request.query_params)
        try:
            if kind == "adminconsent_v2" and segment.lower() in MULTI_TENANT_SEGMENTS:
                tenant = None  # checked below, after the redirect URI is trusted
            else:
                tenant = resolve_tenant(self.world, segment)
            app, redirect_uri = self._client_redirect(params)
        except AadstsError as err:
            return error_page(err)
        state = params.get("state")
        if kind == "adminconsent_v2":
            try:
                if segment.lower() in MULTI_TENANT_SEGMENTS:
                    raise AadstsError(
                        "invalid_request",
                        None,
                        message=(
                            "The v2.0 admin consent endpoint needs a specific tenant (ID or domain); "
                            f"'{segment}' is not accepted."
                        ),
                    )
                if not params.get("scope", "").strip():
                    raise AadstsError("invalid_request", 900144, parameter="scope")
                consent.parse_scopes(params["scope"], app)
            except AadstsError as err:
                return respond_to_client(redirect_uri, "query", _error_params(err, state))

        try:
            user = self._known_user(request, tenant, params)
        except AadstsError as err:
            return respond_to_client(redirect_uri, "query", _error_params(err, state))
        return self._sign_in_or_continue(request, kind, segment, tenant, params, user)

    def _admin_after_sign_in(self, request: Request, pending: Pending, user: User) -> Response:
        params = pending.params
        app = self._app(params["client_id"])
        if not user.is_admin:
            err = AadstsError("access_denied", 90094)
            return self._admin_failure(pending, err)
        auto = signin_state(self.world).auto
        if auto is None:
            pending.user_id = user.id
            ctx = add_pending(self.world, pending)
            scopes, roles = self._admin_grant_preview(pending, app)
            return self._consent_page(pending.tenant_segment, ctx, app, scopes, admin=True, roles=roles, account=user)
        return self._admin_answer(pending, user, accepted=auto.consent == "accept", grant_roles=auto.grant_roles)

    def _admin_grant_preview(self, pending: Pending, app: AppRegistration) -> tuple[list[str], list[str]]:
        if pending.kind == "adminconsent_v2":
            request = consent.parse_scopes(pending.params["scope"], app)
            if not request.default:
                return sorted(request.graph | request.oidc), []
        return sorted(app.delegated_scopes), sorted(app.required_roles)

    def _admin_failure(self, pending: Pending, err: AadstsError) -> Response:
        params = pending.params
        state = params.get("state")
        if pending.kind == "adminconsent_v2":
            answer = {"admin_consent": "True", "error": err.error, "error_description": err.short_description}
        else:
            answer = {"error": "permission_denied", "error_description": "The admin canceled the request"}
            if err.code != 65004:
                answer["error_description"] = err.short_description
        if state is not None:
            answer["state"] = state
        return respond_to_client(params["redirect_uri"], "query", answer)

    def _admin_answer(self, pending: Pending, user: User, *, accepted: bool, grant_roles: list[str] | None) -> Response:
        params = pending.params
        app = self._app(params["client_id"])
        tenant = self.world.tenants[user.tenant_id]
        state = params.get("state")
        if not accepted:
            # Documented v2 failure: admin_consent=True&error=consent_required&error_description=AADSTS65004...
            return self._admin_failure(pending, AadstsError("consent_required", 65004))
        if pending.kind == "adminconsent_v2":
            request = consent.parse_scopes(params["scope"], app)
            if request.default:
                consent.grant_tenant_consent(self.world, tenant, app, roles=grant_roles)
            else:
                consent.grant_tenant_consent(
                    self.world,
                    tenant,
                    app,
                    roles=set(tenant.app_consents.get(app.client_id, set())),
                    delegated=request.graph | request.oidc,
                )
            answer = {"admin_consent": "True", "tenant": tenant.tenant_id, "scope": params["scope"]}
            if state is not None:
                answer["state"] = state
        else:
            consent.grant_tenant_consent(self.world, tenant, app, roles=grant_roles)
            answer = {"tenant": tenant.tenant_id}
            if state is not None:
                answer["state"] = state
            answer["admin_consent"] = "True"
        return respond_to_client(params["redirect_uri"], "query", answer)

    # ---- /token -------------------------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        if request.method != "POST":
            return AadstsError("invalid_request", 900561).response()
        form = await read_form(request)
        try:
            return self._token(request, request.path_params["tenant"], form)
        except AadstsError as err:
            return err.response(correlation_id=request.headers.get("client-request-id"))

    def _client(self, request: Request, form: dict[str, str], tenant: Tenant | None) -> AppRegistration:
        client_id = form.get("client_id", "")
        secret = form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError) as err:
                raise AadstsError("invalid_client", None, 401, message="Malformed Basic credentials.") from err
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or unquote_plus(basic_id)
            secret = unquote_plus(basic_secret)
        if not client_id:
            raise AadstsError("invalid_request", 900144, parameter="client_id")
        with self.world.lock:
            app = self.world.apps.get(client_id.lower())
        if app is None:
            raise AadstsError(
                "unauthorized_client", 700016, client_id=client_id, tenant=tenant.display_name if tenant else "common"
            )
        if not secret:
            raise AadstsError("invalid_client", 7000218, 401)
        if not any(hmac.compare_digest(secret.encode(), s.encode()) for s in app.secrets):
            raise AadstsError("invalid_client", 7000215, 401, client_id=app.client_id)
        return app

    def _token(self, request: Request, segment: str, form: dict[str, str]) -> Response:
        tenant = resolve_tenant(self.world, segment)
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise AadstsError("invalid_request", 900144, parameter="grant_type")
        app = self._client(request, form, tenant)
        if grant_type == "authorization_code":
            return self._redeem_code(request, tenant, app, form)
        if grant_type == "refresh_token":
            return self._redeem_refresh_token(request, tenant, app, form)
        if grant_type == "client_credentials":
            return self._client_credentials(request, tenant, app, form)
        raise AadstsError("unsupported_grant_type", 70003, grant_type=grant_type)

    def _delegated_answer(
        self,
        request: Request,
        app: AppRegistration,
        user: User,
        scope_request: consent.ScopeRequest,
        *,
        nonce: str | None,
        form: dict[str, str],
    ) -> Response:
        """Tokens for a user: access token with every Graph scope consented, RT and ID token when asked."""
        graph_scopes = consent.consented_graph(self.world, user, app.client_id)
        wanted = scope_request.graph | (
            frozenset(s for s in app.delegated_scopes if s not in consent.OIDC_SCOPES)
            if scope_request.default
            else frozenset()
        )
        if not wanted <= graph_scopes:
            raise AadstsError("consent_required", 65001, client_id=app.client_id, app_name=app.display_name)
        oidc_consented = consent.consented_delegated(self.world, user, app.client_id) & set(consent.OIDC_SCOPES)
        lifetime = tokens.access_token_lifetime(self.world)
        access_token = tokens.issue_access_token(
            self.world,
            tenant_id=user.tenant_id,
            client_id=app.client_id,
            user_id=user.id,
            scopes=set(graph_scopes) | (oidc_consented - {"offline_access"}),
            lifetime=lifetime,
            cae=tokens.declares_cae(form.get("claims")),
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": consent.scope_string(graph_scopes, oidc_consented, uri_form=scope_request.uri_form),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
        if "offline_access" in scope_request.oidc:
            refresh = new_opaque("1.AR")
            with self.world.lock:
                self.world.refresh_tokens[refresh] = RefreshTokenGrant(
                    token=refresh,
                    tenant_id=user.tenant_id,
                    user_id=user.id,
                    client_id=app.client_id,
                    scopes=set(graph_scopes),
                    issued_at=utcnow(),
                )
            body["refresh_token"] = refresh
        if "openid" in scope_request.oidc:
            body["id_token"] = tokens.issue_id_token(
                self.world, user=user, client_id=app.client_id, nonce=nonce, request=request
            )
        if form.get("client_info") == "1":
            body["client_info"] = _client_info(user)
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _redeem_code(
        self, request: Request, tenant: Tenant | None, app: AppRegistration, form: dict[str, str]
    ) -> Response:
        value = form.get("code", "")
        if not value:
            raise AadstsError("invalid_request", 900144, parameter="code")
        state = signin_state(self.world)
        with self.world.lock:
            code = state.codes.get(value)
            if code is None:
                raise AadstsError("invalid_grant", 9002313)
            if code.redeemed:
                raise AadstsError("invalid_grant", 54005)
            if code.expires_at < time.time():
                raise AadstsError("invalid_grant", 70008)
            if code.client_id != app.client_id:
                raise AadstsError("invalid_grant", 70000)
            if tenant is not None and tenant.tenant_id != code.tenant_id:
                raise AadstsError("invalid_grant", 700005)
            redirect_uri = form.get("redirect_uri", "")
            if redirect_uri != code.redirect_uri:
                raise AadstsError("invalid_grant", 500112, got=redirect_uri, expected=code.redirect_uri)
            if code.code_challenge is not None and not _verify_pkce(
                code.code_challenge, code.code_challenge_method, form.get("code_verifier")
            ):
                raise AadstsError("invalid_grant", 501481)
            code.redeemed = True
            user = self.world.users.get(code.user_id)
        if user is None:
            raise AadstsError("invalid_grant", 70000)
        original = consent.parse_scopes(code.request_scope, app)
        asked = consent.parse_scopes(form["scope"], app) if form.get("scope") else original
        merged = consent.ScopeRequest(
            oidc=asked.oidc | original.oidc,
            graph=asked.graph,
            default=asked.default,
            uri_form=asked.uri_form or original.uri_form,
        )
        return self._delegated_answer(request, app, user, merged, nonce=code.nonce, form=form)

    def _redeem_refresh_token(
        self, request: Request, tenant: Tenant | None, app: AppRegistration, form: dict[str, str]
    ) -> Response:
        value = form.get("refresh_token", "")
        if not value:
            raise AadstsError("invalid_request", 900144, parameter="refresh_token")
        with self.world.lock:
            grant = self.world.refresh_tokens.get(value)
            if grant is None:
                raise AadstsError("invalid_grant", 9002313)
            if grant.client_id != app.client_id:
                raise AadstsError("invalid_grant", 70000)
            if tenant is not None and tenant.tenant_id != grant.tenant_id:
                raise AadstsError("invalid_grant", 700005)
            user = self.world.users.get(grant.user_id)
            if grant.revoked or user is None:
                issued = grant.issued_at.strftime("%m/%d/%Y %H:%M:%S")
                raise AadstsError(
                    "invalid_grant",
                    grant.revoked_code if grant.revoked else 50173,
                    issued=issued,
                    valid_from=utcnow().strftime("%m/%d/%Y %H:%M:%S"),
                )
        if form.get("scope"):
            asked = consent.parse_scopes(form["scope"], app)
        else:
            asked = consent.ScopeRequest(
                oidc=frozenset({"openid", "profile", "offline_access"}),
                graph=frozenset(grant.scopes),
                default=False,
                uri_form=True,
            )
        if not consent.consented_graph(self.world, user, app.client_id):
            # Every delegated grant for this app was withdrawn.
            raise AadstsError("consent_required", 65001, client_id=app.client_id, app_name=app.display_name)
        # A refresh answers with a new refresh token; the old one stays valid ("Refresh tokens
        # aren't revoked when used"), so offline_access is implied by the grant itself.
        asked = consent.ScopeRequest(
            oidc=asked.oidc | {"offline_access"}, graph=asked.graph, default=asked.default, uri_form=asked.uri_form
        )
        return self._delegated_answer(request, app, user, asked, nonce=None, form=form)

    def _client_credentials(
        self, request: Request, tenant: Tenant | None, app: AppRegistration, form: dict[str, str]
    ) -> Response:
        if tenant is None:
            raise AadstsError("invalid_request", 50059)
        raw_scope = form.get("scope", "").strip()
        if not raw_scope:
            raise AadstsError("invalid_request", 900144, parameter="scope")
        items = raw_scope.split()
        for item in items:
            lowered = item.lower()
            prefix = next((p for p in consent.GRAPH_PREFIXES if lowered.startswith(p)), None)
            if prefix is None and lowered.endswith("/.default"):
                raise AadstsError(
                    "invalid_resource", 500011, resource=item.rsplit("/", 1)[0], tenant=tenant.display_name
                )
            if prefix is None or lowered[len(prefix) :] != ".default":
                raise AadstsError("invalid_scope", 1002012, scope=item)
        if not consent.app_in_tenant(self.world, tenant, app.client_id):
            raise AadstsError("unauthorized_client", 700016, client_id=app.client_id, tenant=tenant.display_name)
        with self.world.lock:
            roles = set(tenant.app_consents.get(app.client_id, set()))
        lifetime = tokens.access_token_lifetime(self.world)
        access_token = tokens.issue_access_token(
            self.world,
            tenant_id=tenant.tenant_id,
            client_id=app.client_id,
            roles=roles,
            lifetime=lifetime,
            cae=tokens.declares_cae(form.get("claims")),
        )
        return JSONResponse(
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )


def routes(world: World) -> list[BaseRoute]:
    ep = Identity(world)
    return [
        Route("/common/discovery/instance", ep.instance_discovery, methods=["GET"]),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", ep.openid_configuration, methods=["GET"]),
        Route("/{tenant}/discovery/v2.0/keys", ep.keys, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/authorize", ep.authorize, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/token", ep.token, methods=["GET", "POST"]),
        Route("/{tenant}/v2.0/adminconsent", ep.admin_consent_v2, methods=["GET"]),
        Route("/{tenant}/adminconsent", ep.admin_consent_classic, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/logout", ep.logout, methods=["GET", "POST"]),
        Route("/{tenant}/login", ep.login_post, methods=["POST"]),
        Route("/{tenant}/pick", ep.pick_post, methods=["POST"]),
        Route("/{tenant}/consent", ep.consent_post, methods=["POST"]),
    ]


def _is_hinted(user: User, login_hint: str | None) -> bool:
    return bool(login_hint) and login_hint.lower() == user.user_principal_name.lower()  # type: ignore[union-attr]
