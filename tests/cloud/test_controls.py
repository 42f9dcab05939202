"""The identity controls, over HTTP and as functions: one implementation, the effects the docs describe."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from devtools.cloud import controls, notify, tokens
from devtools.cloud.common import GraphError
from devtools.cloud.graph import controls as graph_controls
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from tests.cloud.identity_support import (
    ADELE,
    ALEX,
    CLIENT_ID,
    CONTOSO,
    CONTOSO_ID,
    FABRIKAM_ID,
    GRAPH_CALENDARS,
    GRAPH_DEFAULT,
    REDIRECT_URI,
    msal_app,
    redirect_params,
    sign_in,
)


def control(cloud: RunningCloud, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    with httpx.Client() as client:
        return client.request(method, f"{cloud.base_url}/_control{path}", json=body)


def test_auto_sign_in_over_http_drives_the_flow(cloud: RunningCloud, world: World) -> None:
    assert control(cloud, "PUT", "/auto-sign-in", {"user": ALEX, "consent": "yes"}).status_code == 200
    result = sign_in(cloud, msal_app(cloud), [GRAPH_CALENDARS])
    assert result["id_token_claims"]["preferred_username"] == ALEX
    assert control(cloud, "DELETE", "/auto-sign-in").status_code == 200
    app = msal_app(cloud)
    flow = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI, prompt="login")
    with httpx.Client() as client:
        assert "Pick an account" in client.get(flow["auth_uri"]).text


def test_admin_consent_over_http_grants_and_withdraws(cloud: RunningCloud, world: World) -> None:
    assert control(cloud, "PUT", f"/tenants/{CONTOSO}/admin-consent", {"roles": ["Calendars.ReadWrite"]}).json() == {
        "ok": True
    }
    assert world.tenants[CONTOSO_ID].app_consents[CLIENT_ID] == {"Calendars.ReadWrite"}
    app = msal_app(cloud, instance_discovery=False)
    assert tokens.verify_access_token(world, app.acquire_token_for_client([GRAPH_DEFAULT])["access_token"]).roles == {
        "Calendars.ReadWrite"
    }
    control(cloud, "DELETE", f"/tenants/{CONTOSO_ID}/admin-consent")
    assert CLIENT_ID not in world.tenants[CONTOSO_ID].app_consents
    # MSAL serves the earlier token from its cache; a fresh client asks the token endpoint.
    fresh = msal_app(cloud, instance_discovery=False).acquire_token_for_client([GRAPH_DEFAULT])
    assert fresh["error_codes"] == [700016]


def test_revoking_over_http_answers_the_chosen_code(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    controls.set_access_token_lifetime(world, 60)
    app = msal_app(cloud, instance_discovery=False)
    sign_in(cloud, app, [GRAPH_CALENDARS])
    response = control(cloud, "POST", f"/users/{ALEX}/revoke-refresh-tokens", {"reason": "inactive"})
    assert response.json() == {"ok": True, "revoked": 1}
    result = app.acquire_token_silent_with_error([GRAPH_CALENDARS], account=app.get_accounts()[0])
    assert result is not None and result["error_codes"] == [700082]


def test_expiring_access_tokens_over_http_fails_graphs_check_for_that_user_only(
    cloud: RunningCloud, world: World
) -> None:
    alex = controls.get_user(world, ALEX)
    adele = controls.get_user(world, ADELE)
    alex_token = tokens.issue_access_token(
        world, tenant_id=CONTOSO_ID, client_id=CLIENT_ID, user_id=alex.id, scopes=["User.Read"]
    )
    adele_token = tokens.issue_access_token(
        world, tenant_id=CONTOSO_ID, client_id=CLIENT_ID, user_id=adele.id, scopes=["User.Read"]
    )
    assert control(cloud, "POST", "/expire-access-tokens", {"user": ALEX}).json() == {"ok": True, "expired": 1}
    with pytest.raises(GraphError) as failure:
        tokens.verify_access_token(world, alex_token)
    assert (failure.value.status, failure.value.code) == (401, "InvalidAuthenticationToken")
    assert tokens.verify_access_token(world, adele_token).user_id == adele.id


def test_access_token_lifetime_over_http(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    control(cloud, "PUT", "/access-token-lifetime", {"seconds": 120})
    result = msal_app(cloud).acquire_token_for_client([GRAPH_DEFAULT])
    assert result["expires_in"] == 120


def test_a_second_app_registered_over_http_is_a_stranger_to_every_tenant(cloud: RunningCloud, world: World) -> None:
    created = control(
        cloud,
        "POST",
        "/apps",
        {"display_name": "Other scheduler", "redirect_uris": [REDIRECT_URI], "required_roles": ["Calendars.Read"]},
    )
    assert created.status_code == 201
    other = created.json()
    app = msal_app(cloud, client_id=other["client_id"], secret=other["secret"], instance_discovery=False)
    controls.grant_admin_consent(world, CONTOSO)  # consent for the service's app, not this one
    assert app.acquire_token_for_client([GRAPH_DEFAULT])["error"] == "unauthorized_client"
    controls.grant_admin_consent(world, CONTOSO, client_id=other["client_id"])
    token = msal_app(cloud, client_id=other["client_id"], secret=other["secret"]).acquire_token_for_client(
        [GRAPH_DEFAULT]
    )
    assert tokens.verify_access_token(world, token["access_token"]).roles == {"Calendars.Read"}


def test_user_consent_over_http_and_its_withdrawal(cloud: RunningCloud, world: World) -> None:
    assert (
        control(
            cloud, "PUT", f"/users/{ALEX}/consent", {"scopes": ["openid", "offline_access", "calendars.readwrite"]}
        ).status_code
        == 200
    )
    assert controls.get_user(world, ALEX).delegated_consents[CLIENT_ID] == {
        "openid",
        "offline_access",
        "Calendars.ReadWrite",
    }
    control(cloud, "DELETE", f"/users/{ALEX}/consent")
    assert controls.get_user(world, ALEX).delegated_consents == {}


def test_reset_over_http_restores_the_fixture(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    controls.set_auto_sign_in(world, ALEX)
    key = tokens.signing_key(world)
    assert control(cloud, "POST", "/reset").status_code == 200
    assert world.tenants[CONTOSO_ID].app_consents == {}
    directory = control(cloud, "GET", "/directory").json()
    assert {t["tenant_id"] for t in directory["tenants"]} == {CONTOSO_ID, FABRIKAM_ID}
    assert "secrets" not in directory["apps"][0]
    # The signing key survives, so the announced JWKS stays valid across resets.
    assert tokens.signing_key(world) == key


def test_deleting_a_tenant_makes_its_tokens_fail(cloud: RunningCloud, world: World) -> None:
    token = tokens.issue_access_token(world, tenant_id=FABRIKAM_ID, client_id=CLIENT_ID, roles=["Calendars.Read"])
    assert control(cloud, "DELETE", "/tenants/fabrikam.example").status_code == 200
    with pytest.raises(GraphError):
        tokens.verify_access_token(world, token)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/users/nobody@contoso.example/revoke-refresh-tokens", {}, 404),
        ("POST", f"/users/{ALEX}/revoke-refresh-tokens", {"reason": "bored"}, 400),
        ("PUT", "/auto-sign-in", {"user": ALEX, "consent": "maybe"}, 400),
        ("PUT", f"/tenants/{CONTOSO}/admin-consent", {"roles": ["Mail.Send"]}, 400),
        ("PUT", "/tenants/nowhere.example/admin-consent", {}, 404),
        ("POST", "/apps", {}, 400),
    ],
)
def test_bad_control_requests_are_refused(
    cloud: RunningCloud, world: World, method: str, path: str, body: dict[str, Any], status: int
) -> None:
    response = control(cloud, method, path, body)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_login_hint_mode_without_a_hint_shows_the_page(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, None)
    flow = msal_app(cloud).initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI)
    with httpx.Client() as client:
        page = client.get(flow["auth_uri"])
        assert page.status_code == 200 and "Pick an account" in page.text
        hinted = msal_app(cloud).initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI, login_hint=ALEX)
        assert "code" in redirect_params(client.get(hinted["auth_uri"]))


def test_reset_restores_group_membership_and_the_clock_and_the_directory_lists_groups(
    cloud: RunningCloud, world: World
) -> None:
    graph_controls.set_group_member(world, "recruiting@contoso.example", "megan.bowen@contoso.example", member=False)
    notify.advance_clock(world, 3600)
    assert control(cloud, "POST", "/reset").status_code == 200

    assert world.clock_offset.total_seconds() == 0
    contoso = next(t for t in control(cloud, "GET", "/directory").json()["tenants"] if t["tenant_id"] == CONTOSO_ID)
    assert contoso["groups"] == [
        {
            "id": contoso["groups"][0]["id"],
            "display_name": "Recruiting Team",
            "mail": "recruiting@contoso.example",
            "members": ["megan.bowen@contoso.example", "patti.fernandez@contoso.example"],
        }
    ]


def test_revoke_sign_in_sessions_over_http_ends_the_users_refresh_and_access_tokens(
    cloud: RunningCloud, world: World
) -> None:
    alex = controls.get_user(world, ALEX)
    cae_token = tokens.issue_access_token(
        world, tenant_id=CONTOSO_ID, client_id=CLIENT_ID, user_id=alex.id, scopes=["User.Read"], cae=True
    )
    answer = control(cloud, "POST", f"/users/{ALEX}/revoke-sign-in-sessions", {})
    assert answer.json() == {"ok": True, "revoked": 0}  # no refresh token was issued to Alex here
    with pytest.raises(GraphError) as failure:
        tokens.verify_access_token(world, cae_token)
    assert (failure.value.status, failure.value.code) == (401, "InvalidAuthenticationToken")
    assert 'error="insufficient_claims"' in failure.value.headers["WWW-Authenticate"]


def test_the_auto_sign_in_setting_reads_back_so_whoever_sets_it_can_put_it_back(
    cloud: RunningCloud, world: World
) -> None:
    assert control(cloud, "GET", "/auto-sign-in").json() == {"auto_sign_in": None}
    control(cloud, "PUT", "/auto-sign-in", {"user": ALEX, "consent": "no", "grant_roles": ["Calendars.Read"]})
    setting = control(cloud, "GET", "/auto-sign-in").json()["auto_sign_in"]
    assert setting == {"user": ALEX, "consent": "decline", "grant_roles": ["Calendars.Read"]}
    control(cloud, "DELETE", "/auto-sign-in")
    control(cloud, "PUT", "/auto-sign-in", setting)  # what was read is what PUT takes
    assert control(cloud, "GET", "/auto-sign-in").json()["auto_sign_in"] == setting
