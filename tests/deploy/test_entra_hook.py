"""The azd hook's app registration: multi-tenant, the permissions the code asks for, redirect URIs from
the app's URL. Graph's permission ids are looked up by name on Graph's service principal."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.deploy.bicep_support import ROOT


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("entra_app", ROOT / "infra" / "hooks" / "entra_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["entra_app"] = module
    spec.loader.exec_module(module)
    return module


DOCUMENTED_APPLICATION = {"Calendars.ReadWrite", "User.Read.All", "MailboxSettings.Read"}
DOCUMENTED_DELEGATED = {
    "Calendars.Read", "Calendars.Read.Shared", "Calendars.ReadWrite", "Calendars.ReadWrite.Shared", "User.Read",
    "User.ReadBasic.All", "MailboxSettings.Read", "offline_access", "openid", "profile", "email",
    "Mail.Read", "Mail.Send",  # opt-in automation features
}


def _graph_service_principal(extra_roles: tuple[str, ...] = ()) -> dict:
    return {
        "appRoles": [{"value": n, "id": f"role-{n}"} for n in (*DOCUMENTED_APPLICATION, *extra_roles)],
        "oauth2PermissionScopes": [{"value": n, "id": f"scope-{n}"} for n in (*DOCUMENTED_DELEGATED, "Files.Read")],
    }


def test_the_registration_is_multi_tenant_with_the_documented_permissions() -> None:
    hook = _hook()
    body = hook.application_body("interview-calendar-dev", _graph_service_principal())
    assert body["signInAudience"] == "AzureADMultipleOrgs"
    assert body["groupMembershipClaims"] == "DirectoryRole"
    [graph] = body["requiredResourceAccess"]
    assert graph["resourceAppId"] == "00000003-0000-0000-c000-000000000000"
    roles = {a["id"].removeprefix("role-") for a in graph["resourceAccess"] if a["type"] == "Role"}
    scopes = {a["id"].removeprefix("scope-") for a in graph["resourceAccess"] if a["type"] == "Scope"}
    assert roles == DOCUMENTED_APPLICATION
    assert scopes == DOCUMENTED_DELEGATED
    guide = (ROOT / "docs" / "operations.md").read_text()  # pointing the service at a real tenant
    assert all(f"`{name}`" in guide for name in DOCUMENTED_APPLICATION | DOCUMENTED_DELEGATED)


def test_a_permission_graph_does_not_list_stops_the_hook() -> None:
    sp = _graph_service_principal()
    sp["appRoles"] = [r for r in sp["appRoles"] if r["value"] != "User.Read.All"]
    with pytest.raises(SystemExit, match="User.Read.All"):
        _hook().application_body("x", sp)


def test_redirect_uris_follow_the_public_url() -> None:
    assert _hook().redirect_uris("https://func-api-abc.azurewebsites.net/") == [
        "https://func-api-abc.azurewebsites.net/api/auth/callback",
        "https://func-api-abc.azurewebsites.net/api/consent/callback",
    ]
