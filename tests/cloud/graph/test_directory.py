"""Graph directory reads of the local cloud: /me, /users, $select/$filter/$top paging, mailboxSettings, tenant walls."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from devtools.cloud.graph.testing import app_only, delegated
from devtools.cloud.state import World

ALEX = "alex.wilber@contoso.example"
MEGAN = "megan.bowen@contoso.example"
TOM = "tom.ochieng@fabrikam.example"


def test_me_returns_the_documented_default_properties(world: World, client: TestClient) -> None:
    response = client.get("/v1.0/me", headers=delegated(world, ALEX, ["User.Read"]))
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == "https://graph.local/v1.0/$metadata#users/$entity"
    assert set(body) == {
        "@odata.context",
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }
    assert body["userPrincipalName"] == ALEX
    assert body["displayName"] == "Alex Wilber"
    assert body["businessPhones"] == []


def test_me_with_an_app_only_token_is_a_bad_request(world: World, client: TestClient) -> None:
    response = client.get("/v1.0/me", headers=app_only(world, "contoso.example", ["User.Read.All"]))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


def test_missing_token_is_401(client: TestClient) -> None:
    response = client.get("/v1.0/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_user_by_upn_and_by_id_with_select(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["User.Read.All"])
    by_upn = client.get(f"/v1.0/users/{MEGAN}?$select=id,displayName,accountEnabled", headers=headers).json()
    assert set(by_upn) == {"@odata.context", "id", "displayName", "accountEnabled"}
    assert by_upn["@odata.context"].endswith("#users(id,displayName,accountEnabled)/$entity")
    by_id = client.get(f"/v1.0/users/{by_upn['id']}", headers=headers).json()
    assert by_id["mail"] == MEGAN


def test_shared_mailbox_is_a_user_with_a_disabled_account(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["User.Read.All"])
    body = client.get("/v1.0/users/interviews@contoso.example?$select=accountEnabled,mail", headers=headers).json()
    assert body["accountEnabled"] is False
    assert body["mail"] == "interviews@contoso.example"


def test_other_tenant_user_is_not_found(world: World, client: TestClient) -> None:
    response = client.get(f"/v1.0/users/{TOM}", headers=app_only(world, "contoso.example", ["User.Read.All"]))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "Request_ResourceNotFound"
    assert TOM in error["message"]


def test_reading_users_without_a_directory_permission_is_denied(world: World, client: TestClient) -> None:
    response = client.get("/v1.0/users", headers=app_only(world, "contoso.example", ["Calendars.Read"]))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"
    own = client.get(f"/v1.0/users/{MEGAN}", headers=delegated(world, ALEX, ["User.Read"]))
    assert own.status_code == 403
    me_by_upn = client.get(f"/v1.0/users/{ALEX}", headers=delegated(world, ALEX, ["User.Read"]))
    assert me_by_upn.status_code == 200


def test_list_users_stays_inside_the_tenant_and_pages(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["User.Read.All"])
    first = client.get("/v1.0/users?$top=5&$select=userPrincipalName", headers=headers).json()
    assert first["@odata.context"].endswith("#users(userPrincipalName)")
    assert len(first["value"]) == 5
    seen = [u["userPrincipalName"] for u in first["value"]]
    link = first["@odata.nextLink"]
    assert "$skiptoken=" in link and "$top=5" in link
    while link:
        page = client.get(link, headers=headers).json()
        seen += [u["userPrincipalName"] for u in page["value"]]
        link = page.get("@odata.nextLink")
    assert len(seen) == len(set(seen)) == 18
    assert all(upn.endswith("@contoso.example") for upn in seen)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("startswith(displayName,'al')", {ALEX}),
        (f"mail eq '{MEGAN.upper()}'", {MEGAN}),
        (f"userPrincipalName eq '{ALEX}'", {ALEX}),
        ("accountEnabled eq false", {"interviews@contoso.example", "sync@contoso.example"}),
        (
            "startswith(displayName,'L') and accountEnabled eq true",
            {"lee.gu@contoso.example", "lidia.holloway@contoso.example", "lynne.robbins@contoso.example"},
        ),
    ],
)
def test_list_users_filters(world: World, client: TestClient, query: str, expected: set[str]) -> None:
    headers = app_only(world, "contoso.example", ["User.Read.All"])
    response = client.get("/v1.0/users", params={"$filter": query, "$select": "userPrincipalName"}, headers=headers)
    assert response.status_code == 200, response.text
    assert {u["userPrincipalName"] for u in response.json()["value"]} == expected


def test_unsupported_filter_is_400(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["User.Read.All"])
    response = client.get("/v1.0/users", params={"$filter": "displayName gt 'a'"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_mailbox_settings_needs_mailbox_settings_read(world: World, client: TestClient) -> None:
    denied = client.get("/v1.0/me/mailboxSettings", headers=delegated(world, ALEX, ["User.Read"]))
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        **denied.json()["error"],
        "code": "ErrorAccessDenied",
        "message": "Access is denied. Check credentials and try again.",
    }
    body = client.get("/v1.0/me/mailboxSettings", headers=delegated(world, ALEX, ["MailboxSettings.Read"])).json()
    assert body["timeZone"] == "Pacific Standard Time"
    assert body["workingHours"]["timeZone"] == {"name": "Pacific Standard Time"}
    assert body["@odata.context"].endswith("/mailboxSettings")


def test_mailbox_settings_select_for_another_user_app_only(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["MailboxSettings.Read"])
    response = client.get(f"/v1.0/users/{MEGAN}/mailboxSettings?$select=timeZone,workingHours", headers=headers)
    body = response.json()
    assert set(body) == {"@odata.context", "timeZone", "workingHours"}
    assert body["@odata.context"].endswith("/mailboxSettings(timeZone,workingHours)")
    assert body["workingHours"]["startTime"] == "08:00:00.0000000"


def test_mailbox_of_unknown_user_is_error_invalid_user(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["MailboxSettings.Read"])
    response = client.get(f"/v1.0/users/{TOM}/mailboxSettings", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ErrorInvalidUser"


def test_delegated_mailbox_settings_of_someone_else_are_denied(world: World, client: TestClient) -> None:
    response = client.get(
        f"/v1.0/users/{ALEX}/mailboxSettings", headers=delegated(world, MEGAN, ["MailboxSettings.Read"])
    )
    assert response.status_code == 403
