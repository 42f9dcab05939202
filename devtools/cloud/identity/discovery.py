"""Instance discovery, the OpenID configuration document and the signing keys."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from devtools.cloud import tokens
from devtools.cloud.aadsts import AadstsError
from devtools.cloud.identity.common import (
    resolve_tenant,
)
from devtools.cloud.identity.sessions import Sessions


class Discovery(Sessions):
    """The documents MSAL reads before it signs anyone in."""

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
