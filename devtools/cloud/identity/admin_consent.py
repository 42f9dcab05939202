"""``/adminconsent`` (classic) and ``/v2.0/adminconsent``: an admin grants an app for the whole tenant."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from devtools.cloud import consent
from devtools.cloud.aadsts import AadstsError
from devtools.cloud.identity.authorize import Authorize
from devtools.cloud.identity.common import (
    MULTI_TENANT_SEGMENTS,
    error_page,
    error_params,
    resolve_tenant,
    respond_to_client,
)
from devtools.cloud.signin import (
    Pending,
    add_pending,
    signin_state,
)
from devtools.cloud.state import AppRegistration, User


class AdminConsent(Authorize):
    """The admin consent endpoints and their answers to the client."""

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
                return respond_to_client(redirect_uri, "query", error_params(err, state))

        try:
            user = self._known_user(request, tenant, params)
        except AadstsError as err:
            return respond_to_client(redirect_uri, "query", error_params(err, state))
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
