"""``/authorize``: the authorization code flow, from the request to the code sent back to the client."""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod

from starlette.requests import Request
from starlette.responses import Response

from devtools.cloud import consent
from devtools.cloud.aadsts import AadstsError
from devtools.cloud.identity.common import (
    client_info,
    error_page,
    error_params,
    read_form,
    resolve_tenant,
    respond_to_client,
)
from devtools.cloud.identity.pages import Pages
from devtools.cloud.signin import (
    CODE_LIFETIME_SECONDS,
    PROMPTS,
    AuthCode,
    Pending,
    add_code,
    add_pending,
    signin_state,
)
from devtools.cloud.state import AppRegistration, Tenant, User


class Authorize(Pages, ABC):
    """The authorize endpoint and the steps after a user is known."""

    async def authorize(self, request: Request) -> Response:
        if request.method == "POST":
            params = await read_form(request)
        else:
            params = dict(request.query_params)
        return self._authorize(request, request.path_params["tenant"], params)

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
        return self._continue_as(request, Pending(kind, segment, params, user.id), user)

    def _continue_as(self, request: Request, pending: Pending, user: User) -> Response:
        """Continue the flow as ``user``; the browser now holds a session for them, as Entra's cookie gives it."""
        response = self._after_sign_in(request, pending, user)
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
            return respond_to_client(redirect_uri, mode, error_params(err, state))
        return self._sign_in_or_continue(request, "authorize", segment, tenant, params, user)

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
                return respond_to_client(redirect_uri, mode, error_params(err, state))
            wanted = scope_request.delegated_needed(app)
            if consent.needs_admin(missing) and not user.is_admin:
                err = AadstsError("access_denied", 90094)
                return respond_to_client(redirect_uri, mode, error_params(err, state))
            auto = signin_state(self.world).auto
            if auto is None:
                pending.user_id = user.id
                ctx = add_pending(self.world, pending)
                return self._consent_page(segment, ctx, app, sorted(wanted), admin=False, account=user)
            if auto.consent != "accept":
                err = AadstsError("access_denied", 65004, suberror="cancel")
                return respond_to_client(redirect_uri, mode, error_params(err, state))
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
            answer["client_info"] = client_info(user)
        return respond_to_client(params["redirect_uri"], params.get("response_mode", "query"), answer)

    @abstractmethod
    def _admin_after_sign_in(self, request: Request, pending: Pending, user: User) -> Response:
        """Continue an admin-consent flow once the user is known: ``AdminConsent`` answers it."""
