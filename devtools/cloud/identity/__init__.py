"""The local Entra ID (identity platform v2): discovery, /authorize, /token, admin consent, sign-in pages.

One module per job: ``discovery``, ``authorize``, ``token``, ``admin_consent``, ``pages`` (and ``forms``, their
answers), ``sessions`` (the browser's sign-in sessions, sign-out) and ``common`` (what they share).

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

from starlette.routing import BaseRoute, Route

from devtools.cloud.identity.common import (
    MULTI_TENANT_SEGMENTS,
    SESSION_COOKIE,
    error_page,
    read_form,
    redirect_uri_allowed,
    resolve_tenant,
    respond_to_client,
)
from devtools.cloud.identity.discovery import Discovery
from devtools.cloud.identity.forms import SignInForms
from devtools.cloud.identity.token import TokenEndpoint
from devtools.cloud.state import World

__all__ = [
    "MULTI_TENANT_SEGMENTS",
    "SESSION_COOKIE",
    "Identity",
    "error_page",
    "read_form",
    "redirect_uri_allowed",
    "resolve_tenant",
    "respond_to_client",
    "routes",
]


class Identity(SignInForms, TokenEndpoint, Discovery):
    """Request handlers bound to one world."""


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
