from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from functions._views import me_json
from shared.errors import (
    AdminApprovalRequired,
    AdminConsentRequired,
    ConsentDeclined,
    InteractionRequired,
    InvalidFlowState,
    InvalidRequest,
    ReauthRequired,
    SigninDenied,
    SigninRequired,
)
from shared.identity.guard import authenticate_session, hash_secret, require_calendar_access
from shared.identity.signin import complete_signin, describe_me, logout, parse_features, start_signin
from shared.identity.tokens import app_token
from shared.models import ConsentStatus, SigninResult, TokenHealth
from tests.kit import ALL_ROLES, TENANT_A, USER, FakeDeps, consented, sign_in


def test_signin_creates_user_session_and_encrypted_cache_slot() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    session = deps.sessions.get_session(hash_secret(credential))
    assert credential not in str(deps.sessions.items)  # only the hash is stored
    assert session.expires_at == deps.clock.now() + timedelta(seconds=deps.settings.session_ttl_seconds)
    assert deps.users.get_user(TENANT_A, "u1").username == "rita@contoso.example"
    assert deps.token_caches.load_cache(TENANT_A, "u1") == '{"user": "cache"}'


def test_user_of_unconsented_tenant_is_not_signed_in() -> None:
    deps = FakeDeps()
    with pytest.raises(AdminConsentRequired) as caught:
        sign_in(deps)
    assert caught.value.details["consent_request_url"].endswith(f"/api/consent/request?tenant={TENANT_A}")
    assert deps.sessions.items == {} and deps.users.items == {} and deps.token_caches.items == {}


def test_signin_state_is_single_use_and_bound_to_browser() -> None:
    deps = FakeDeps()
    consented(deps)
    start = start_signin(deps)
    state = start.redirect_url.split("state=")[1]
    deps.identity.signin_as = USER
    with pytest.raises(InvalidFlowState):
        complete_signin(deps, {"state": state, "code": "c"}, "another-browser")
    complete_signin(deps, {"state": state, "code": "c"}, start.binding)
    with pytest.raises(InvalidFlowState):  # a replay of the accepted callback
        complete_signin(deps, {"state": state, "code": "c"}, start.binding)
    assert len(deps.sessions.items) == 1


def test_callback_without_the_browser_cookie_does_not_consume_the_flow() -> None:
    deps = FakeDeps()
    consented(deps)
    start = start_signin(deps)
    state = start.redirect_url.split("state=")[1]
    deps.identity.signin_as = USER
    for stolen_binding in (None, "", start_signin(deps).binding):
        with pytest.raises(InvalidFlowState):
            complete_signin(deps, {"state": state, "code": "c"}, stolen_binding)
    assert deps.flows.items == {}
    assert complete_signin(deps, {"state": state, "code": "c"}, start.binding).user.user_id == "u1"


def _sealed_flow(deps: FakeDeps, binding: str, state: str) -> dict[str, Any]:
    opened = deps.cipher.decrypt(binding, tenant_id="", record_id=f"flowcookie/signin/{hash_secret(state)}")
    return json.loads(opened)["data"]  # type: ignore[no-any-return]


def test_return_address_must_be_on_the_allow_list() -> None:
    deps = FakeDeps()
    with pytest.raises(InvalidRequest):
        start_signin(deps, return_to="https://evil.example/after-login")
    with pytest.raises(InvalidRequest):
        start_signin(deps, return_to="https://app.example/after-login/../x")
    start_signin(deps, return_to="https://app.example/after-login?tab=2")


def test_automation_feature_asks_for_mail_scopes_only_when_opted_in() -> None:
    deps = FakeDeps()
    consented(deps)
    plain = start_signin(deps)
    flow = _sealed_flow(deps, plain.binding, plain.redirect_url.split("state=")[1])
    assert "Mail.Send" not in flow["flow"]["scope"]
    opted = start_signin(deps, features=parse_features("automation"))
    flow = _sealed_flow(deps, opted.binding, opted.redirect_url.split("state=")[1])
    assert {"Mail.Read", "Mail.Send"} <= set(flow["flow"]["scope"])
    with pytest.raises(InvalidRequest):
        parse_features("everything")


def test_features_follow_granted_scopes() -> None:
    deps = FakeDeps()
    consented(deps)
    result = SigninResult(**{**USER.__dict__, "scopes": USER.scopes + ("Mail.Read", "Mail.Send")})
    sign_in(deps, result, features=("automation",))
    assert deps.users.get_user(TENANT_A, "u1").features == ("automation",)


def test_two_token_rule_needs_session_and_consent() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    assert require_calendar_access(deps, credential).tenant_id == TENANT_A
    with pytest.raises(SigninRequired):
        require_calendar_access(deps, None)
    with pytest.raises(SigninRequired):
        require_calendar_access(deps, "not-a-session")
    deps.tenants.delete_tenant(TENANT_A)
    with pytest.raises(AdminConsentRequired):
        require_calendar_access(deps, credential)


def test_expired_session_requires_signin() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    deps.clock.advance(seconds=deps.settings.session_ttl_seconds)
    with pytest.raises(SigninRequired):
        require_calendar_access(deps, credential)


def test_revoked_refresh_token_marks_user_and_does_not_retry() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    deps.identity.revoked_users.add("u1")
    with pytest.raises(ReauthRequired):
        require_calendar_access(deps, credential)
    assert deps.users.get_user(TENANT_A, "u1").token_health is TokenHealth.REAUTH_REQUIRED
    calls = len(deps.identity.calls)
    for _ in range(3):
        with pytest.raises(ReauthRequired) as caught:
            require_calendar_access(deps, credential)
        assert caught.value.details["login_url"].endswith("/api/auth/login")
    assert len(deps.identity.calls) == calls  # marked once; no refresh loop
    me = me_json(describe_me(deps, authenticate_session(deps, credential)))
    assert me["token_health"]["status"] == "reauth_required"


def test_signing_in_again_clears_reauth() -> None:
    deps = FakeDeps()
    consented(deps)
    sign_in(deps)
    deps.identity.revoked_users.add("u1")
    deps.users.update_user(
        deps.users.get_user(TENANT_A, "u1").__class__(
            **{**deps.users.get_user(TENANT_A, "u1").__dict__, "token_health": TokenHealth.REAUTH_REQUIRED}
        )
    )
    deps.identity.revoked_users.clear()
    credential = sign_in(deps)
    assert require_calendar_access(deps, credential).user.token_health is TokenHealth.OK


def test_withdrawn_consent_marks_tenant_and_blocks_calendar_calls() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    del deps.identity.roles[TENANT_A]
    with pytest.raises(AdminConsentRequired):
        app_token(deps, TENANT_A)
    assert deps.tenants.get_tenant(TENANT_A).consent_status is ConsentStatus.NEEDS_ATTENTION
    with pytest.raises(AdminConsentRequired):
        require_calendar_access(deps, credential)
    deps.identity.roles[TENANT_A] = ALL_ROLES  # the admin consents again
    deps.clock.advance(seconds=61)
    assert require_calendar_access(deps, credential).tenant is not None


def test_logout_ends_only_this_session_and_keeps_the_token_cache() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    other = sign_in(deps)
    logout(deps, credential)
    with pytest.raises(SigninRequired):
        require_calendar_access(deps, credential)
    # The user's other session keeps working fully: its token cache is still there.
    assert require_calendar_access(deps, other).user_access is not None
    assert deps.token_caches.load_cache(TENANT_A, "u1") == '{"user": "cache"}'
    logout(deps, credential)  # already signed out: still fine


def test_sign_out_everywhere_ends_every_session_and_deletes_the_token_cache() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    other = sign_in(deps)
    logout(deps, credential, everywhere=True)
    assert deps.token_caches.load_cache(TENANT_A, "u1") is None
    for ended in (credential, other):
        with pytest.raises(SigninRequired):  # not a half-working session that only fails later
            require_calendar_access(deps, ended)


def test_login_hint_and_prompt_are_passed_to_microsoft() -> None:
    deps = FakeDeps()
    for prompt in ("login", "none", "consent", "select_account"):
        start_signin(deps, login_hint="megan.bowen@contoso.example", prompt=prompt)
    assert [s["prompt"] for s in deps.identity.started] == ["login", "none", "consent", "select_account"]
    assert {s["login_hint"] for s in deps.identity.started} == {"megan.bowen@contoso.example"}


@pytest.mark.parametrize("prompt", ["admin_consent", "LOGIN", "login ", "login\nnone", "none,login"])
def test_a_prompt_outside_entras_four_values_is_refused(prompt: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        start_signin(FakeDeps(), prompt=prompt)
    assert caught.value.details["parameter"] == "prompt"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"error": "access_denied", "error_description": "AADSTS90094: Admin consent is required."},
            AdminApprovalRequired,
        ),
        ({"error": "access_denied", "error_description": "AADSTS65004: User declined to consent."}, ConsentDeclined),
        ({"error": "login_required", "error_description": "AADSTS50058: No user is signed in."}, InteractionRequired),
        ({"error": "interaction_required", "error_description": "AADSTS16000: SelectUserAccount"}, InteractionRequired),
        ({"error": "consent_required", "error_description": "AADSTS65001: not consented"}, InteractionRequired),
        ({"error": "server_error", "error_description": "AADSTS90033: transient"}, SigninDenied),
    ],
)
def test_each_error_redirect_of_the_sign_in_is_told_apart_by_its_aadsts_number(
    params: dict[str, str], expected: type[SigninDenied]
) -> None:
    deps = FakeDeps()
    start = start_signin(deps, login_hint="megan.bowen@contoso.example")
    state = parse_qs(urlsplit(start.redirect_url).query)["state"][0]
    with pytest.raises(SigninDenied) as caught:
        complete_signin(deps, {"state": state, **params}, start.binding)
    assert type(caught.value) is expected
    assert caught.value.details["reason"] == params["error_description"].split(":")[0]
    if expected is AdminApprovalRequired:
        assert caught.value.details["consent_request_url"].endswith("/api/consent/request?tenant=contoso.example")
