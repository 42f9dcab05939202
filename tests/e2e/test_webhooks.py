"""Change notifications end to end: the admin's mailbox settings subscribe them, Graph validates our
webhook, a forged clientState is dropped, and the health view shows the subscriptions."""

from __future__ import annotations

import httpx

from devtools.cloud import notify
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO_ADMIN, KEY, browser_sign_in, consent

INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"


def test_mailbox_settings_subscribe_both_mailboxes_and_a_forged_client_state_is_dropped(e2e: Stack) -> None:
    consent(e2e)
    admin = browser_sign_in(e2e, CONTOSO_ADMIN)
    put = admin.request(
        "PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS, "sync_mailbox": SYNC}
    )
    assert put.status_code == 200, put.text

    health = admin.request("GET", "/api/subscriptions/health", headers=KEY)
    assert health.status_code == 200, health.text
    subs = health.json()["subscriptions"]
    assert sorted(s["mailbox"] for s in subs) == [INTERVIEWS, SYNC]
    assert all(s["expires_at"] for s in subs)
    validated = [r for r in notify.delivery_log(e2e.world) if r.kind == "validation"]
    assert len(validated) == 4 and {r.outcome for r in validated} == {"validated"}

    forged = httpx.post(
        f"{e2e.base_url}/api/webhooks/graph",
        json={
            "value": [
                {
                    "subscriptionId": subs[0]["subscription_id"],
                    "clientState": "forged",
                    "changeType": "updated",
                    "resourceData": {"id": "AAMk1"},
                }
            ]
        },
    )
    assert forged.status_code == 202
    dropped = admin.request("GET", "/api/subscriptions/health", headers=KEY).json()["dropped_notifications"]
    assert dropped["client_state_mismatch"] == health.json()["dropped_notifications"]["client_state_mismatch"] + 1
    echoed = httpx.post(f"{e2e.base_url}/api/webhooks/graph", params={"validationToken": "a b&c<d>"})
    assert (echoed.status_code, echoed.text) == (200, "a b&c<d>")
    assert echoed.headers["content-type"].startswith("text/plain")
    wrong_type = httpx.post(f"{e2e.base_url}/api/webhooks/graph", content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
