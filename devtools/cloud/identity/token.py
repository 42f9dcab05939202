"""``/token``: client authentication and the authorization code, refresh token and client credentials grants."""

from __future__ import annotations

import base64
import hmac
import time
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from devtools.cloud import consent, tokens
from devtools.cloud.aadsts import AadstsError
from devtools.cloud.identity.common import (
    client_info,
    read_form,
    resolve_tenant,
    verify_pkce,
)
from devtools.cloud.identity.sessions import Sessions
from devtools.cloud.signin import (
    new_opaque,
    signin_state,
)
from devtools.cloud.state import AppRegistration, RefreshTokenGrant, Tenant, User, utcnow


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise AadstsError("invalid_request", 900144, parameter=name)
    return value


def _check_issued_to(app: AppRegistration, tenant: Tenant | None, client_id: str, tenant_id: str) -> None:
    """A code or refresh token is redeemed only by the app it was issued to, in its tenant."""
    if client_id != app.client_id:
        raise AadstsError("invalid_grant", 70000)
    if tenant is not None and tenant.tenant_id != tenant_id:
        raise AadstsError("invalid_grant", 700005)


class TokenEndpoint(Sessions):
    """The token endpoint."""

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
            body["client_info"] = client_info(user)
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _redeem_code(
        self, request: Request, tenant: Tenant | None, app: AppRegistration, form: dict[str, str]
    ) -> Response:
        value = _required(form, "code")
        state = signin_state(self.world)
        with self.world.lock:
            code = state.codes.get(value)
            if code is None:
                raise AadstsError("invalid_grant", 9002313)
            if code.redeemed:
                raise AadstsError("invalid_grant", 54005)
            if code.expires_at < time.time():
                raise AadstsError("invalid_grant", 70008)
            _check_issued_to(app, tenant, code.client_id, code.tenant_id)
            redirect_uri = form.get("redirect_uri", "")
            if redirect_uri != code.redirect_uri:
                raise AadstsError("invalid_grant", 500112, got=redirect_uri, expected=code.redirect_uri)
            if code.code_challenge is not None and not verify_pkce(
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
        value = _required(form, "refresh_token")
        with self.world.lock:
            grant = self.world.refresh_tokens.get(value)
            if grant is None:
                raise AadstsError("invalid_grant", 9002313)
            _check_issued_to(app, tenant, grant.client_id, grant.tenant_id)
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
