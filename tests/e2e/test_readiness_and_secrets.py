"""Readiness checks against the local cloud, and a scan for secrets in logs and tables."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from azure.data.tables import TableServiceClient

from devtools.cloud import controls
from devtools.cloud.graph import controls as graph_controls
from shared.bootstrap import get_container
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO, CONTOSO_ADMIN, FUNCTION_KEY, KEY, RECRUITER, consent
from tests.kit import browser_sign_in as sign_in

pytestmark = pytest.mark.e2e


def _checks(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {c["id"]: c for c in response.json()["checks"]}


def test_readiness_reports_each_check_and_what_to_do(e2e: Stack) -> None:
    consent(e2e)
    admin = sign_in(e2e, CONTOSO_ADMIN)
    me = admin.request("GET", "/api/me", headers=KEY).json()
    assert me["user"]["is_tenant_admin"] is True
    checks = _checks(admin.request("GET", "/api/tenants/me/readiness", headers=KEY))
    assert checks["admin_consent"]["status"] == "pass"
    assert checks["directory"]["status"] == "pass"
    assert checks["user_mailbox"]["status"] == "pass"
    assert checks["interviews_mailbox"]["status"] == "fail"  # not configured yet
    put = admin.request(
        "PUT",
        "/api/tenants/me/settings",
        headers=KEY,
        json={"interviews_mailbox": "interviews@contoso.example", "sync_mailbox": "sync@contoso.example"},
    )
    assert put.status_code == 200, put.text
    checks = _checks(admin.request("GET", "/api/tenants/me/readiness", headers=KEY))
    # The admin is not a recruiter: the Interviews calendar is closed to their own account.
    assert checks["interviews_write_access"]["status"] == "fail"
    assert "Recruiting Team" in checks["interviews_write_access"]["action"]
    graph_controls.set_group_member(e2e.world, "recruiting@contoso.example", CONTOSO_ADMIN)
    ready = admin.request("GET", "/api/tenants/me/readiness", headers=KEY)
    assert ready.json()["ready"] is True, ready.text

    graph_controls.block_mailbox(e2e.world, "sync@contoso.example")
    checks = _checks(admin.request("GET", "/api/tenants/me/readiness", headers=KEY))
    assert checks["interviews_mailbox"]["status"] == "pass"
    assert checks["sync_mailbox"]["status"] == "fail"
    assert "application access policy" in checks["sync_mailbox"]["detail"]

    missing = admin.request(
        "PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": "nobody@contoso.example"}
    )
    assert missing.status_code == 200
    checks = _checks(admin.request("GET", "/api/tenants/me/readiness", headers=KEY))
    assert checks["interviews_mailbox"]["status"] == "fail"
    assert "does not exist" in checks["interviews_mailbox"]["detail"]


def test_a_tenant_with_no_sync_mailbox_is_ready(e2e: Stack) -> None:
    consent(e2e)
    graph_controls.set_group_member(e2e.world, "recruiting@contoso.example", CONTOSO_ADMIN)
    admin = sign_in(e2e, CONTOSO_ADMIN)
    put = admin.request(
        "PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": "interviews@contoso.example"}
    )
    assert put.status_code == 200, put.text

    ready = admin.request("GET", "/api/tenants/me/readiness", headers=KEY)

    assert ready.json()["ready"] is True, ready.text
    sync = _checks(ready)["sync_mailbox"]
    assert (sync["status"], sync["required"]) == ("skipped", False)
    subs = admin.request("GET", "/api/subscriptions/health", headers=KEY).json()["subscriptions"]
    assert [s["mailbox"] for s in subs] == ["interviews@contoso.example"]


def test_recruiters_cannot_change_tenant_settings(e2e: Stack) -> None:
    consent(e2e)
    recruiter = sign_in(e2e, RECRUITER)
    response = recruiter.request(
        "PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": "interviews@contoso.example"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_on_premises_mailbox_gets_the_hybrid_requirements(e2e: Stack) -> None:
    consent(e2e)
    nestor = sign_in(e2e, "nestor.wilke@contoso.example")
    checks = _checks(nestor.request("GET", "/api/tenants/me/readiness", headers=KEY))
    assert checks["user_mailbox"]["status"] == "fail"
    assert any("Exchange 2016 CU3" in r for r in checks["user_mailbox"]["requirements"])


def _token_values(serialized_cache: str) -> set[str]:
    cache = json.loads(serialized_cache)
    values = set()
    for kind in ("AccessToken", "RefreshToken", "IdToken"):
        for entry in cache.get(kind, {}).values():
            values.add(entry["secret"])
    return values


def test_no_secret_reaches_a_log_line_or_a_table_property(e2e: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    controls.set_access_token_lifetime(e2e.world, 120)  # every silent call refreshes: more to log
    admin = consent(e2e)
    recruiter = sign_in(e2e)
    assert recruiter.request("GET", "/api/me", headers=KEY).status_code == 200
    assert recruiter.request("GET", "/api/tenants/me/readiness", headers=KEY).status_code == 200
    assert recruiter.request("GET", "/api/directory/users/alex.wilber@contoso.example", headers=KEY).status_code == 200

    deps = get_container()
    user_id = controls.get_user(e2e.world, RECRUITER).id
    secrets: set[str] = {e2e.settings["CLIENT_SECRET"], FUNCTION_KEY}
    secrets |= _token_values(deps.token_caches.load_cache(CONTOSO, user_id) or "{}")
    secrets |= _token_values(deps.token_caches.load_cache(CONTOSO, "app") or "{}")
    secrets |= set(e2e.world.refresh_tokens)
    for browser in (admin, recruiter):
        for response in browser.history:
            request = response.request
            params = dict(parse_qsl(urlsplit(str(request.url)).query))
            params |= dict(parse_qsl(request.content.decode("utf-8", "replace")))
            secrets |= {v for k, v in params.items() if k in {"code", "state", "id_token", "code_verifier"}}
        for jar in browser.cookies.values():
            secrets |= set(jar.values())
    secrets = {s for s in secrets if len(s) >= 16}
    assert len(secrets) > 8  # the scan has something to look for

    service_lines = [
        record.getMessage() + (record.exc_text or "")
        for record in caplog.records
        if record.threadName != "MainThread" and not record.name.startswith("devtools.cloud")
    ]
    assert service_lines, "the service logged nothing: the scan would prove nothing"
    for line in service_lines:
        for secret in secrets:
            assert secret not in line, f"a secret appears in a log line: {line[:120]}"

    service = TableServiceClient.from_connection_string(e2e.azurite.connection_string)
    prefix = deps.settings.table_prefix
    tables = [t.name for t in service.list_tables() if t.name.startswith(prefix)]
    assert {f"{prefix}tokencaches", f"{prefix}sessions", f"{prefix}flows"} <= set(tables) or tables
    scanned = 0
    for name in tables:
        for entity in service.get_table_client(name).list_entities():
            for value in entity.values():
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                scanned += 1
                for secret in secrets:
                    assert secret not in text, f"a secret appears in table {name}"
    assert scanned > 10
