"""What every identity endpoint shares: tenants named by a path segment, redirect URIs, answers to the
client, and the pages of the local sign-in (which always say they are the local stand-in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from devtools.cloud.aadsts import AadstsError
from devtools.cloud.state import AppRegistration, Tenant, User, World

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


def with_params(url: str, params: Mapping[str, str]) -> str:
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
    return RedirectResponse(with_params(redirect_uri, params), status_code=302)


def error_params(err: AadstsError, state: str | None) -> dict[str, str]:
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


def page(title: str, body: str, status: int = 200, *, account: User | None = None) -> HTMLResponse:
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
    return page(
        "Sign in",
        f"<p>Sorry, but we're having trouble signing you in.</p><p id='error'>{html.escape(err.short_description)}</p>",
        status=400,
        account=account,
    )


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, the only form encoding OAuth uses."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def client_info(user: User) -> str:
    raw = json.dumps({"uid": user.id, "utid": user.tenant_id}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify_pkce(challenge: str, method: str | None, verifier: str | None) -> bool:
    if not verifier:
        return False
    if (method or "plain") == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


def sign_in_expired() -> Response:
    return error_page(AadstsError("invalid_request", None, message="The sign-in request has expired. Start again."))


def is_hinted(user: User, login_hint: str | None) -> bool:
    return bool(login_hint) and login_hint.lower() == user.user_principal_name.lower()  # type: ignore[union-attr]
