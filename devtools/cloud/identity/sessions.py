"""The browser side of the local Entra ID: its sign-in sessions and accounts, the user a request continues as,
the flows waiting for a page's answer, and sign-out."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from devtools.cloud import tokens
from devtools.cloud.aadsts import AadstsError
from devtools.cloud.identity.common import (
    SESSION_COOKIE,
    error_page,
    page,
    read_form,
    redirect_uri_allowed,
    resolve_tenant,
    with_params,
)
from devtools.cloud.signin import (
    Pending,
    new_opaque,
    signin_state,
)
from devtools.cloud.state import AppRegistration, Tenant, User, World


class Sessions:
    """The state every identity endpoint reads: the world, and the browser's sessions in it."""

    def __init__(self, world: World) -> None:
        self.world = world

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

    # ---- the requesting app and user -----------------------------------------------------------------
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

    def _check_user_for_tenant(self, user: User, tenant: Tenant | None) -> AadstsError | None:
        if user.kind != "user":
            # Shared mailboxes are backed by disabled accounts.
            return AadstsError("invalid_request", 50057)
        if tenant is not None and user.tenant_id != tenant.tenant_id:
            return AadstsError("invalid_request", 50020, upn=user.user_principal_name, tenant=tenant.tenant_id)
        return None

    # ---- flows waiting for a page's answer ----------------------------------------------------------
    def _peek_pending(self, ctx: str) -> Pending | None:
        state = signin_state(self.world)
        with self.world.lock:
            return state.pending.get(ctx)

    def _take_pending(self, ctx: str) -> Pending | None:
        state = signin_state(self.world)
        with self.world.lock:
            return state.pending.pop(ctx, None)

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
                with_params(target, {"state": params["state"]}) if params.get("state") else target, status_code=302
            )
        else:
            note = (
                f"<p id='error'>The address {html.escape(target)} is not a redirect URI registered for the "
                "application, so you stay on this page.</p>"
                if target
                else ""
            )
            who = f" ({html.escape(signed_out.user_principal_name)})" if signed_out else ""
            response = page(
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
