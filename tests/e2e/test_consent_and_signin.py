"""Admin consent, recruiter sign-in and the two-token rule, end to end through MSAL unchanged."""

from __future__ import annotations

import time
from datetime import UTC
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from devtools.cloud import controls
from shared.bootstrap import get_container
from shared.errors import NotFound
from shared.models import ConsentStatus, TokenHealth
from tests.e2e.browser import Browser
from tests.e2e.conftest import Stack
from tests.kit import (
    CONTOSO,
    CONTOSO_ADMIN,
    FABRIKAM,
    FABRIKAM_ADMIN,
    FABRIKAM_RECRUITER,
    KEY,
    RECRUITER,
    consent,
)
from tests.kit import browser_sign_in as sign_in

pytestmark = pytest.mark.e2e


def api(browser: Browser, method: str, path: str, **kwargs: object) -> object:
    return browser.request(method, path, headers=KEY, **kwargs)


def test_admin_consents_recruiter_signs_in_refreshes_and_signs_out(e2e: Stack) -> None:
    admin = consent(e2e)
    assert admin.last_page.status_code == 200, admin.last_page.text  # type: ignore[attr-defined]
    assert "all set" in admin.last_page.text  # type: ignore[attr-defined]
    tenant = get_container().tenants.get_tenant(CONTOSO)
    assert tenant.consent_status is ConsentStatus.CONSENTED
    assert set(tenant.granted_roles) == {"Calendars.ReadWrite", "User.Read.All", "MailboxSettings.Read"}

    # Short-lived access tokens make every silent acquisition a refresh (MSAL refreshes within 5 minutes).
    controls.set_access_token_lifetime(e2e.world, 120)
    recruiter = sign_in(e2e)
    assert recruiter.last_page.status_code == 200, recruiter.last_page.text  # type: ignore[attr-defined]
    assert recruiter.service_cookie("ics_session")

    grants_before = len(e2e.world.refresh_tokens)
    me = recruiter.request("GET", "/api/me", headers=KEY)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["tenant"] == {"id": CONTOSO, "consent": {"status": "consented", "missing_permissions": []}}
    assert body["user"]["username"] == RECRUITER
    assert body["token_health"] == {"status": "ok"}
    assert "Calendars.ReadWrite.Shared" in body["granted_scopes"]
    assert body["features"] == []
    assert len(e2e.world.refresh_tokens) > grants_before  # refreshed silently, with a rotated refresh token

    other = sign_in(e2e)  # the same recruiter in a second browser
    logout = recruiter.request("POST", "/api/auth/logout")
    assert logout.status_code == 204
    user_id = body["user"]["id"]
    after = recruiter.request("GET", "/api/me", headers=KEY)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "signin_required"
    # Only that session ended: the other one still reads the calendar side with the kept cache.
    still = other.request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY)
    assert still.status_code == 200, still.text

    everywhere = other.request("POST", "/api/auth/logout?everywhere=true")
    assert everywhere.status_code == 204
    assert get_container().token_caches.load_cache(CONTOSO, user_id) is None
    assert other.request("GET", "/api/me", headers=KEY).status_code == 401


def test_calendar_endpoints_need_the_function_key_and_a_session(e2e: Stack) -> None:
    consent(e2e)
    recruiter = sign_in(e2e)
    no_key = recruiter.request("GET", "/api/me")
    assert no_key.status_code == 401
    wrong_key = recruiter.request("GET", "/api/me", headers={"x-functions-key": "wrong"})
    assert wrong_key.status_code == 401
    no_session = e2e.browser().request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY)
    assert no_session.status_code == 401
    assert no_session.json()["error"]["code"] == "signin_required"
    ok = recruiter.request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY)
    assert ok.status_code == 200, ok.text
    assert ok.json()["display_name"] == "Alex Wilber"
    bearer = e2e.browser().request(
        "GET", "/api/me", headers={**KEY, "Authorization": f"Bearer {recruiter.service_cookie('ics_session')}"}
    )
    assert bearer.status_code == 200


def _nothing_stored() -> None:
    deps = get_container()
    with pytest.raises(NotFound):
        deps.tenants.get_tenant(CONTOSO)
    assert deps.tenants.list_tenants() == []


def test_forged_state_stores_nothing(e2e: Stack) -> None:
    browser = e2e.browser()
    consent_page = browser.request(
        "GET", "/api/consent/callback?" + urlencode({"state": "forged", "admin_consent": "True", "tenant": CONTOSO})
    )
    assert consent_page.status_code == 400
    signin_page = browser.request("GET", "/api/auth/callback?state=forged&code=abc")
    assert signin_page.status_code == 400
    assert browser.service_cookie("ics_session") is None
    _nothing_stored()


def _step_to_callback(browser: Browser, start: str) -> str:
    """Follow redirects until the one that returns to the service; return that callback URL unvisited."""
    response = browser.request("GET", start)
    while response.is_redirect:
        location = response.headers["location"]
        if location.startswith(browser.service_url):
            return location
        response = browser.request("GET", location)
    raise AssertionError(f"no redirect back to the service: {response.status_code} {response.text[:200]}")


def test_reused_state_is_refused(e2e: Stack) -> None:
    controls.set_auto_sign_in(e2e.world, CONTOSO_ADMIN)
    browser = e2e.browser()
    callback = _step_to_callback(browser, "/api/consent/start?tenant=contoso.example")
    cookie = browser.service_cookie("ics_consent_flow")
    assert browser.request("GET", callback).status_code == 200
    first = get_container().tenants.get_tenant(CONTOSO)
    browser.cookies.setdefault(urlsplit(e2e.base_url).netloc, {})["ics_consent_flow"] = str(cookie)
    replay = browser.request("GET", callback)
    assert replay.status_code == 400
    assert get_container().tenants.get_tenant(CONTOSO).etag == first.etag  # nothing written again


def test_expired_state_stores_nothing(e2e: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.bootstrap import set_container

    monkeypatch.setenv("FLOW_TTL_SECONDS", "1")
    set_container(None)
    controls.set_auto_sign_in(e2e.world, CONTOSO_ADMIN)
    browser = e2e.browser()
    callback = _step_to_callback(browser, "/api/consent/start?tenant=contoso.example")
    time.sleep(1.5)
    assert browser.request("GET", callback).status_code == 400
    _nothing_stored()


def test_spoofed_tenant_parameter_cannot_record_another_tenant(e2e: Stack) -> None:
    controls.grant_admin_consent(e2e.world, "fabrikam.example")  # the tenant an attacker would like to claim
    controls.set_auto_sign_in(e2e.world, CONTOSO_ADMIN)
    browser = e2e.browser()
    callback = _step_to_callback(browser, "/api/consent/start?tenant=contoso.example")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["tenant"] = FABRIKAM
    page = browser.request("GET", urlunsplit(parts._replace(query=urlencode(query))))
    assert page.status_code == 400
    deps = get_container()
    assert deps.tenants.list_tenants() == []
    assert deps.token_caches.load_cache(FABRIKAM, "app") is None


def test_partial_consent_is_detected_and_blocks_sign_in(e2e: Stack) -> None:
    admin = consent(e2e, grant_roles=["Calendars.ReadWrite"])
    assert "incomplete" in admin.last_page.text  # type: ignore[attr-defined]
    assert "User.Read.All" in admin.last_page.text  # type: ignore[attr-defined]
    tenant = get_container().tenants.get_tenant(CONTOSO)
    assert tenant.consent_status is ConsentStatus.PARTIAL
    assert set(tenant.missing_roles) == {"User.Read.All", "MailboxSettings.Read"}
    recruiter = sign_in(e2e)
    assert recruiter.last_page.status_code == 403  # type: ignore[attr-defined]
    assert recruiter.service_cookie("ics_session") is None


def test_admin_who_cancels_sees_how_to_retry(e2e: Stack) -> None:
    admin = consent(e2e, consent="cancel")
    page = admin.last_page  # type: ignore[attr-defined]
    assert page.status_code == 401
    assert "cancelled" in page.text and "/api/consent/start?tenant=contoso.example" in page.text
    _nothing_stored()


def test_recruiter_of_unconsented_tenant_is_not_signed_in(e2e: Stack) -> None:
    recruiter = sign_in(e2e)
    page = recruiter.last_page  # type: ignore[attr-defined]
    assert page.status_code == 403
    assert f"/api/consent/request?tenant={CONTOSO}" in page.text
    assert recruiter.service_cookie("ics_session") is None
    email = e2e.browser().request("GET", f"/api/consent/request?tenant={CONTOSO}")
    assert email.status_code == 200
    assert "/api/consent/start?tenant=" in email.json()["body"]


def test_revoked_refresh_token_answers_reauth_required(e2e: Stack) -> None:
    consent(e2e)
    controls.set_access_token_lifetime(e2e.world, 120)
    recruiter = sign_in(e2e)
    assert controls.revoke_refresh_tokens(e2e.world, RECRUITER) >= 1
    for _ in range(2):  # the second answer comes from the stored mark, not another refresh attempt
        response = recruiter.request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY)
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["code"] == "reauth_required"
        assert error["login_url"].endswith("/api/auth/login")
    user_id = controls.get_user(e2e.world, RECRUITER).id
    assert get_container().users.get_user(CONTOSO, user_id).token_health is TokenHealth.REAUTH_REQUIRED
    me = recruiter.request("GET", "/api/me", headers=KEY).json()
    assert me["token_health"]["status"] == "reauth_required"
    again = sign_in(e2e)  # signing in again heals it
    assert again.request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY).status_code == 200


def test_withdrawn_admin_consent_answers_admin_consent_required(e2e: Stack) -> None:
    controls.set_access_token_lifetime(e2e.world, 120)
    consent(e2e)
    recruiter = sign_in(e2e)
    assert recruiter.request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY).status_code == 200
    controls.withdraw_admin_consent(e2e.world, "contoso.example")
    # An app-only token keeps the roles it was issued with until it runs out; the service notices the
    # withdrawal when it needs a new one.
    controls.expire_access_tokens(e2e.world, tenant="contoso.example")
    response = recruiter.request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "admin_consent_required"
    tenant = get_container().tenants.get_tenant(CONTOSO)
    assert tenant.consent_status is ConsentStatus.NEEDS_ATTENTION


def test_tenant_b_cannot_read_tenant_a_users_or_bookings(e2e: Stack) -> None:
    from datetime import datetime

    from shared.models import Booking, BookingStatus

    consent(e2e)
    consent(e2e, FABRIKAM_ADMIN, "fabrikam.example")
    contoso = sign_in(e2e)
    fabrikam = sign_in(e2e, FABRIKAM_RECRUITER)
    when = datetime(2026, 12, 1, 15, tzinfo=UTC)
    get_container().bookings.create_booking(
        Booking(
            tenant_id=CONTOSO,
            booking_id="bk1" + "0" * 23,
            mailbox="interviews@contoso.example",
            start=when,
            end=when,
            subject="Onsite interview",
            status=BookingStatus.BOOKED,
        )
    )
    alex = controls.get_user(e2e.world, "alex.wilber@contoso.example")
    for ref in ("alex.wilber@contoso.example", alex.id):
        denied = fabrikam.request("GET", f"/api/directory/users/{ref}", headers=KEY)
        assert denied.status_code == 404, denied.text
    assert fabrikam.request("GET", "/api/bookings/bk1" + "0" * 23, headers=KEY).status_code == 404
    assert contoso.request("GET", "/api/bookings/bk1" + "0" * 23, headers=KEY).json()["subject"] == "Onsite interview"
    assert contoso.request("GET", f"/api/directory/users/{alex.id}", headers=KEY).status_code == 200


def test_automation_feature_is_opt_in(e2e: Stack) -> None:
    consent(e2e)
    plain = sign_in(e2e).request("GET", "/api/me", headers=KEY).json()
    assert plain["features"] == [] and "Mail.Send" not in plain["granted_scopes"]
    opted = sign_in(e2e, path="/api/auth/login?features=automation").request("GET", "/api/me", headers=KEY).json()
    assert opted["features"] == ["automation"]
    assert {"Mail.Read", "Mail.Send"} <= set(opted["granted_scopes"])


def test_return_address_outside_the_allow_list_is_refused(e2e: Stack) -> None:
    response = e2e.browser().request("GET", "/api/auth/login?return_to=https://evil.example/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
