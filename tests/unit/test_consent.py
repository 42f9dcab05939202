from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from shared.errors import (
    AdminApprovalRequired,
    AdminConsentRequired,
    InvalidFlowState,
    InvalidRequest,
    SigninDenied,
    TenantMismatch,
)
from shared.identity.consent import complete_admin_consent, consent_request_email, start_admin_consent
from shared.models import ConsentStatus
from tests.kit import ALL_ROLES, TENANT_A, TENANT_B, FakeDeps


def _start(deps: FakeDeps, tenant: str = "contoso.example") -> tuple[str, str]:
    start = start_admin_consent(deps, tenant)
    state = parse_qs(urlsplit(start.redirect_url).query)["state"][0]
    return state, start.binding


def test_consent_records_tenant_id_from_the_app_token() -> None:
    deps = FakeDeps()
    deps.identity.roles[TENANT_A] = ALL_ROLES
    state, binding = _start(deps)
    tenant = complete_admin_consent(deps, {"state": state, "admin_consent": "True", "tenant": TENANT_A}, binding)
    assert tenant.tenant_id == TENANT_A
    assert tenant.consent_status is ConsentStatus.CONSENTED
    assert deps.token_caches.load_cache(TENANT_A, "app") is not None


def test_consent_callback_refuses_a_spoofed_tenant_and_stores_nothing() -> None:
    deps = FakeDeps()
    deps.identity.roles[TENANT_A] = ALL_ROLES
    deps.identity.roles[TENANT_B] = ALL_ROLES
    state, binding = _start(deps, "contoso.example")
    with pytest.raises(TenantMismatch):
        complete_admin_consent(deps, {"state": state, "admin_consent": "True", "tenant": TENANT_B}, binding)
    assert deps.tenants.items == {}
    assert deps.token_caches.items == {}


def test_consent_state_is_single_use() -> None:
    deps = FakeDeps()
    deps.identity.roles[TENANT_A] = ALL_ROLES
    state, binding = _start(deps)
    params = {"state": state, "admin_consent": "True", "tenant": TENANT_A}
    complete_admin_consent(deps, params, binding)
    deps.tenants.items.clear()
    with pytest.raises(InvalidFlowState):
        complete_admin_consent(deps, params, binding)
    assert deps.tenants.items == {}


def test_consent_state_expires() -> None:
    deps = FakeDeps()
    deps.identity.roles[TENANT_A] = ALL_ROLES
    state, binding = _start(deps)
    deps.clock.advance(seconds=deps.settings.flow_ttl_seconds + 1)
    with pytest.raises(InvalidFlowState):
        complete_admin_consent(deps, {"state": state, "admin_consent": "True"}, binding)
    assert deps.tenants.items == {}


def test_consent_state_from_another_browser_is_refused() -> None:
    deps = FakeDeps()
    deps.identity.roles[TENANT_A] = ALL_ROLES
    state, _binding = _start(deps)
    with pytest.raises(InvalidFlowState):
        complete_admin_consent(deps, {"state": state, "admin_consent": "True"}, "someone-elses-cookie")
    assert deps.tenants.items == {}


def test_forged_state_is_refused() -> None:
    deps = FakeDeps()
    with pytest.raises(InvalidFlowState):
        complete_admin_consent(deps, {"state": "forged", "admin_consent": "True"}, "x")


def test_partial_consent_lists_missing_permissions() -> None:
    deps = FakeDeps()
    deps.identity.roles[TENANT_A] = ("Calendars.ReadWrite",)
    state, binding = _start(deps)
    tenant = complete_admin_consent(deps, {"state": state, "admin_consent": "True"}, binding)
    assert tenant.consent_status is ConsentStatus.PARTIAL
    assert tenant.missing_roles == ("User.Read.All", "MailboxSettings.Read")


def test_admin_cancel_is_reported_and_stores_nothing() -> None:
    deps = FakeDeps()
    state, binding = _start(deps)
    with pytest.raises(SigninDenied) as caught:
        complete_admin_consent(deps, {"state": state, "error": "access_denied"}, binding)
    assert "cancelled" in caught.value.message
    assert caught.value.details["retry_url"].endswith("/api/consent/start?tenant=contoso.example")
    assert deps.tenants.items == {}


@pytest.mark.parametrize("tenant", ["", "common", "organizations", "not a domain", "x" * 300])
def test_consent_start_refuses_bad_tenant(tenant: str) -> None:
    with pytest.raises(InvalidRequest):
        start_admin_consent(FakeDeps(), tenant)


def test_consent_request_email_lists_link_and_permissions_with_reasons() -> None:
    deps = FakeDeps()
    email = consent_request_email(deps.settings, "contoso.example", requested_by="Rita.Recruiter@contoso.example")
    assert email["consent_url"] == "https://svc.example/api/consent/start?tenant=contoso.example"
    assert email["consent_url"] in email["body"]
    for role in ALL_ROLES:
        assert role in email["body"]
    assert email["body"].endswith("rita.recruiter@contoso.example")


def test_a_callback_that_skipped_microsoft_keeps_when_consent_was_first_proven() -> None:
    deps = FakeDeps()
    deps.identity.roles[TENANT_A] = ALL_ROLES
    state, binding = _start(deps)
    first = complete_admin_consent(deps, {"state": state, "admin_consent": "True"}, binding)
    deps.clock.advance(days=3)
    # A fresh state sent straight to the callback, never through Microsoft's consent page.
    state, binding = _start(deps)
    again = complete_admin_consent(deps, {"state": state, "admin_consent": "True", "tenant": TENANT_A}, binding)
    assert again.consented_at == first.consented_at
    assert again.verified_at == deps.clock.now()  # Microsoft was asked, and confirmed it
    assert first.verified_at is not None and first.verified_at < again.verified_at


def test_consent_is_verified_afresh_after_a_forged_callback_provoked_a_refusal() -> None:
    deps = FakeDeps()
    state, binding = _start(deps)
    with pytest.raises(AdminConsentRequired):  # forged: the tenant has not consented yet
        complete_admin_consent(deps, {"state": state, "admin_consent": "True"}, binding)
    assert TENANT_A in deps.identity.remembered_refusals
    deps.identity.roles[TENANT_A] = ALL_ROLES  # the real admin consents seconds later
    state, binding = _start(deps)
    tenant = complete_admin_consent(deps, {"state": state, "admin_consent": "True"}, binding)
    assert tenant.consent_status is ConsentStatus.CONSENTED
    assert deps.identity.calls[-1] == f"app:{TENANT_A}:fresh"


def test_a_non_admin_at_the_consent_link_is_told_an_admin_must_approve_with_the_email_not_a_retry() -> None:
    deps = FakeDeps()
    state, binding = _start(deps)
    params = {
        "state": state,
        "admin_consent": "True",
        "error": "access_denied",
        "error_description": "AADSTS90094: Admin consent is required for the permissions requested.",
    }
    with pytest.raises(AdminApprovalRequired) as caught:
        complete_admin_consent(deps, params, binding)
    assert caught.value.details["reason"] == "AADSTS90094"
    assert caught.value.details["consent_request_url"].endswith("/api/consent/request?tenant=contoso.example")
    assert deps.tenants.items == {}


def test_the_admin_consent_page_for_admin_approval_offers_the_email_and_no_try_again() -> None:
    from functions._http import page_for
    from shared.errors import ConsentDeclined

    approval = page_for("consent", AdminApprovalRequired("x"))
    assert approval is not None
    assert [name for _, name in approval.links] == ["consent_request_url"]
    assert "cancelled" not in " ".join(approval.advice)
    declined = page_for("consent", ConsentDeclined("x"))
    assert declined is not None and declined.title == "Consent was declined"
