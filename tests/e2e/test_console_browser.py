"""The console in headless Chromium: admin consent, sign-in, readiness, the availability view, and
a booking whose attendee declines in Outlook.

The console stands where the scheduling app's web server would: it is the service's public origin
for these tests (``PUBLIC_BASE_URL``), the browser talks to it only, and the local cloud answers
sign-ins automatically as the user each step names. Assertions read what the page shows.
Screenshots: ``tmp/artifacts/<test>/`` (each path is printed; ``pytest -s`` shows them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devtools.cloud import controls
from devtools.cloud.graph import controls as graph_controls
from devtools.console.app import ConsoleConfig
from devtools.console.server import RunningConsole, start_console
from shared.bootstrap import set_container
from shared.sync.subscriptions import forget_worker_memory
from tests.e2e.chromium import Shots, chromium, require_chromium
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO_ADMIN, FUNCTION_KEY, RECRUITER, stack_today

pytestmark = pytest.mark.e2e

# Working hours in Pacific and Eastern time: 12:00-16:30 Eastern in common.
FIVE = [
    "alex.wilber@contoso.example",
    "megan.bowen@contoso.example",
    "patti.fernandez@contoso.example",
    "grady.archie@contoso.example",
    "adele.vance@contoso.example",
]
EASTERN = ZoneInfo("America/New_York")
PACIFIC = ZoneInfo("America/Los_Angeles")
WAIT_SECONDS = 60  # an upper bound for the page to show something, never a measurement


@pytest.fixture
def console(e2e: Stack, caplog: pytest.LogCaptureFixture) -> Iterator[RunningConsole]:
    """The console in front of the test stack, and the service configured with it as its public origin."""
    require_chromium()
    for name in ("selenium", "urllib3"):  # the driver's wire protocol, not the app's log
        caplog.set_level(logging.INFO, logger=name)
    running = start_console(
        ConsoleConfig(
            service_url=e2e.base_url, function_key=FUNCTION_KEY, tenant_hint="contoso.example", poll_seconds=1
        ),
        public_host="127.0.0.1",
    )
    changed = {
        "PUBLIC_BASE_URL": running.base_url,
        "ALLOWED_RETURN_URLS": ",".join(f"{running.base_url}{p}" for p in ("/", "/availability", "/bookings")),
    }
    saved = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    set_container(None)
    # Each test starts from fresh tables: this worker must not remember an earlier test's subscriptions.
    forget_worker_memory()
    try:
        yield running
    finally:
        running.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        set_container(None)


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The bookings page redraws as it polls: an element read mid-redraw is read again.
    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=ignored).until(condition)


def _shown(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return _wait(driver, ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _text_in(driver: Any, css: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _wait(driver, ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def _all(driver: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, css))


def _next_weekday(weekday: int, weeks_ahead: int = 1) -> date:
    today = stack_today()
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=weeks_ahead)
    return monday + timedelta(days=weekday)


def _add_event(world: Any, mailbox: str, start: datetime, end: datetime, subject: str, **extra: Any) -> None:
    fmt = "%Y-%m-%dT%H:%M:%S"
    graph_controls.add_event(
        world,
        mailbox,
        {
            "subject": subject,
            "start": {"dateTime": start.astimezone(UTC).strftime(fmt), "timeZone": "UTC"},
            "end": {"dateTime": end.astimezone(UTC).strftime(fmt), "timeZone": "UTC"},
            **extra,
        },
    )


def _sign_in(driver: Any, stack: Stack, console: RunningConsole, user: str) -> None:
    """Sign ``user`` in from the console's status page (the local cloud answers as them)."""
    controls.set_auto_sign_in(stack.world, user)
    driver.get(f"{console.base_url}/")
    _shown(driver, "#signin-button").click()
    _text_in(driver, "#account", user)


def _sign_out(driver: Any) -> None:
    _shown(driver, "#signout").click()
    _shown(driver, "#signin-button")


def _admin_sets_up_tenant(driver: Any, stack: Stack, console: RunningConsole, shots: Shots) -> None:
    """Admin consent from the console, then the admin signs in and sets the shared mailboxes."""
    driver.get(f"{console.base_url}/")
    assert "not signed in" in _shown(driver, "#me").text
    assert _shown(driver, "#consent-tenant").get_attribute("value") == "contoso.example"
    shots.take("signed-out")

    controls.set_auto_sign_in(stack.world, CONTOSO_ADMIN)
    _shown(driver, "#consent-button").click()
    _text_in(driver, "h1", "You're all set")
    shots.take("consent-granted")

    _sign_in(driver, stack, console, CONTOSO_ADMIN)
    assert _shown(driver, "#consent-status").get_attribute("data-status") == "consented"
    _shown(driver, "#settings-card")
    _shown(driver, "#interviews-mailbox").send_keys("interviews@contoso.example")
    _shown(driver, "#sync-mailbox").send_keys("sync@contoso.example")
    _shown(driver, "#save-settings").click()
    _shown(driver, "#settings-saved")
    _wait(driver, lambda d: _all(d, '#checks li[data-check="interviews_mailbox"][data-status="pass"]'))
    shots.take("admin-set-mailboxes")
    _sign_out(driver)


def test_console_takes_a_recruiter_from_consent_to_the_availability_grid(
    console: RunningConsole, e2e: Stack, tmp_path: Path
) -> None:
    day = _next_weekday(1)  # Tuesday next week
    _add_event(
        e2e.world,
        FIVE[0],
        datetime(day.year, day.month, day.day, 10, tzinfo=PACIFIC),
        datetime(day.year, day.month, day.day, 11, tzinfo=PACIFIC),
        "Design review",
    )
    _add_event(
        e2e.world,
        FIVE[2],
        datetime(day.year, day.month, day.day, 15, tzinfo=EASTERN),
        datetime(day.year, day.month, day.day, 15, 30, tzinfo=EASTERN),
        "Maybe: roadmap",
        showAs="tentative",
    )
    _add_event(
        e2e.world,
        FIVE[1],
        datetime(day.year, day.month, day.day, 8, tzinfo=EASTERN),
        datetime(day.year, day.month, day.day, 12, tzinfo=EASTERN),
        "Dentist",
        showAs="oof",
    )
    with chromium(tmp_path, ca_cert=e2e.cloud.ca_cert) as driver:
        shots = Shots(driver, "console-availability")
        _admin_sets_up_tenant(driver, e2e, console, shots)

        _sign_in(driver, e2e, console, RECRUITER)
        assert _shown(driver, "#consent-status").get_attribute("data-status") == "consented"
        _wait(driver, lambda d: _all(d, "#ready"))
        assert _all(driver, "#settings-card")[0].is_displayed() is False  # not an admin
        shots.take("recruiter-signed-in")

        driver.get(f"{console.base_url}/availability?day={day.isoformat()}&tz=America/New_York")
        _wait(driver, lambda d: len(_all(d, "#grid .line.person")) == 5)
        shots.take("availability-grid")
        rows = {row.get_attribute("data-email"): row for row in _all(driver, "#grid .line.person")}
        assert sorted(rows) == sorted(FIVE)
        alex_blocks = rows[FIVE[0]].find_elements("css selector", ".block.busy")
        assert any("Design review" in (b.text + (b.get_attribute("title") or "")) for b in alex_blocks)
        assert rows[FIVE[2]].find_elements("css selector", ".block.tentative")
        assert rows[FIVE[1]].find_elements("css selector", ".block.oof")
        assert all(row.find_elements("css selector", ".working") for row in rows.values())
        slots = _all(driver, "#slots button.slot")
        assert slots, "a weekday with working hours in common offers bookable times"
        assert _all(driver, "#bookable-track .free")
        assert "bookable" in _shown(driver, "#result-title").text
        # 12:00-16:30 Eastern in common; Alex busy 13:00-14:00, Patti tentative 15:00-15:30.
        for slot in slots:
            start, end = slot.text.split("–")
            assert start >= "12:00" and end <= "16:30", slot.text
            assert end <= "13:00" or start >= "14:00", slot.text
            assert end <= "15:00" or start >= "15:30", slot.text
        slots[0].click()
        _shown(driver, "#book-card")
        assert _shown(driver, "#chosen-overlay").is_displayed()
        shots.take("slot-chosen")

        saturday = _next_weekday(5)
        driver.get(f"{console.base_url}/availability?day={saturday.isoformat()}&tz=America/New_York")
        explanation = _shown(driver, "#why-nothing-fits")
        assert "Nothing fits" in explanation.text
        assert _all(driver, "#why-nothing-fits .reasons li")
        assert not _all(driver, "#slots button.slot")
        assert "0 bookable times" in _shown(driver, "#result-title").text
        shots.take("nothing-fits")


@pytest.mark.dates
def test_console_books_a_slot_and_shows_the_interviewer_declining(
    console: RunningConsole, e2e: Stack, tmp_path: Path
) -> None:
    day = _next_weekday(2)  # Wednesday next week
    with chromium(tmp_path, ca_cert=e2e.cloud.ca_cert) as driver:
        shots = Shots(driver, "console-booking")
        _admin_sets_up_tenant(driver, e2e, console, shots)
        _sign_in(driver, e2e, console, RECRUITER)

        driver.get(f"{console.base_url}/availability?day={day.isoformat()}&tz=America/New_York")
        _wait(driver, lambda d: _all(d, "#slots button.slot"))
        _all(driver, "#slots button.slot")[0].click()
        _shown(driver, "#candidate-name").send_keys("Sam Candidate")
        _shown(driver, "#candidate-email").send_keys("sam@example.org")
        _shown(driver, "#book").click()
        booked = _shown(driver, "#booked")
        booking_id = booked.get_attribute("data-booking")
        event_id = booked.get_attribute("data-event")
        assert _shown(driver, "#join-url").get_attribute("href").startswith("https://")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", booked)
        shots.take("booked")

        _shown(driver, "#to-bookings").click()
        row = f'tr.booking[data-id="{booking_id}"]'
        _shown(driver, row)
        alex = f'{row} .attendee[data-email="{FIVE[0]}"]'
        _wait(driver, lambda d: d.find_element("css selector", alex).get_attribute("data-response") != "declined")
        shots.take("bookings-before")

        # Alex declines in "Outlook": the local cloud's control, as Alex would answer the invitation.
        graph_controls.decline(e2e.world, event_id, FIVE[0])
        _wait(driver, lambda d: d.find_element("css selector", alex).get_attribute("data-response") == "declined")
        _wait(driver, lambda d: "Declined" in d.find_element("css selector", alex).text)
        shots.take("bookings-declined")


def test_console_switches_email_automation_on_emails_the_candidate_and_shows_the_trail(
    console: RunningConsole, e2e: Stack, tmp_path: Path
) -> None:
    day = _next_weekday(2)
    with chromium(tmp_path, ca_cert=e2e.cloud.ca_cert) as driver:
        shots = Shots(driver, "console-email")
        _admin_sets_up_tenant(driver, e2e, console, shots)
        _sign_in(driver, e2e, console, RECRUITER)
        assert _shown(driver, "#automation").get_attribute("data-on") == "false"
        _shown(driver, "#automation a.button").click()  # the incremental consent for Mail.Send and Mail.Read
        _wait(driver, lambda d: d.find_element("css selector", "#automation").get_attribute("data-on") == "true")
        shots.take("automation-on")

        driver.get(f"{console.base_url}/availability?day={day.isoformat()}&tz=America/New_York")
        _wait(driver, lambda d: _all(d, "#slots button.slot"))
        _all(driver, "#slots button.slot")[0].click()
        _shown(driver, "#candidate-name").send_keys("Sam Candidate")
        _shown(driver, "#candidate-email").send_keys("sam@example.org")
        _shown(driver, "#notify-candidate").click()
        _shown(driver, "#book").click()
        booking_id = _shown(driver, "#booked").get_attribute("data-booking")
        _text_in(driver, "#email-status", "sent")

        _shown(driver, "#to-bookings").click()
        trail = f'.email-trail[data-booking="{booking_id}"]'
        _shown(driver, f"{trail} .email-trail-toggle").click()
        _wait(driver, lambda d: _all(d, f'{trail} li[data-direction="sent"]'))
        assert "Interview confirmed" in _shown(driver, trail).text
        shots.take("email-trail")
