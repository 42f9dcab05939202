"""The answers the sign-in pages post back: credentials, a chosen account, consent given or refused."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from devtools.cloud import consent
from devtools.cloud.aadsts import AadstsError
from devtools.cloud.identity.admin_consent import AdminConsent
from devtools.cloud.identity.common import (
    error_page,
    error_params,
    read_form,
    resolve_tenant,
    respond_to_client,
    sign_in_expired,
)
from devtools.cloud.signin import Pending


class SignInForms(AdminConsent):
    """The POST endpoints of the sign-in, account picker and consent pages."""

    async def _posted(self, request: Request) -> tuple[dict[str, str], str, Pending] | None:
        """The form a sign-in page posted, its ``ctx`` and the flow waiting for it; None when that flow is gone."""
        form = await read_form(request)
        ctx = str(form.get("ctx", ""))
        pending = self._peek_pending(ctx)
        return None if pending is None else (form, ctx, pending)

    async def login_post(self, request: Request) -> Response:
        posted = await self._posted(request)
        if posted is None:
            return sign_in_expired()
        form, ctx, pending = posted
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
        return self._continue_as(request, pending, user)

    async def pick_post(self, request: Request) -> Response:
        """The account picker's answer: continue as an account of this browser, or ask for credentials."""
        posted = await self._posted(request)
        if posted is None:
            return sign_in_expired()
        form, ctx, pending = posted
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
        return self._continue_as(request, pending, user)

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
            return respond_to_client(params["redirect_uri"], mode, error_params(err, params.get("state")))
        scope_request = consent.parse_scopes(params["scope"], app)
        consent.grant_user_consent(self.world, user, app.client_id, scope_request.delegated_needed(app))
        return self._issue_code(pending, app, user)
