"""Concurrent calendar requests while tokens refresh and the tenant row is rewritten, through MSAL
unchanged and Azurite; and consent verified afresh after a forged callback."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from devtools.cloud import controls
from shared.bootstrap import get_container, set_container
from shared.models import ConsentStatus
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO, KEY, browser_sign_in, consent

pytestmark = pytest.mark.e2e
THREADS = 20
ROUNDS = 3


def test_concurrent_calendar_requests_during_token_refresh_all_succeed(e2e: Stack) -> None:
    controls.set_access_token_lifetime(e2e.world, 120)
    consent(e2e)
    credential = browser_sign_in(e2e).service_cookie("ics_session")
    assert credential
    # Every worker starts cold, every outstanding token is refused by Graph, and the tenant row says
    # consent needs a re-check: all twenty requests refresh app and user tokens and rewrite the
    # tenant row at once.
    tenants = get_container().tenants
    tenant = tenants.get_tenant(CONTOSO)
    stale = replace(
        tenant,
        consent_status=ConsentStatus.NEEDS_ATTENTION,
        attention_reason="re-check",
        checked_at=tenant.checked_at - timedelta(hours=1) if tenant.checked_at else None,
    )
    tenants.update_tenant(stale)
    controls.expire_access_tokens(e2e.world)
    set_container(None)

    headers = {**KEY, "authorization": f"Bearer {credential}"}
    paths = ["/api/directory/users/alex.wilber@contoso.example", "/api/me"]
    barrier = threading.Barrier(THREADS)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def caller(index: int) -> None:
        with httpx.Client(base_url=e2e.base_url, timeout=60) as client:
            barrier.wait()
            for round_ in range(ROUNDS):
                response = client.get(paths[(index + round_) % 2], headers=headers)
                with lock:
                    answers.append((response.status_code, response.text[:200]))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == THREADS * ROUNDS
    assert [a for a in answers if a[0] != 200] == []
    assert get_container().tenants.get_tenant(CONTOSO).consent_status is ConsentStatus.CONSENTED


def test_the_real_consent_succeeds_right_after_a_forged_callback_was_refused(e2e: Stack) -> None:
    # Someone starts a consent flow for a tenant that has not consented and sends its state straight
    # to the callback: Microsoft refuses the app-only token (HTTP 400), which MSAL remembers.
    forger = e2e.browser()
    start = forger.request("GET", "/api/consent/start?tenant=contoso.example")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    forged = forger.request(
        "GET", "/api/consent/callback?" + urlencode({"state": state, "admin_consent": "True", "tenant": CONTOSO})
    )
    assert forged.status_code >= 400
    assert "all set" not in forged.text
    # Seconds later the real admin consents: the verification asks Microsoft afresh.
    admin = consent(e2e)
    assert admin.last_page.status_code == 200, admin.last_page.text
    assert "all set" in admin.last_page.text
    tenant = get_container().tenants.get_tenant(CONTOSO)
    assert tenant.consent_status is ConsentStatus.CONSENTED
    assert tenant.verified_at is not None and tenant.consented_at == tenant.verified_at
