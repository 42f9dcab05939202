from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app  # registers the blueprints and hands the route table to the catch-all
from functions import admin_consent, directory, health, oauth_callback, tenants
from functions._http import http_endpoint
from shared.models import MailboxPurpose
from tests.kit import ADMIN, TENANT_A, USER, FakeDeps, consented, error_of, request, sign_in


def test_unknown_route_is_a_json_404() -> None:
    response = health.not_found(request("GET", "http://localhost/api/nothing/here"))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_calendar_endpoint_without_session_is_signin_required(deps: FakeDeps) -> None:
    response = oauth_callback.me(request("GET", "http://localhost/api/me"))
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "signin_required"
    assert error["login_url"] == "https://svc.example/api/auth/login"


def test_calendar_endpoint_of_unconsented_tenant_is_admin_consent_required(deps: FakeDeps) -> None:
    consented(deps)
    credential = sign_in(deps)
    deps.tenants.delete_tenant(next(iter(deps.tenants.items))[0])
    response = directory.directory_user(
        request(
            "GET",
            "http://localhost/api/directory/users/x",
            headers={"Authorization": f"Bearer {credential}"},
            route_params={"user": "x"},
        )
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "admin_consent_required"
    assert "consent_request_url" in error_of(response)


@pytest.fixture
def admin_credential(deps: FakeDeps) -> str:
    consented(deps)
    return sign_in(deps, ADMIN)


def _put_settings(credential: str, body: bytes, content_type: str | None = "application/json") -> func.HttpResponse:
    headers = {"Authorization": f"Bearer {credential}"}
    if content_type:
        headers["Content-Type"] = content_type
    return tenants.tenant_settings_put(
        request("PUT", "http://localhost/api/tenants/me/settings", body=body, headers=headers)
    )


def test_malformed_json_is_a_400(admin_credential: str) -> None:
    response = _put_settings(admin_credential, b"{not json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_json_that_is_not_an_object_is_a_400(admin_credential: str) -> None:
    response = _put_settings(admin_credential, b"[1, 2]")
    assert response.status_code == 400


def test_wrong_content_type_is_a_415(admin_credential: str) -> None:
    response = _put_settings(admin_credential, b'{"sync_mailbox": null}', "text/plain")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_oversized_body_is_a_413(admin_credential: str) -> None:
    response = _put_settings(admin_credential, b'{"x": "' + b"a" * (1024 * 1024) + b'"}')
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_settings_round_trip(admin_credential: str, deps: FakeDeps) -> None:
    deps.graph.purposes[TENANT_A] = {"interviews@contoso.example": MailboxPurpose.SHARED}  # the tenant holds it
    response = _put_settings(admin_credential, b'{"interviews_mailbox": "Interviews@Contoso.example"}')
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"interviews_mailbox": "interviews@contoso.example", "sync_mailbox": None}


def test_settings_naming_a_mailbox_the_tenant_does_not_hold_are_refused_naming_the_field(
    admin_credential: str, deps: FakeDeps
) -> None:
    deps.graph.purposes[TENANT_A] = {"interviews@contoso.example": MailboxPurpose.SHARED}
    response = _put_settings(
        admin_credential, b'{"interviews_mailbox": "interviews@contoso.example", "sync_mailbox": "sync@other.example"}'
    )
    assert response.status_code == 400
    assert error_of(response)["field"] == "sync_mailbox"
    assert deps.tenants.get_tenant(TENANT_A).interviews_mailbox is None  # nothing saved


def test_settings_may_name_a_mailbox_not_created_yet_on_the_admin_s_own_domain(
    admin_credential: str, deps: FakeDeps
) -> None:
    response = _put_settings(admin_credential, b'{"interviews_mailbox": "interviews.new@contoso.example"}')
    assert response.status_code == 200  # readiness then reports that it does not exist
    assert deps.tenants.get_tenant(TENANT_A).interviews_mailbox == "interviews.new@contoso.example"


def test_settings_are_not_saved_when_the_directory_cannot_be_read(admin_credential: str, deps: FakeDeps) -> None:
    from shared.errors import UpstreamUnavailable

    deps.graph.purpose_failure = UpstreamUnavailable("Microsoft Graph did not answer.")
    response = _put_settings(admin_credential, b'{"interviews_mailbox": "interviews@contoso.example"}')
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert error_of(response)["code"] == "graph_unavailable"
    assert deps.tenants.get_tenant(TENANT_A).interviews_mailbox is None


def test_unexpected_exception_is_a_generic_500_without_details() -> None:
    @http_endpoint
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret-looking internal detail")

    response = broken(request("GET", "http://localhost/api/x"))
    assert response.status_code == 500
    assert b"secret-looking" not in response.get_body()
    assert error_of(response)["code"] == "internal_error"


def test_consent_start_redirects_with_a_binding_cookie(deps: FakeDeps) -> None:
    response = admin_consent.consent_start(
        request("GET", "http://localhost/api/consent/start", params={"tenant": "contoso.example"})
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://login.example/contoso.example/v2.0/adminconsent")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("ics_consent_flow=") and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=Lax" in cookie


def test_consent_start_without_tenant_is_a_400(deps: FakeDeps) -> None:
    response = admin_consent.consent_start(request("GET", "http://localhost/api/consent/start"))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


def test_callback_with_forged_state_shows_a_page_and_sets_no_session(deps: FakeDeps) -> None:
    response = oauth_callback.auth_callback(
        request("GET", "http://localhost/api/auth/callback", params={"state": "forged", "code": "x"})
    )
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "ics_session=" not in response.headers.get("Set-Cookie", "")
    assert deps.sessions.items == {}


def test_form_post_callback_needs_a_form(deps: FakeDeps) -> None:
    response = oauth_callback.auth_callback(
        request("POST", "http://localhost/api/auth/callback", body=b"{}", headers={"Content-Type": "application/json"})
    )
    assert response.status_code == 415


def test_login_then_callback_sets_a_secure_session_cookie(deps: FakeDeps) -> None:
    consented(deps)
    login = oauth_callback.auth_login(
        request("GET", "http://localhost/api/auth/login", params={"return_to": "https://app.example/after-login"})
    )
    assert login.status_code == 302
    binding = login.headers["Set-Cookie"].split(";")[0]
    state = login.headers["Location"].split("state=")[1]

    deps.identity.signin_as = USER
    callback = oauth_callback.auth_callback(
        request(
            "GET",
            "http://localhost/api/auth/callback",
            params={"state": state, "code": "c"},
            headers={"Cookie": binding},
        )
    )
    assert callback.status_code == 302
    assert callback.headers["Location"] == "https://app.example/after-login"
    cookie = callback.headers["Set-Cookie"]
    assert cookie.startswith("ics_session=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax"):
        assert attribute in cookie
    session_cookie = cookie.split(";")[0]
    me = oauth_callback.me(request("GET", "http://localhost/api/me", headers={"Cookie": session_cookie}))
    assert me.status_code == 200
    assert json.loads(me.get_body())["user"]["username"] == "rita@contoso.example"
    logout = oauth_callback.auth_logout(
        request("POST", "http://localhost/api/auth/logout", headers={"Cookie": session_cookie})
    )
    assert logout.status_code == 204
    again = oauth_callback.me(request("GET", "http://localhost/api/me", headers={"Cookie": session_cookie}))
    assert again.status_code == 401


def test_missing_client_id_is_a_clear_configuration_error() -> None:
    from shared.bootstrap import Container, set_container
    from shared.config import Settings

    set_container(Container(Settings.from_env({})))
    try:
        response = admin_consent.consent_start(
            request("GET", "http://localhost/api/consent/start", params={"tenant": "contoso.example"})
        )
    finally:
        set_container(None)
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "configuration_error"
    assert "CLIENT_ID" in error["message"]


class _Storage:
    def __init__(self, up: bool) -> None:
        self.up = up

    def check(self) -> bool:
        if not self.up:
            from shared.errors import UpstreamUnavailable

            raise UpstreamUnavailable("Table Storage is unreachable.")
        return True


class _Keys:
    def current(self) -> tuple[str, bytes]:
        return "v7", b"k" * 32


class _Probe:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def reachable(self, url: str) -> str:
        self.urls.append(url)
        return "answered HTTP 401"


@pytest.mark.parametrize(("storage_up", "status"), [(True, 200), (False, 503)])
def test_health_details_report_each_dependency_without_secrets(storage_up: bool, status: int) -> None:
    from shared.bootstrap import Container, set_container
    from shared.config import Settings

    probe = _Probe()
    settings = Settings.from_env({"CLIENT_SECRET": "never-shown-secret"})
    set_container(Container(settings, storage=_Storage(storage_up), key_source=_Keys(), probe=probe))
    try:
        response = health.health_details(request("GET", "http://localhost/api/health/details"))
    finally:
        set_container(None)
    assert response.status_code == status
    body = json.loads(response.get_body())
    assert body["status"] == ("healthy" if storage_up else "unhealthy")
    assert body["checks"]["storage"]["ok"] is storage_up
    assert body["checks"]["key_source"] == {
        "ok": True,
        "latency_ms": body["checks"]["key_source"]["latency_ms"],
        "detail": "local key file, key version v7",
    }
    assert sorted(probe.urls) == [
        "https://graph.microsoft.com/v1.0/me",
        "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
    ]
    assert b"never-shown-secret" not in response.get_body()
    assert b"k" * 32 not in response.get_body()


@pytest.mark.parametrize(("storage_up", "status", "word"), [(True, 200, "ok"), (False, 503, "failing")])
def test_anonymous_health_answers_liveness_only(storage_up: bool, status: int, word: str) -> None:
    from shared.bootstrap import Container, set_container
    from shared.config import Settings

    probe = _Probe()
    set_container(Container(Settings.from_env({}), storage=_Storage(storage_up), key_source=_Keys(), probe=probe))
    try:
        response = health.health(request("GET", "http://localhost/api/health"))
    finally:
        set_container(None)
    assert response.status_code == status
    assert json.loads(response.get_body()) == {"status": word}  # no key version, endpoint or path
    assert probe.urls == []  # an anonymous probe makes no outbound call


def test_a_known_path_with_a_method_it_does_not_serve_is_405_with_allow() -> None:
    response = health.not_found(
        request("GET", "http://localhost/api/availability", route_params={"path": "availability"})
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert error_of(response)["code"] == "method_not_allowed"
    settings = health.not_found(
        request("DELETE", "http://localhost/api/tenants/me/settings", route_params={"path": "tenants/me/settings"})
    )
    assert settings.status_code == 405 and settings.headers["Allow"] == "GET, PUT"
    directory = health.not_found(
        request("POST", "http://localhost/api/directory/users/x", route_params={"path": "directory/users/x"})
    )
    assert directory.status_code == 405 and directory.headers["Allow"] == "GET"
    unknown = health.not_found(request("GET", "http://localhost/api/nope", route_params={"path": "nope"}))
    assert unknown.status_code == 404


def test_405_still_works_after_the_worker_indexed_the_app() -> None:
    from tests.app_functions import app_functions

    app_functions()  # the indexer's one call of get_functions(), which may not run twice
    health.routes.serve(function_app.blueprints)  # read the route table afresh, after indexing
    response = health.not_found(request("PUT", "http://localhost/api/me", route_params={"path": "me"}))
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
