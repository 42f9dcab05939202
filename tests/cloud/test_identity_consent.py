"""Admin consent (v2 and classic) and the click-through sign-in and consent pages of the local Entra ID."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from devtools.cloud import controls
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from tests.cloud.identity_support import (
    ADELE,
    ALEX,
    CLIENT_ID,
    CONSENT_REDIRECT_URI,
    CONTOSO,
    CONTOSO_ID,
    GRAPH_CALENDARS,
    GRAPH_DEFAULT,
    KAI,
    REDIRECT_URI,
    browser,
    form_action,
    form_fields,
    msal_app,
    redirect_of,
    redirect_params,
)

ALL_ROLES = {"Calendars.ReadWrite", "MailboxSettings.Read", "User.Read.All"}


def v2_admin_consent_url(cloud: RunningCloud, tenant: str = CONTOSO, state: str = "st-123") -> str:
    query = {"client_id": CLIENT_ID, "scope": GRAPH_DEFAULT, "redirect_uri": CONSENT_REDIRECT_URI, "state": state}
    return f"{cloud.authority_host}/{tenant}/v2.0/adminconsent?{urlencode(query)}"


def classic_admin_consent_url(cloud: RunningCloud, tenant: str = "common", state: str = "st-456") -> str:
    query = {"client_id": CLIENT_ID, "redirect_uri": CONSENT_REDIRECT_URI, "state": state}
    return f"{cloud.authority_host}/{tenant}/adminconsent?{urlencode(query)}"


def test_v2_admin_consent_records_the_roles_and_redirects_with_the_documented_success(
    cloud: RunningCloud, world: World
) -> None:
    controls.set_auto_sign_in(world, ADELE)
    answer = redirect_of(v2_admin_consent_url(cloud))
    assert answer == {"admin_consent": "True", "tenant": CONTOSO_ID, "scope": GRAPH_DEFAULT, "state": "st-123"}
    assert world.tenants[CONTOSO_ID].app_consents[CLIENT_ID] == ALL_ROLES
    token = msal_app(cloud).acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in token


def test_v2_admin_consent_cancelled_redirects_with_the_documented_failure(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ADELE, consent="cancel")
    answer = redirect_of(v2_admin_consent_url(cloud))
    assert answer["admin_consent"] == "True"
    assert answer["error"] == "consent_required"
    assert answer["error_description"].startswith("AADSTS65004")
    assert answer["state"] == "st-123"
    assert CLIENT_ID not in world.tenants[CONTOSO_ID].app_consents


def test_v2_admin_consent_refuses_the_common_tenant(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ADELE)
    answer = redirect_of(v2_admin_consent_url(cloud, tenant="common"))
    assert answer["error"] == "invalid_request"
    assert "common" in answer["error_description"]
    assert all(not t.app_consents for t in world.tenants.values())


def test_classic_admin_consent_through_common_lands_in_the_admins_tenant(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, KAI)
    with browser() as client:
        response = client.get(classic_admin_consent_url(cloud))
    fabrikam = controls.get_tenant(world, "fabrikam.example")
    assert response.headers["location"] == (
        f"{CONSENT_REDIRECT_URI}?tenant={fabrikam.tenant_id}&state=st-456&admin_consent=True"
    )
    assert fabrikam.app_consents[CLIENT_ID] == ALL_ROLES
    assert CLIENT_ID not in world.tenants[CONTOSO_ID].app_consents


def test_classic_admin_consent_cancelled_is_permission_denied(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ADELE, consent="decline")
    answer = redirect_of(classic_admin_consent_url(cloud))
    assert answer["error"] == "permission_denied"
    assert answer["error_description"] == "The admin canceled the request"


def test_admin_consent_by_a_user_who_is_not_an_admin_grants_nothing(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    answer = redirect_of(v2_admin_consent_url(cloud))
    assert answer["error"] == "access_denied"
    assert answer["error_description"].startswith("AADSTS90094")
    assert CLIENT_ID not in world.tenants[CONTOSO_ID].app_consents


def test_partial_admin_consent_grants_only_the_chosen_roles(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ADELE, grant_roles=["Calendars.ReadWrite"])
    redirect_of(v2_admin_consent_url(cloud))
    assert world.tenants[CONTOSO_ID].app_consents[CLIENT_ID] == {"Calendars.ReadWrite"}


def test_admin_consent_to_the_default_scope_also_covers_users_delegated_sign_in(
    cloud: RunningCloud, world: World
) -> None:
    controls.set_auto_sign_in(world, ADELE)
    with browser() as client:
        redirect_params(client.get(v2_admin_consent_url(cloud)))
        controls.set_auto_sign_in(world, ALEX, consent="decline")  # Alex is never asked
        app = msal_app(cloud)
        flow = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI)
        answer = redirect_params(client.get(flow["auth_uri"]))
    assert "code" in answer
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, answer)


# ---- click-through pages ---------------------------------------------------------------------------
def _submit(client: httpx.Client, cloud: RunningCloud, page: httpx.Response, **fields: str) -> httpx.Response:
    return client.post(f"{cloud.base_url}{form_action(page.text)}", data={**form_fields(page.text), **fields})


def test_a_person_can_sign_in_and_consent_through_the_pages(cloud: RunningCloud, world: World) -> None:
    app = msal_app(cloud)
    flow = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI)
    with browser() as client:
        sign_in_page = client.get(flow["auth_uri"])
        assert sign_in_page.status_code == 200
        assert ALEX in sign_in_page.text and "interviews@contoso.example" not in sign_in_page.text

        wrong = _submit(client, cloud, sign_in_page, login=ALEX, passwd="wrong")
        assert wrong.status_code == 400 and "AADSTS50126" in wrong.text

        consent_page = _submit(client, cloud, wrong, login=ALEX, passwd="Passw0rd!")
        assert consent_page.status_code == 200
        assert "Permissions requested" in consent_page.text and "Calendars.ReadWrite" in consent_page.text

        answer = redirect_params(_submit(client, cloud, consent_page, answer="accept"))
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert result["id_token_claims"]["preferred_username"] == ALEX


def test_cancel_on_the_consent_page_redirects_with_access_denied(cloud: RunningCloud, world: World) -> None:
    flow = msal_app(cloud).initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI)
    with browser() as client:
        consent_page = _submit(client, cloud, client.get(flow["auth_uri"]), login=ALEX, passwd="Passw0rd!")
        answer = redirect_params(_submit(client, cloud, consent_page, answer="cancel"))
    assert answer["error"] == "access_denied"
    assert answer["error_description"].startswith("AADSTS65004")
    assert answer["state"] == flow["state"]


def test_the_session_cookie_signs_the_browser_in_silently_next_time(cloud: RunningCloud, world: World) -> None:
    controls.grant_user_consent(world, ALEX)
    app = msal_app(cloud)
    with browser() as client:
        first = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI)
        redirect_params(_submit(client, cloud, client.get(first["auth_uri"]), login=ALEX, passwd="Passw0rd!"))
        silent = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI, prompt="none")
        answer = redirect_params(client.get(silent["auth_uri"]))
        assert "code" in answer
        controls.sign_out_everywhere(world)
        again = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI, prompt="none")
        assert redirect_params(client.get(again["auth_uri"]))["error"] == "login_required"


def test_an_admin_can_consent_for_the_organization_through_the_pages(cloud: RunningCloud, world: World) -> None:
    with browser() as client:
        sign_in_page = client.get(v2_admin_consent_url(cloud))
        consent_page = _submit(client, cloud, sign_in_page, login=ADELE, passwd="Passw0rd!")
        assert "on behalf of your organization" in consent_page.text
        assert "User.Read.All (application)" in consent_page.text
        answer = redirect_params(_submit(client, cloud, consent_page, answer="accept"))
    assert answer["admin_consent"] == "True" and answer["tenant"] == CONTOSO_ID
    assert world.tenants[CONTOSO_ID].app_consents[CLIENT_ID] == ALL_ROLES


@pytest.mark.parametrize("upn", ["interviews@contoso.example", "sync@contoso.example"])
def test_shared_mailboxes_cannot_sign_in(cloud: RunningCloud, world: World, upn: str) -> None:
    controls.set_auto_sign_in(world, upn)
    flow = msal_app(cloud).initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI)
    with browser() as client:
        response = client.get(flow["auth_uri"])
    assert response.status_code == 400 and "AADSTS50057" in response.text
