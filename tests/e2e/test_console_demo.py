"""The console's own server and the local stack's scripts, over the whole app: ``scripts/demo`` (and what it
leaves the local cloud like), ``scripts/session``, the local-only "answer as this attendee" control and the
consent request as a page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from devtools.cloud import controls
from devtools.cloud.graph import controls as graph_controls
from devtools.console.app import ConsoleConfig
from devtools.console.server import start_console
from tests.e2e.conftest import Stack
from tests.kit import FUNCTION_KEY

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"


def _demo_args(console: Any, stack: Stack) -> list[str]:
    return ["--console", console.base_url, "--cloud", stack.cloud.base_url, "--ca-bundle", str(stack.cloud.ca_bundle)]


def test_the_demo_puts_the_sign_in_setting_back_when_it_ends(console: Any, e2e: Stack) -> None:
    from devtools import demo

    assert controls.auto_sign_in_setting(e2e.world) is None
    assert demo.main(_demo_args(console, e2e)) == 0
    # The next browser sign-in gets the sign-in page again, not Megan.
    assert controls.auto_sign_in_setting(e2e.world) is None

    controls.set_auto_sign_in(e2e.world, "patti.fernandez@contoso.example", consent="decline")
    assert demo.main(_demo_args(console, e2e)) == 0  # again on the same stack: the next free time
    assert controls.auto_sign_in_setting(e2e.world) == {
        "user": "patti.fernandez@contoso.example",
        "consent": "decline",
        "grant_roles": None,
    }


def test_a_failing_demo_puts_the_sign_in_setting_back_too(console: Any, e2e: Stack, capsys: Any) -> None:
    from devtools import demo

    graph_controls.fail(e2e.world, count=10_000, status=503)  # Graph down: the demo fails partway
    assert demo.main(_demo_args(console, e2e)) == 1
    assert "The demo failed at step" in capsys.readouterr().err
    assert controls.auto_sign_in_setting(e2e.world) is None


def test_scripts_session_prints_a_session_the_api_takes(console: Any, e2e: Stack, capsys: Any) -> None:
    from devtools import demo, session

    assert demo.main(_demo_args(console, e2e)) == 0  # the tenant consented and set up, as on a used stack
    capsys.readouterr()
    assert session.main(["megan.bowen@contoso.example", *_demo_args(console, e2e)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("SESSION=")
    me = httpx.get(
        f"{e2e.base_url}/api/me",
        headers={"x-functions-key": FUNCTION_KEY, "Authorization": f"Bearer {printed.removeprefix('SESSION=')}"},
    )
    assert me.status_code == 200, me.text
    assert me.json()["user"]["username"] == "megan.bowen@contoso.example"
    assert controls.auto_sign_in_setting(e2e.world) is None


def _signed_in(console: Any, stack: Stack) -> httpx.Client:
    from devtools import session
    from devtools.demo import Demo

    client = httpx.Client(base_url=console.base_url)
    demo = Demo(console.base_url, stack.cloud.base_url, str(stack.cloud.ca_bundle))
    try:
        demo.sign_in("megan.bowen@contoso.example")
    finally:
        demo.restore_sign_in()
    client.cookies.set(session.SESSION_COOKIE, demo.browser.session_cookie(console.base_url, session.SESSION_COOKIE))
    return client


def test_answer_as_this_attendee_is_the_local_clouds_respond_and_only_from_the_consoles_pages(
    console: Any, e2e: Stack
) -> None:
    from devtools import demo

    assert demo.main(_demo_args(console, e2e)) == 0  # a booking whose event Alex declined
    client = _signed_in(console, e2e)
    [booking] = [b for b in client.get("/app/bookings").json()["bookings"] if b["status"] != "cancelled"][-1:]
    body = {"event_id": booking["event_id"], "attendee": ALEX, "response": "accepted"}
    same_site = {"Origin": console.base_url}
    assert client.post("/app/local/respond", json=body).status_code == 403  # not from the console's pages
    assert client.post("/app/local/respond", json=body, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/app/local/respond", json={**body, "response": "maybe"}, headers=same_site).status_code == 400
    answered = client.post("/app/local/respond", json=body, headers=same_site)
    assert answered.status_code == 200, answered.text
    event = e2e.world.events[booking["event_id"]]
    assert {a.address: a.response for a in event.attendees}[ALEX] == "accepted"
    signed_out = httpx.post(f"{console.base_url}/app/local/respond", json=body, headers=same_site)
    assert signed_out.status_code == 401


def test_a_console_in_front_of_a_real_tenant_offers_no_local_controls(e2e: Stack) -> None:
    with start_console(ConsoleConfig(service_url=e2e.base_url, function_key=FUNCTION_KEY)) as running:
        assert httpx.get(f"{running.base_url}/app/config").json()["local_cloud"] is False
        answer = httpx.post(
            f"{running.base_url}/app/local/respond",
            json={"event_id": "x", "attendee": ALEX, "response": "accepted"},
            headers={"Origin": running.base_url},
        )
        assert answer.status_code == 404


def test_the_consent_request_opens_as_a_page_to_copy_and_stays_json_for_programs(console: Any, e2e: Stack) -> None:
    url = f"{console.base_url}/api/consent/request"
    page = httpx.get(url, params={"tenant": "contoso.example"}, headers={"Accept": "text/html,*/*"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="copy-email"' in page.text.replace("'", '"')
    assert "Admin consent needed for interview scheduling with Office 365" in page.text
    assert "/api/consent/start?" in page.text  # the link the administrator opens
    data = httpx.get(url, params={"tenant": "contoso.example"}, headers={"Accept": "application/json"})
    assert data.json()["subject"] == "Admin consent needed for interview scheduling with Office 365"
