"""Helpers for identity tests: fixture names, an MSAL client for the service's app, a scripted browser."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msal

from devtools.cloud.server import RunningCloud

DIRECTORY = json.loads((Path(__file__).resolve().parents[2] / "devtools/cloud/fixtures/directory.json").read_text())
SERVICE_APP = DIRECTORY["apps"][0]
CLIENT_ID: str = SERVICE_APP["client_id"]
SECRET: str = SERVICE_APP["secrets"][0]
CONTOSO_ID: str = DIRECTORY["tenants"][0]["tenant_id"]
FABRIKAM_ID: str = DIRECTORY["tenants"][1]["tenant_id"]
CONTOSO = "contoso.example"
ADELE = "adele.vance@contoso.example"  # Contoso's admin
ALEX = "alex.wilber@contoso.example"
MEGAN = "megan.bowen@contoso.example"
KAI = "kai.nakamura@fabrikam.example"  # Fabrikam's admin
TOM = "tom.ochieng@fabrikam.example"
REDIRECT_URI = "http://localhost:7071/api/auth/callback"
CONSENT_REDIRECT_URI = "http://localhost:7071/api/consent/callback"
GRAPH_CALENDARS = "https://graph.microsoft.com/Calendars.ReadWrite"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def msal_app(
    cloud: RunningCloud,
    tenant: str = CONTOSO,
    *,
    client_id: str = CLIENT_ID,
    secret: str = SECRET,
    cache: msal.SerializableTokenCache | None = None,
    instance_discovery: bool = True,
    client_capabilities: list[str] | None = None,
) -> msal.ConfidentialClientApplication:
    """The service's MSAL client, configured as in production except for the authority host.

    ``instance_discovery=False`` is for tests of failing silent acquisitions: after such a failure
    MSAL 1.39 looks up authority aliases at login.microsoftonline.com's own discovery endpoint,
    whatever ``instance_discovery`` URL it was given (``_get_authority_aliases``), which cannot
    work offline. ``False`` skips both that lookup and the cloud's discovery endpoint.
    """
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"{cloud.authority_host}/{tenant}",
        instance_discovery=f"{cloud.authority_host}/common/discovery/instance" if instance_discovery else False,
        token_cache=cache,
        client_capabilities=client_capabilities,
    )


def browser() -> httpx.Client:
    """A client that trusts the cloud through SSL_CERT_FILE (set by the session fixture) and keeps cookies."""
    return httpx.Client(follow_redirects=False, timeout=10)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a 302 back to the client app."""
    assert response.status_code == 302, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


def redirect_of(url: str) -> dict[str, str]:
    """Open ``url`` in a fresh browser: the query parameters of its 302 back to the client app."""
    with browser() as client:
        return redirect_params(client.get(url))


def form_fields(page: str) -> dict[str, str]:
    """Hidden inputs of an HTML form (the form_post answer, the sign-in and consent pages)."""
    fields = re.findall(r"<input type=['\"]hidden['\"] name=['\"]([^'\"]+)['\"] value=['\"]([^'\"]*)['\"]", page)
    return {name: html.unescape(value) for name, value in fields}


def form_action(page: str) -> str:
    match = re.search(r"<form method=['\"]POST['\"][^>]* action=['\"]([^'\"]+)['\"]", page)
    assert match, page
    return html.unescape(match.group(1))


def sign_in(
    cloud: RunningCloud, app: msal.ConfidentialClientApplication, scopes: list[str], **flow_options: Any
) -> dict[str, Any]:
    """Run the auth-code flow in automatic mode (the caller set auto sign-in) and redeem the code."""
    flow, auth_response = authorize(app, scopes, **flow_options)
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, auth_response)
    return result


def authorize(
    app: msal.ConfidentialClientApplication, scopes: list[str], **flow_options: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Start MSAL's auth-code flow and follow it in a browser to the redirect: the flow and the redirect's query."""
    flow: dict[str, Any] = app.initiate_auth_code_flow(scopes, redirect_uri=REDIRECT_URI, **flow_options)
    return flow, redirect_of(flow["auth_uri"])
