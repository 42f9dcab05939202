"""Inputs that once crashed a handler or slipped through: each answers a clear 4xx now."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func
import pytest

from functions import admin_consent, booking, directory, oauth_callback, tenants
from shared.errors import TokenIntegrityError
from tests.kit import ADMIN, USER, FakeDeps, consented, error_of, install, request, sign_in

ALLOWED = "https://app.example/after-login"


def _login(**params: str) -> func.HttpResponse:
    return oauth_callback.auth_login(request("GET", "http://localhost/api/auth/login", params=params))


def _callback(login: func.HttpResponse, *, cookie: str | None = None) -> func.HttpResponse:
    state = login.headers["Location"].split("state=")[1]
    binding = login.headers["Set-Cookie"].split(";")[0] if cookie is None else cookie
    return oauth_callback.auth_callback(
        request(
            "GET",
            "http://localhost/api/auth/callback",
            params={"state": state, "code": "c"},
            headers={"Cookie": binding} if binding else {},
        )
    )


@pytest.mark.parametrize(
    "return_to",
    [
        "http://%5B::1",  # urlsplit: Invalid IPv6 URL
        "http://[::1",
        "http://a]b/app",
        "http://app.example\uff03/after-login",  # a fullwidth number sign changes under NFKC
        "https://app.example:99999/after-login",
        "https://app.example/after-login?x=\x0b",
        "https://app.example/after-login?x=\x00",
        "https://app.example/after-login?x=\u202egnp.exe",
        "https://user:pw@app.example/after-login",
        "javascript:alert(1)",
    ],
)
def test_login_refuses_a_malformed_return_address_before_storing_anything(deps: FakeDeps, return_to: str) -> None:
    response = _login(return_to=return_to)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"
    assert "Set-Cookie" not in response.headers
    assert deps.flows.items == {} and deps.sessions.items == {}


def test_non_latin1_return_query_is_percent_encoded_and_the_callback_redirects(deps: FakeDeps) -> None:
    consented(deps)
    deps.identity.signin_as = USER
    login = _login(return_to=f"{ALLOWED}?name=J\u00fcrgen&city=\u6771\u4eac")
    assert login.status_code == 302
    callback = _callback(login)
    assert callback.status_code == 302
    location = callback.headers["Location"]
    location.encode("latin-1")  # a Location header must encode; it is plain ASCII now
    assert location == f"{ALLOWED}?name=J%C3%BCrgen&city=%E6%9D%B1%E4%BA%AC"


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"sync_mailbox": ' + b"9" * 5000 + b"}",
    ],
    ids=["deep-array", "deep-object", "huge-integer"],
)
def test_settings_refuse_pathological_json_with_a_400(deps: FakeDeps, body: bytes) -> None:
    consented(deps)
    credential = sign_in(deps, ADMIN)
    response = _put_settings(credential, body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_malformed_json_says_where_in_plain_words(deps: FakeDeps) -> None:
    consented(deps)
    credential = sign_in(deps, ADMIN)
    message = error_of(_put_settings(credential, b'{"sync_mailbox": "a@b.example",}'))["message"]
    assert "line 1, column 32" in message
    assert "JSONDecodeError" not in message and "Error" not in message


def test_non_admin_hears_403_before_the_body_is_read(deps: FakeDeps) -> None:
    consented(deps)
    credential = sign_in(deps)  # not an admin
    for body in (b"{not json", b"[" * 100_000, b'{"sync_mailbox": ' + b"9" * 5000 + b"}"):
        response = _put_settings(credential, body)
        assert response.status_code == 403
        assert error_of(response)["code"] == "forbidden"


def _put_settings(credential: str, body: bytes) -> func.HttpResponse:
    return tenants.tenant_settings_put(
        request(
            "PUT",
            "http://localhost/api/tenants/me/settings",
            body=body,
            headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
        )
    )


@pytest.mark.parametrize(
    "mailbox",
    [
        "inter\x00views@contoso.example",
        "interviews\u202e@contoso.example",
        "inter/views@contoso.example",
        "..interviews@contoso.example",
        "interviews@contoso..example",
        "interviews@contoso.example\n",
        "not an address",
    ],
)
def test_settings_refuse_a_mailbox_that_is_not_a_plain_address(deps: FakeDeps, mailbox: str) -> None:
    consented(deps)
    credential = sign_in(deps, ADMIN)
    response = _put_settings(credential, json.dumps({"interviews_mailbox": mailbox}).encode())
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize("sender", ["rita@contoso.example\r\nBcc: x@evil.example", "Rita\u202e", "rita"])
def test_consent_email_refuses_a_from_that_is_not_an_address(deps: FakeDeps, sender: str) -> None:
    response = admin_consent.consent_request(
        request("GET", "http://localhost/api/consent/request", params={"tenant": "contoso.example", "from": sender})
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("handler", "params"),
    [
        (oauth_callback.auth_login, {"login_hint": "rita\u202e@contoso.example"}),
        (oauth_callback.auth_login, {"features": "automation\x00"}),
        (admin_consent.consent_start, {"tenant": "contoso.example\x00"}),
        (admin_consent.consent_start, {"tenant": "contoso.example\n"}),
        (admin_consent.consent_request, {"tenant": "\u202econtoso.example"}),
    ],
)
def test_control_and_bidi_characters_are_refused_in_text_inputs(
    deps: FakeDeps, handler: Any, params: dict[str, str]
) -> None:
    response = handler(request("GET", "http://localhost/api/x", params=params))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("handler", "route_params"),
    [
        (booking.booking_get, {"booking_id": "x\n"}),
        (directory.directory_user, {"user": "rita@contoso.example\n"}),
    ],
)
def test_route_values_with_a_trailing_newline_are_refused(
    deps: FakeDeps, handler: Any, route_params: dict[str, str]
) -> None:
    consented(deps)
    credential = sign_in(deps)
    response = handler(
        request(
            "GET",
            "http://localhost/api/x",
            headers={"Authorization": f"Bearer {credential}"},
            route_params=route_params,
        )
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


class _UnreadableCaches:
    def load_cache(self, tenant_id: str, owner: str) -> str | None:
        raise TokenIntegrityError(
            "Stored token failed authentication.",
            reason="authentication_failed",
            tenant_id=tenant_id,
            record_id=f"tokencache/{owner}",
            key_version="k-secret-version",
        )

    def save_cache(self, tenant_id: str, owner: str, serialized: str) -> None:
        pass

    def delete_cache(self, tenant_id: str, owner: str) -> None:
        pass


def test_unreadable_token_cache_asks_the_user_to_sign_in_again_and_tells_only_operators(
    deps: FakeDeps, caplog: pytest.LogCaptureFixture
) -> None:
    consented(deps)
    credential = sign_in(deps)
    deps.token_caches = _UnreadableCaches()  # type: ignore[assignment]
    install(deps)
    with caplog.at_level(logging.ERROR):
        response = booking.booking_get(
            request(
                "GET",
                "http://localhost/api/bookings/b1",
                headers={"Authorization": f"Bearer {credential}"},
                route_params={"booking_id": "b" * 26},
            )
        )
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "reauth_required"
    body = response.get_body().decode()
    for detail in ("k-secret-version", "tokencache/", "aaaaaaaa-0000", "authentication_failed"):
        assert detail not in body
    assert "k-secret-version" in caplog.text  # operators see which record and key version failed


def test_logout_everywhere_ends_every_session_of_the_user(deps: FakeDeps) -> None:
    consented(deps)
    first, second = sign_in(deps), sign_in(deps)
    response = oauth_callback.auth_logout(
        request(
            "POST",
            "http://localhost/api/auth/logout",
            headers={"Authorization": f"Bearer {first}"},
            params={"everywhere": "true"},
        )
    )
    assert response.status_code == 204
    me = oauth_callback.me(request("GET", "http://localhost/api/me", headers={"Authorization": f"Bearer {second}"}))
    assert me.status_code == 401
    assert deps.token_caches.items == {}


def test_plain_logout_leaves_the_other_sessions_fully_working(deps: FakeDeps) -> None:
    consented(deps)
    first, second = sign_in(deps), sign_in(deps)
    oauth_callback.auth_logout(
        request("POST", "http://localhost/api/auth/logout", headers={"Authorization": f"Bearer {first}"})
    )
    me = oauth_callback.me(request("GET", "http://localhost/api/me", headers={"Authorization": f"Bearer {second}"}))
    assert me.status_code == 200
    assert json.loads(me.get_body())["token_health"]["status"] == "ok"


def test_callback_without_the_browser_cookie_leaves_the_real_flow_usable(deps: FakeDeps) -> None:
    consented(deps)
    deps.identity.signin_as = USER
    login = _login()
    attacker = _callback(login, cookie="")
    assert attacker.status_code == 400 and attacker.mimetype == "text/html"
    victim = _callback(login)
    assert victim.status_code == 200
    assert victim.headers["Set-Cookie"].startswith("ics_session=")
    replay = _callback(login)
    assert replay.status_code == 400


def test_anonymous_logins_and_consent_starts_store_nothing(deps: FakeDeps) -> None:
    for _ in range(50):
        assert _login().status_code == 302
        started = admin_consent.consent_start(
            request("GET", "http://localhost/api/consent/start", params={"tenant": "contoso.example"})
        )
        assert started.status_code == 302
    assert deps.flows.items == {} and deps.sessions.items == {} and deps.users.items == {}
