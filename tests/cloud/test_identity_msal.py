"""The service's identity flows through MSAL, unchanged, against the local Entra ID over real HTTPS."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal
import pytest

from devtools.cloud import controls, tokens
from devtools.cloud.common import GraphError
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from tests.cloud.identity_support import (
    ALEX,
    CLIENT_ID,
    CONTOSO,
    CONTOSO_ID,
    GRAPH_CALENDARS,
    GRAPH_DEFAULT,
    REDIRECT_URI,
    SECRET,
    authorize,
    browser,
    form_fields,
    msal_app,
    sign_in,
)


def test_auth_code_flow_with_pkce_yields_tokens_graph_accepts(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    app = msal_app(cloud)
    flow, auth_response = authorize(app, [GRAPH_CALENDARS])
    query = parse_qs(urlsplit(flow["auth_uri"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert auth_response["state"] == flow["state"]

    result = app.acquire_token_by_auth_code_flow(flow, auth_response)

    assert "error" not in result, result
    assert result["id_token_claims"]["preferred_username"] == ALEX
    assert result["id_token_claims"]["tid"] == CONTOSO_ID
    assert result["id_token_claims"]["aud"] == CLIENT_ID
    assert result["refresh_token"]
    caller = tokens.verify_access_token(world, result["access_token"])
    alex = controls.get_user(world, ALEX)
    assert (caller.tenant_id, caller.user_id, caller.client_id) == (CONTOSO_ID, alex.id, CLIENT_ID)
    assert "Calendars.ReadWrite" in caller.scopes
    assert app.get_accounts()[0]["username"] == ALEX


def test_id_token_carries_the_nonce_of_the_flow_and_verifies_with_the_jwks(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    app = msal_app(cloud)
    flow, auth_response = authorize(app, [GRAPH_CALENDARS])
    result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    with browser() as client:
        config = client.get(f"{cloud.authority_host}/{CONTOSO}/v2.0/.well-known/openid-configuration").json()
        jwks = client.get(config["jwks_uri"]).json()
    header = jwt.get_unverified_header(result["id_token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        result["id_token"], jwt.PyJWK(key).key, algorithms=["RS256"], audience=CLIENT_ID, issuer=config["issuer"]
    )
    # MSAL sends a hash of its nonce; the ID token must carry what was sent.
    assert claims["nonce"] == parse_qs(urlsplit(flow["auth_uri"]).query)["nonce"][0]
    assert claims["oid"] == controls.get_user(world, ALEX).id


def test_silent_refresh_after_the_access_token_expires_rotates_the_refresh_token(
    cloud: RunningCloud, world: World
) -> None:
    controls.set_auto_sign_in(world, ALEX)
    # MSAL refreshes tokens that expire within five minutes: a 60 s lifetime makes the cached one stale.
    controls.set_access_token_lifetime(world, 60)
    cache = msal.SerializableTokenCache()
    app = msal_app(cloud, cache=cache)
    first = sign_in(cloud, app, [GRAPH_CALENDARS])
    controls.expire_access_tokens(world, user=ALEX)
    with pytest.raises(Exception, match="expired"):
        tokens.verify_access_token(world, first["access_token"])

    account = app.get_accounts(username=ALEX)[0]
    second = app.acquire_token_silent_with_error([GRAPH_CALENDARS], account=account)

    assert second is not None and "access_token" in second, second
    assert second["access_token"] != first["access_token"]
    assert tokens.verify_access_token(world, second["access_token"]).user_id == account["local_account_id"]
    new_refresh = next(iter(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)))["secret"]
    assert new_refresh != first["refresh_token"]
    # "Refresh tokens aren't revoked when used": the old one still works.
    with browser() as client:
        reuse = client.post(
            f"{cloud.authority_host}/{CONTOSO}/oauth2/v2.0/token",
            data={
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "scope": f"{GRAPH_CALENDARS} offline_access",
            },
        )
    assert reuse.status_code == 200, reuse.text
    assert reuse.json()["refresh_token"] not in (first["refresh_token"], new_refresh)


def test_app_only_token_carries_the_roles_the_admin_granted(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    result = msal_app(cloud).acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in result, result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert sorted(claims["roles"]) == ["Calendars.ReadWrite", "MailboxSettings.Read", "User.Read.All"]
    caller = tokens.verify_access_token(world, result["access_token"])
    assert caller.app_only and caller.tenant_id == CONTOSO_ID


def test_app_only_token_after_partial_consent_has_only_the_granted_roles(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO, roles=["Calendars.ReadWrite"])
    result = msal_app(cloud).acquire_token_for_client([GRAPH_DEFAULT])
    assert tokens.verify_access_token(world, result["access_token"]).roles == {"Calendars.ReadWrite"}


def test_app_only_token_without_admin_grant_has_no_roles_claim(cloud: RunningCloud, world: World) -> None:
    # A user's own consent puts the app in the tenant, but grants no application permission.
    controls.grant_user_consent(world, ALEX)
    result = msal_app(cloud).acquire_token_for_client([GRAPH_DEFAULT])
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert "roles" not in claims


def test_app_only_token_for_a_tenant_that_never_consented_is_refused(cloud: RunningCloud, world: World) -> None:
    result = msal_app(cloud, instance_discovery=False).acquire_token_for_client([GRAPH_DEFAULT])
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert result["error_description"].startswith("AADSTS700016: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)


def test_app_only_token_needs_the_default_scope(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    result = msal_app(cloud, instance_discovery=False).acquire_token_for_client([GRAPH_CALENDARS])
    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [1002012]


def test_wrong_client_secret_is_invalid_client(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    result = msal_app(cloud, secret="not-the-secret", instance_discovery=False).acquire_token_for_client(
        [GRAPH_DEFAULT]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_wrong_pkce_verifier_is_invalid_grant(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    app = msal_app(cloud)
    flow, auth_response = authorize(app, [GRAPH_CALENDARS])
    flow["code_verifier"] = "a-verifier-that-does-not-hash-to-the-challenge-0123456789"
    result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [501481]


def test_an_authorization_code_is_single_use(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    app = msal_app(cloud)
    flow, auth_response = authorize(app, [GRAPH_CALENDARS])
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), auth_response)
    again = app.acquire_token_by_auth_code_flow(dict(flow), auth_response)
    assert again["error"] == "invalid_grant"
    assert again["error_codes"] == [54005]


def signed_in_with_short_lived_tokens(cloud: RunningCloud, world: World) -> msal.ConfidentialClientApplication:
    """An MSAL client with Alex signed in, whose next silent acquisition must refresh (MSAL refreshes tokens
    that expire within five minutes)."""
    controls.set_auto_sign_in(world, ALEX)
    controls.set_access_token_lifetime(world, 60)
    app = msal_app(cloud, instance_discovery=False)
    sign_in(cloud, app, [GRAPH_CALENDARS])
    return app


def refresh_silently(app: msal.ConfidentialClientApplication) -> dict[str, Any]:
    result = app.acquire_token_silent_with_error([GRAPH_CALENDARS], account=app.get_accounts()[0])
    assert result is not None
    return result


@pytest.mark.parametrize(("reason", "code"), [("revoked", 50173), ("expired", 70008), ("inactive", 700082)])
def test_revoked_refresh_token_is_invalid_grant(cloud: RunningCloud, world: World, reason: str, code: int) -> None:
    app = signed_in_with_short_lived_tokens(cloud, world)
    assert controls.revoke_refresh_tokens(world, ALEX, reason=reason) == 1
    result = refresh_silently(app)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [code]


def test_refresh_after_consent_was_withdrawn_needs_consent_again(cloud: RunningCloud, world: World) -> None:
    app = signed_in_with_short_lived_tokens(cloud, world)
    controls.withdraw_user_consent(world, ALEX)
    result = refresh_silently(app)
    assert result["error"] == "consent_required"
    assert result["error_codes"] == [65001]


def test_tenant_wide_consent_lets_users_sign_in_without_their_own(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    controls.set_auto_sign_in(world, ALEX, consent="decline")  # would refuse if asked
    result = sign_in(cloud, msal_app(cloud), [GRAPH_CALENDARS])
    assert "access_token" in result, result
    assert controls.get_user(world, ALEX).delegated_consents == {}


def test_declined_consent_redirects_with_access_denied(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX, consent="decline")
    flow, answer = authorize(msal_app(cloud), [GRAPH_CALENDARS])
    assert answer["error"] == "access_denied"
    assert answer["error_description"].startswith("AADSTS65004")
    assert answer["state"] == flow["state"]


def test_login_hint_drives_automatic_sign_in(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, None)
    result = sign_in(cloud, msal_app(cloud), [GRAPH_CALENDARS], login_hint="megan.bowen@contoso.example")
    assert result["id_token_claims"]["preferred_username"] == "megan.bowen@contoso.example"


def test_form_post_answers_with_an_auto_submitting_form(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    app = msal_app(cloud)
    flow = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI, response_mode="form_post")
    with browser() as client:
        page = client.get(flow["auth_uri"])
    assert page.status_code == 200
    assert 'onload="document.forms[0].submit()"' in page.text
    assert f'action="{REDIRECT_URI}"' in page.text
    fields = form_fields(page.text)
    assert fields["state"] == flow["state"]
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, fields)


def test_prompt_none_without_a_session_is_login_required(cloud: RunningCloud, world: World) -> None:
    _, answer = authorize(msal_app(cloud), [GRAPH_CALENDARS], prompt="none")
    assert answer["error"] == "login_required"


def test_prompt_none_with_a_session_but_no_consent_is_consent_required(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    _, answer = authorize(msal_app(cloud), [GRAPH_CALENDARS], prompt="none")
    assert answer["error"] == "consent_required"


def test_loopback_redirect_uri_may_use_any_port_but_not_another_path(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    app = msal_app(cloud)
    flow = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri="http://127.0.0.1:54321/api/auth/callback")
    with browser() as client:
        response = client.get(flow["auth_uri"])
        assert response.headers["location"].startswith("http://127.0.0.1:54321/api/auth/callback?code=")
        bad = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri="http://127.0.0.1:54321/elsewhere")
        refused = client.get(bad["auth_uri"])
        assert refused.status_code == 400
        assert "AADSTS50011" in refused.text
        foreign = app.initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri="https://evil.example/api/auth/callback")
        assert client.get(foreign["auth_uri"]).status_code == 400


def test_a_user_of_another_tenant_cannot_sign_in_through_this_tenant(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, "tom.ochieng@fabrikam.example")
    flow = msal_app(cloud, CONTOSO).initiate_auth_code_flow([GRAPH_CALENDARS], redirect_uri=REDIRECT_URI)
    with browser() as client:
        response = client.get(flow["auth_uri"])
    assert response.status_code == 400
    assert "AADSTS50020" in response.text


def test_organizations_authority_signs_in_users_of_any_tenant(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, "tom.ochieng@fabrikam.example")
    result = sign_in(cloud, msal_app(cloud, "organizations"), [GRAPH_CALENDARS])
    assert result["id_token_claims"]["tid"] == controls.get_tenant(world, "fabrikam.example").tenant_id


def test_discovery_documents_for_each_tenant_form(cloud: RunningCloud, world: World) -> None:
    with browser() as client:
        for segment in (CONTOSO_ID, CONTOSO):
            config = client.get(f"{cloud.authority_host}/{segment}/v2.0/.well-known/openid-configuration").json()
            assert config["issuer"] == f"{cloud.authority_host}/{CONTOSO_ID}/v2.0"
            assert config["token_endpoint"] == f"{cloud.authority_host}/{CONTOSO_ID}/oauth2/v2.0/token"
        for segment in ("common", "organizations"):
            config = client.get(f"{cloud.authority_host}/{segment}/v2.0/.well-known/openid-configuration").json()
            assert config["issuer"] == f"{cloud.authority_host}/{{tenantid}}/v2.0"
        unknown = client.get(f"{cloud.authority_host}/nowhere.example/v2.0/.well-known/openid-configuration")
        assert unknown.status_code == 400
        assert unknown.json()["error_codes"] == [90002]
        discovery = client.get(
            f"{cloud.authority_host}/common/discovery/instance",
            params={
                "api-version": "1.1",
                "authorization_endpoint": "https://127.0.0.1/contoso.example/oauth2/v2.0/authorize",
            },
        ).json()
        assert discovery["tenant_discovery_endpoint"] == (
            f"{cloud.authority_host}/contoso.example/v2.0/.well-known/openid-configuration"
        )
        assert discovery["api-version"] == "1.1" and discovery["metadata"]
        foreign = client.get(
            f"{cloud.authority_host}/common/discovery/instance",
            params={"authorization_endpoint": "https://login.example.net/x/oauth2/v2.0/authorize"},
        )
        assert foreign.json()["error"] == "invalid_instance"


def test_token_endpoint_accepts_http_basic_client_authentication(cloud: RunningCloud, world: World) -> None:
    controls.grant_admin_consent(world, CONTOSO)
    with httpx.Client() as client:
        response = client.post(
            f"{cloud.authority_host}/{CONTOSO_ID}/oauth2/v2.0/token",
            auth=(CLIENT_ID, SECRET),
            data={"grant_type": "client_credentials", "scope": GRAPH_DEFAULT},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and "refresh_token" not in body
    assert body["expires_in"] == 3600


def test_expired_access_token_fails_graph_check(cloud: RunningCloud, world: World) -> None:
    token = tokens.issue_access_token(
        world, tenant_id=CONTOSO_ID, client_id=CLIENT_ID, roles=["Calendars.Read"], lifetime=1
    )
    time.sleep(1.1)
    with pytest.raises(Exception, match="Access token has expired or is not yet valid."):
        tokens.verify_access_token(world, token)


def test_a_token_checked_once_is_checked_for_expiry_and_revocation_on_every_use(
    cloud: RunningCloud, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alex = controls.get_user(world, ALEX)
    token = tokens.issue_access_token(
        world, tenant_id=CONTOSO_ID, client_id=CLIENT_ID, user_id=alex.id, scopes=["User.Read"], lifetime=60
    )
    assert tokens.verify_access_token(world, token).user_id == alex.id  # signature checked and remembered
    assert tokens.verify_access_token(world, token).user_id == alex.id
    later = time.time() + 61
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: later))
    with pytest.raises(GraphError, match="Access token has expired or is not yet valid."):
        tokens.verify_access_token(world, token)
    monkeypatch.undo()
    assert controls.expire_access_tokens(world, user=ALEX) == 1
    with pytest.raises(GraphError):
        tokens.verify_access_token(world, token)


def test_msal_looks_up_aliases_at_microsoft_after_a_failed_silent_acquisition(
    cloud: RunningCloud, world: World
) -> None:
    """Pins the MSAL behaviour that makes error-path tests use ``instance_discovery=False``."""
    import requests

    asked: list[str] = []

    class CloudOnly(requests.Session):
        def request(self, method: str, url: str, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
            asked.append(url)
            if not url.startswith(cloud.base_url):
                raise requests.ConnectionError(f"offline: {url}")
            return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]

    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=SECRET,
        authority=f"{cloud.authority_host}/{CONTOSO}",
        instance_discovery=f"{cloud.authority_host}/common/discovery/instance",
        http_client=CloudOnly(),
    )
    with pytest.raises(requests.ConnectionError):
        app.acquire_token_for_client([GRAPH_DEFAULT])  # no consent: the token endpoint answers an error
    assert asked[0].startswith(f"{cloud.authority_host}/common/discovery/instance")
    assert asked[-1].startswith("https://login.microsoftonline.com/common/discovery/instance")


def test_tokens_from_msal_open_graph_on_the_same_host(cloud: RunningCloud, world: World) -> None:
    controls.set_auto_sign_in(world, ALEX)
    controls.grant_admin_consent(world, CONTOSO)
    app = msal_app(cloud)
    delegated = sign_in(cloud, app, [GRAPH_CALENDARS])
    app_only = app.acquire_token_for_client([GRAPH_DEFAULT])
    with httpx.Client() as client:
        me = client.get(f"{cloud.graph_url}/me", headers={"Authorization": f"Bearer {delegated['access_token']}"})
        megan = client.get(
            f"{cloud.graph_url}/users/megan.bowen@contoso.example",
            headers={"Authorization": f"Bearer {app_only['access_token']}"},
        )
        anonymous = client.get(f"{cloud.graph_url}/me")
    assert me.status_code == 200 and me.json()["userPrincipalName"] == ALEX
    assert megan.status_code == 200 and megan.json()["displayName"] == "Megan Bowen"
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"


def _graph_me(cloud: RunningCloud, access_token: str) -> httpx.Response:
    with httpx.Client() as client:
        return client.get(f"{cloud.graph_url}/me", headers={"Authorization": f"Bearer {access_token}"})


def test_a_revoked_token_of_a_cae_capable_client_gets_a_claims_challenge_msal_redeems(
    cloud: RunningCloud, world: World
) -> None:
    from shared.adapters.graph_requests import claims_challenge

    controls.set_auto_sign_in(world, ALEX)
    controls.grant_admin_consent(world, CONTOSO)
    app = msal_app(cloud, client_capabilities=["cp1"])
    first = sign_in(cloud, app, [GRAPH_CALENDARS])
    assert jwt.decode(first["access_token"], options={"verify_signature": False})["xms_cc"] == ["cp1"]
    assert controls.expire_access_tokens(world, user=ALEX) == 1

    refused = _graph_me(cloud, first["access_token"])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    challenge = claims_challenge(refused.headers["WWW-Authenticate"])
    assert challenge is not None and '"nbf"' in challenge

    account = app.get_accounts(username=ALEX)[0]
    second = app.acquire_token_silent_with_error([GRAPH_CALENDARS], account, claims_challenge=challenge)
    assert second is not None and "access_token" in second, second
    assert _graph_me(cloud, second["access_token"]).status_code == 200


def test_a_revoked_token_of_a_client_without_the_capability_is_refused_without_a_challenge(
    cloud: RunningCloud, world: World
) -> None:
    controls.set_auto_sign_in(world, ALEX)
    controls.grant_admin_consent(world, CONTOSO)
    app = msal_app(cloud)
    first = sign_in(cloud, app, [GRAPH_CALENDARS])
    controls.expire_access_tokens(world, user=ALEX)
    refused = _graph_me(cloud, first["access_token"])
    assert refused.status_code == 401
    assert "WWW-Authenticate" not in refused.headers


def test_revoking_sign_in_sessions_ends_refresh_tokens_access_tokens_and_browser_sessions(
    cloud: RunningCloud, world: World
) -> None:
    from devtools.cloud.signin import signin_state

    controls.set_auto_sign_in(world, ALEX)
    controls.grant_admin_consent(world, CONTOSO)
    app = msal_app(cloud, client_capabilities=["cp1"], instance_discovery=False)
    first = sign_in(cloud, app, [GRAPH_CALENDARS])
    alex = controls.get_user(world, ALEX)
    signin_state(world).sessions["a-browser"] = alex.id
    assert controls.revoke_sign_in_sessions(world, ALEX) >= 1

    assert _graph_me(cloud, first["access_token"]).status_code == 401
    account = app.get_accounts(username=ALEX)[0]
    result = app.acquire_token_silent_with_error([GRAPH_CALENDARS], account, force_refresh=True)
    assert result is not None and result["error"] == "invalid_grant" and 50173 in result["error_codes"]
    assert alex.id not in signin_state(world).sessions.values()
