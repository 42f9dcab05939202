"""Sign-in as Entra does it when a browser already holds a session: prompt and login_hint, the account
picker, the account shown on every page, the sign-out endpoint, and admin consent that covers the
app's declared delegated permissions for the whole tenant."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx

from devtools.cloud import controls
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from tests.cloud.identity_support import (
    ADELE,
    ALEX,
    CLIENT_ID,
    CONSENT_REDIRECT_URI,
    CONTOSO,
    GRAPH_DEFAULT,
    MEGAN,
    REDIRECT_URI,
    browser,
    form_action,
    form_fields,
    msal_app,
    redirect_params,
)

# What the service's sign-in asks for (shared/identity/signin.py BASE_SCOPES), in MSAL's form.
SERVICE_SIGNIN_SCOPES = [
    f"https://graph.microsoft.com/{s}"
    for s in (
        "Calendars.Read",
        "Calendars.Read.Shared",
        "Calendars.ReadWrite",
        "Calendars.ReadWrite.Shared",
        "User.Read",
        "User.ReadBasic.All",
        "MailboxSettings.Read",
    )
] + ["email"]


def _auth_uri(cloud: RunningCloud, **options: str) -> str:
    flow = msal_app(cloud).initiate_auth_code_flow(SERVICE_SIGNIN_SCOPES, redirect_uri=REDIRECT_URI, **options)
    return str(flow["auth_uri"])


def _sign_in(client: httpx.Client, cloud: RunningCloud, page: httpx.Response, login: str) -> httpx.Response:
    fields = {**form_fields(page.text), "login": login, "passwd": "Passw0rd!"}
    return client.post(f"{cloud.base_url}{form_action(page.text)}", data=fields)


@contextlib.contextmanager
def _signed_in_browser(cloud: RunningCloud, login: str) -> Iterator[httpx.Client]:
    with browser() as client:
        answer = _sign_in(client, cloud, client.get(_auth_uri(cloud)), login)
        assert "code" in redirect_params(answer), answer.text
        yield client


def test_a_recruiter_after_the_admins_consent_sees_no_consent_page(cloud: RunningCloud, world: World) -> None:
    query = {"client_id": CLIENT_ID, "scope": GRAPH_DEFAULT, "redirect_uri": CONSENT_REDIRECT_URI, "state": "s"}
    with browser() as admin:
        page = admin.get(f"{cloud.authority_host}/{CONTOSO}/v2.0/adminconsent?{urlencode(query)}")
        consent_page = _sign_in(admin, cloud, page, ADELE)
        assert "Permissions requested" in consent_page.text
        for permission in ("Calendars.ReadWrite.Shared", "User.ReadBasic.All", "Calendars.Read.Shared"):
            assert permission in consent_page.text
        fields = {**form_fields(consent_page.text), "answer": "accept"}
        assert (
            redirect_params(admin.post(f"{cloud.base_url}{form_action(consent_page.text)}", data=fields))[
                "admin_consent"
            ]
            == "True"
        )

    with browser() as recruiter:
        answer = _sign_in(recruiter, cloud, recruiter.get(_auth_uri(cloud)), MEGAN)
    assert "code" in redirect_params(answer), answer.text


def test_the_sign_in_page_says_it_is_the_local_stand_in_and_shows_the_demo_password(
    cloud: RunningCloud, world: World
) -> None:
    with browser() as client:
        page = client.get(_auth_uri(cloud))
    assert "local Microsoft cloud" in page.text and "stand-in for Microsoft's sign-in" in page.text
    assert "Passw0rd!" in page.text
    assert "Not signed in." in page.text


def test_a_login_hint_for_another_account_asks_for_that_account_despite_a_session(
    cloud: RunningCloud, world: World
) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    with _signed_in_browser(cloud, ADELE) as client:
        page = client.get(_auth_uri(cloud, login_hint=MEGAN))
        assert page.status_code == 200 and "Pick an account" in page.text
        assert f"value='{MEGAN}' checked" in page.text
        assert "Signed in as <strong>Adele Vance</strong>" in page.text
        # The same hint as the session's account signs in silently.
        assert "code" in redirect_params(client.get(_auth_uri(cloud, login_hint=ADELE)))


def test_prompt_login_asks_for_credentials_even_with_a_session(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    with _signed_in_browser(cloud, ADELE) as client:
        page = client.get(_auth_uri(cloud, prompt="login"))
        assert page.status_code == 200 and "type='password'" in page.text


def test_prompt_select_account_offers_the_browsers_accounts_and_another_one(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    with _signed_in_browser(cloud, ADELE) as client:
        picker = client.get(_auth_uri(cloud, prompt="select_account"))
        assert picker.status_code == 200 and "Pick an account" in picker.text
        assert ADELE in picker.text and "Use another account" in picker.text
        ctx = form_fields(picker.text)["ctx"]

        another = client.post(f"{cloud.base_url}/{CONTOSO}/pick", data={"ctx": ctx, "account": ""})
        assert "type='password'" in another.text
        answer = _sign_in(client, cloud, another, MEGAN)
        assert "code" in redirect_params(answer)

        # Both accounts are now in this browser's picker; choosing one needs no password.
        picker = client.get(_auth_uri(cloud, prompt="select_account"))
        assert ADELE in picker.text and MEGAN in picker.text
        ctx = form_fields(picker.text)["ctx"]
        chosen = client.post(f"{cloud.base_url}/{CONTOSO}/pick", data={"ctx": ctx, "account": ADELE})
        assert "code" in redirect_params(chosen)


def test_prompt_none_with_a_session_of_another_account_is_interaction_required(
    cloud: RunningCloud, world: World
) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    with _signed_in_browser(cloud, ADELE) as client:
        answer = redirect_params(client.get(_auth_uri(cloud, prompt="none", login_hint=MEGAN)))
        assert answer["error"] == "interaction_required"
        assert answer["error_description"].startswith("AADSTS16000")
        assert "code" in redirect_params(client.get(_auth_uri(cloud, prompt="none", login_hint=ADELE)))


def test_an_unknown_prompt_is_an_invalid_request(cloud: RunningCloud, world: World) -> None:
    with browser() as client:
        answer = redirect_params(client.get(_auth_uri(cloud, prompt="sometimes")))
    assert answer["error"] == "invalid_request"


def test_the_consent_page_shows_the_signed_in_account(cloud: RunningCloud, world: World) -> None:
    with browser() as client:
        consent_page = _sign_in(client, cloud, client.get(_auth_uri(cloud)), ALEX)
    assert "Permissions requested" in consent_page.text
    assert "Signed in as <strong>Alex Wilber</strong>" in consent_page.text


def test_the_end_session_endpoint_signs_out_and_returns_to_a_registered_uri(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    with browser() as client:
        config = client.get(f"{cloud.authority_host}/{CONTOSO}/v2.0/.well-known/openid-configuration").json()
    with _signed_in_browser(cloud, ADELE) as client:
        back = client.get(config["end_session_endpoint"], params={"post_logout_redirect_uri": REDIRECT_URI})
        assert back.status_code == 302 and back.headers["location"] == REDIRECT_URI
        # Signed out: a silent sign-in now needs a login.
        assert redirect_params(client.get(_auth_uri(cloud, prompt="none")))["error"] == "login_required"

    with _signed_in_browser(cloud, ADELE) as client:
        stay = client.post(
            config["end_session_endpoint"],
            data={"post_logout_redirect_uri": "https://evil.example/after", "client_id": CLIENT_ID},
        )
        assert stay.status_code == 200 and "You signed out" in stay.text
        assert "not a redirect URI registered" in stay.text and "location" not in stay.headers
        assert redirect_params(client.get(_auth_uri(cloud, prompt="none")))["error"] == "login_required"
