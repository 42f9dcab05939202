from __future__ import annotations

import dataclasses
from datetime import UTC
from typing import Any

import pytest

from functions._contract import check_body
from functions._views import directory_user_json, readiness_json
from shared.booking.listing import get_booking
from shared.errors import Forbidden, GraphRequestFailed, InvalidRequest, NotFound
from shared.identity import directory, readiness
from shared.identity.guard import require_calendar_access
from shared.identity.tenant_settings import update_tenant_settings
from shared.models import Booking, BookingStatus, DirectoryUser, SigninResult
from tests.kit import ADMIN, TENANT_A, TENANT_B, USER, FakeDeps, consented, sign_in


def run_readiness(deps: Any, ctx: Any) -> dict[str, Any]:
    """The readiness report as GET /api/tenants/me/readiness answers it."""
    return readiness_json(readiness.run_readiness(deps, ctx))


def get_directory_user(deps: Any, ctx: Any, user: str) -> dict[str, Any]:
    """The directory user as GET /api/directory/users/{user} answers it."""
    return directory_user_json(directory.get_directory_user(deps, ctx, user))


def _checks(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


def _ready_deps() -> tuple[FakeDeps, str]:
    deps = FakeDeps()
    consented(deps)
    deps.graph.users[TENANT_A] = {
        "interviews@contoso.example": DirectoryUser("i1", "interviews@contoso.example", "Interviews"),
        "sync@contoso.example": DirectoryUser("s1", "sync@contoso.example", "Sync"),
    }
    credential = sign_in(deps, ADMIN)
    ctx = require_calendar_access(deps, credential)
    update_tenant_settings(
        deps, ctx, {"interviews_mailbox": "interviews@contoso.example", "sync_mailbox": "Sync@Contoso.example"}
    )
    return deps, credential


def test_readiness_passes_when_everything_is_reachable() -> None:
    deps, credential = _ready_deps()
    report = run_readiness(deps, require_calendar_access(deps, credential))
    assert report["ready"] is True, report
    assert set(_checks(report)) == {
        "admin_consent",
        "directory",
        "user_mailbox",
        "interviews_mailbox",
        "interviews_write_access",
        "sync_mailbox",
    }


def test_every_check_id_is_one_openapi_documents() -> None:
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
    documented = spec["components"]["schemas"]["Readiness"]["properties"]["checks"]["items"]["properties"]["id"]["enum"]
    deps, credential = _ready_deps()
    assert set(_checks(run_readiness(deps, require_calendar_access(deps, credential)))) == set(documented)


def test_readiness_names_the_group_a_recruiter_needs_to_book_into_the_interviews_calendar() -> None:
    deps, credential = _ready_deps()
    deps.graph.failures["interviews@contoso.example"] = GraphRequestFailed(
        "denied", status=403, reason="forbidden", graph_code="ErrorAccessDenied"
    )
    check = _checks(run_readiness(deps, require_calendar_access(deps, credential)))["interviews_write_access"]
    assert check["status"] == "fail"
    assert "Recruiting Team" in (check["action"] or "")


def test_readiness_reports_access_policy_and_on_premises_mailboxes() -> None:
    deps, credential = _ready_deps()
    deps.graph.failures["interviews@contoso.example"] = GraphRequestFailed(
        "blocked", status=403, reason="access_policy", graph_code="ErrorAccessDenied"
    )
    deps.graph.failures["me"] = GraphRequestFailed("on prem", status=404, reason="on_premises")
    checks = _checks(run_readiness(deps, require_calendar_access(deps, credential)))
    assert checks["interviews_mailbox"]["status"] == "fail"
    assert "application access policy" in checks["interviews_mailbox"]["detail"]
    assert checks["user_mailbox"]["status"] == "fail"
    assert any("Exchange 2016 CU3" in r for r in checks["user_mailbox"]["requirements"])
    assert checks["sync_mailbox"]["status"] == "pass"


def test_readiness_reports_missing_mailbox_settings_and_missing_mailboxes() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    checks = _checks(run_readiness(deps, require_calendar_access(deps, credential)))
    assert checks["interviews_mailbox"]["status"] == "fail"
    assert "PUT /api/tenants/me/settings" in checks["interviews_mailbox"]["action"]


def test_only_tenant_admins_change_settings_and_values_are_validated() -> None:
    deps = FakeDeps()
    consented(deps)
    ctx = require_calendar_access(deps, sign_in(deps))
    with pytest.raises(Forbidden):
        update_tenant_settings(deps, ctx, {"interviews_mailbox": "interviews@contoso.example"})
    admin_ctx = require_calendar_access(deps, sign_in(deps, ADMIN))
    with pytest.raises(InvalidRequest):
        update_tenant_settings(deps, admin_ctx, {"interviews_mailbox": "not an address"})
    with pytest.raises(InvalidRequest):  # the body's shape, checked against openapi.yaml as the handler does
        update_tenant_settings(deps, admin_ctx, check_body("tenant_settings_put", {"colour": "blue"}))


def test_lookups_stay_inside_the_callers_tenant() -> None:
    deps = FakeDeps()
    consented(deps, TENANT_A)
    consented(deps, TENANT_B)
    deps.graph.users[TENANT_A] = {"alex@contoso.example": DirectoryUser("a1", "alex@contoso.example", "Alex")}
    from datetime import datetime

    when = datetime(2026, 12, 1, 10, tzinfo=UTC)
    deps.bookings.create_booking(
        Booking(
            tenant_id=TENANT_A,
            booking_id="b1",
            mailbox="x",
            start=when,
            end=when,
            subject="Interview",
            status=BookingStatus.BOOKED,
        )
    )
    b_user = SigninResult(**{**USER.__dict__, "tenant_id": TENANT_B, "user_id": "ub"})
    ctx_b = require_calendar_access(deps, sign_in(deps, b_user))
    with pytest.raises(NotFound):
        get_directory_user(deps, ctx_b, "alex@contoso.example")
    with pytest.raises(NotFound):
        get_booking(deps, ctx_b, "b1")
    ctx_a = require_calendar_access(deps, sign_in(deps))
    assert get_booking(deps, ctx_a, "b1").subject == "Interview"
    assert get_directory_user(deps, ctx_a, "alex@contoso.example")["id"] == "a1"


def test_a_tenant_without_a_sync_mailbox_is_ready_and_a_failing_one_does_not_hold_readiness_back() -> None:
    deps, credential = _ready_deps()
    tenant = deps.tenants.get_tenant(TENANT_A)
    deps.tenants.update_tenant(dataclasses.replace(tenant, sync_mailbox=None))

    report = run_readiness(deps, require_calendar_access(deps, credential))

    assert report["ready"] is True, report
    sync = _checks(report)["sync_mailbox"]
    assert (sync["status"], sync["required"]) == ("skipped", False)
    assert "organizer" in sync["detail"]
    assert all(c["required"] for c in report["checks"] if c["id"] != "sync_mailbox")

    deps.tenants.update_tenant(
        dataclasses.replace(deps.tenants.get_tenant(TENANT_A), sync_mailbox="sync@contoso.example")
    )
    deps.graph.failures["sync@contoso.example"] = GraphRequestFailed(
        "blocked", status=403, reason="access_policy", graph_code="ErrorAccessDenied"
    )
    report = run_readiness(deps, require_calendar_access(deps, credential))
    assert _checks(report)["sync_mailbox"]["status"] == "fail"
    assert report["ready"] is True, report
