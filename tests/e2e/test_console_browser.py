"""The console in headless Chromium: admin consent, sign-in, readiness, the availability view, and
a booking whose attendee declines in Outlook.

The console stands where the scheduling app's web server would: it is the service's public origin
for these tests (``PUBLIC_BASE_URL``), the browser talks to it only, and the local cloud answers
sign-ins automatically as the user each step names. Assertions read what the page shows.
Screenshots: ``tmp/artifacts/<test>/`` (each path is printed; ``pytest -s`` shows them).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devtools.cloud import controls
from devtools.cloud.graph import controls as graph_controls
from devtools.console.server import RunningConsole
from tests.e2e.chromium import Shots, chromium
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO_ADMIN, RECRUITER, stack_today

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
    # Nothing set yet: the fields say so (no address that looks saved), the readiness hint points at the
    # form on this page rather than at an API, and an empty Save says what is missing.
    assert _shown(driver, "#interviews-mailbox").get_attribute("value") == ""
    assert "@" not in (_shown(driver, "#interviews-mailbox").get_attribute("placeholder") or "")
    hint = _shown(driver, '#checks li[data-check="interviews_mailbox"] a.to-form')
    assert hint.get_attribute("href").endswith("#interviews-mailbox")
    assert "/api/" not in _shown(driver, "#checks").text
    _shown(driver, "#save-settings").click()
    assert "Interviews mailbox" in _shown(driver, "#settings-missing").text
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


README = Path(__file__).resolve().parents[2] / "README.md"


def _sign_in_on_the_cloud_page(page: Any, step: Any, intro_password: str, address: str, *, choose: bool) -> None:
    """The local cloud's sign-in page, as a person uses it: the account (already chosen when the sign-in
    came with a hint), the password, *Sign in*."""
    from selenium.webdriver.common.by import By

    radio = _wait(page.driver, lambda d: d.find_element(By.CSS_SELECTOR, f"input[type=radio][value='{address}']"))
    if choose:
        radio.click()
    else:
        assert radio.is_selected(), f"the sign-in page did not choose {address} by itself"
    page.driver.find_element(By.NAME, "passwd").send_keys(intro_password)
    # The introduction says how these pages work (*Sign in*); a step may say it again.
    page.click(step.control("Sign in") if "Sign in" in step.controls else "Sign in")


def _walk(step: Any, page: Any, ctx: dict[str, Any]) -> None:
    """One README step, done with the README's own words (step.control/quote/code fail when it says otherwise)."""
    from selenium.webdriver.common.by import By

    driver = page.driver
    if step.title == "Admin consent":
        admin = step.code("adele.vance@contoso.example")
        driver.get(f"{ctx['console']}/")
        assert _shown(driver, "#consent-tenant").get_attribute("value") == "contoso.example"  # "filled in"
        page.click(step.control("Grant admin consent"))
        _sign_in_on_the_cloud_page(page, step, ctx["password"], admin, choose=True)
        page.click(step.control("Accept"))
        page.see(step.quote("You're all set"))
        ctx["shots"].take("1-consent-granted")
        page.click(step.control("Back to the scheduling app"))
        page.see(step.quote("Granted"))
        assert driver.current_url.rstrip("/") == ctx["console"]
        ctx["admin"] = admin
    elif step.title == "The tenant's mailboxes":
        header = driver.find_element(By.CSS_SELECTOR, "header.top")
        page.click(step.control("Sign in with Office 365"), scope=header)
        page.click(f"Adele Vance <{ctx['admin']}>")  # the account picker offers her account
        _text_in(driver, "#account", ctx["admin"])
        page.see(step.control("Shared mailboxes"))
        page.fill(step.control("Interviews mailbox"), step.code("interviews@contoso.example"))
        page.fill(step.control("Sync mailbox (optional)"), step.code("sync@contoso.example"))
        page.click(step.control("Save"))
        page.see(step.quote("Saved"))
        page.see(step.quote("Not ready yet"))
        _wait(driver, lambda d: _all(d, '#checks li[data-check="interviews_mailbox"][data-status="pass"]'))
        failing = [li.get_attribute("data-check") for li in _all(driver, '#checks li[data-status="fail"]')]
        assert failing == ["interviews_write_access"], failing  # "every check passes but" this one
        page.see(step.control("You can book into the Interviews calendar"))
        page.see(step.quote("Recruiting Team"))
        ctx["shots"].take("2-admin-set-mailboxes")
        page.click(step.control("Sign out"))
        _shown(driver, "#signin-button")
    elif step.title == "A recruiter":
        recruiter = step.code("megan.bowen@contoso.example")
        form = driver.find_element(By.ID, "signin-form")
        page.fill(step.control("Work account"), recruiter, scope=form)
        page.click(step.control("Sign in with Office 365"), scope=form)
        page.see(step.quote(f"Enter the password for {recruiter}"))
        ctx["shots"].take("3-cloud-asks-for-megan")
        _sign_in_on_the_cloud_page(page, step, ctx["password"], recruiter, choose=False)
        _text_in(driver, "#account", recruiter)
        page.see(step.quote("Ready to schedule"))
        ctx["shots"].take("3-recruiter-ready")
    elif step.title == "Availability":
        names = [n.strip() for n in re.search(r"lists five interviewers \(([^)]*)\)", step.text).group(1).split(",")]
        names = [n for n in names if not n.startswith("in ")]
        page.click(step.control("Availability"))
        day = ctx["day"]
        field = page.field(step.control("Day"))
        driver.execute_script("arguments[0].value = arguments[1]", field, day.isoformat())
        page.click(step.control("Find times"))
        _wait(driver, lambda d: len(_all(d, "#grid .line.person")) == len(names))
        _wait(driver, lambda d: [e.text for e in _all(d, "#grid .line.person .name")] == names)
        for row in _all(driver, "#grid .line.person"):
            assert row.find_element(By.CSS_SELECTOR, ".person-name").get_attribute("title") == row.get_attribute(
                "data-email"
            )  # the address on hover
        assert _shown(driver, "#tz-owner").text == "this browser's time zone"
        assert _all(driver, "#slots button.slot")
        ctx["shots"].take("4-availability-grid")
        saturday = day + timedelta(days=5 - day.weekday())
        driver.execute_script("arguments[0].value = arguments[1]", field, saturday.isoformat())
        page.click("Find times")
        page.see(step.quote("Nothing fits"))
        page.see(step.quote("Try Monday ..."))
        people = {li.get_attribute("data-person") for li in _all(driver, "#why-nothing-fits .reasons li[data-person]")}
        assert len(people) == len(_all(driver, "#why-nothing-fits .reasons li[data-person]")) > 0  # one per person
        assert "(s)" not in _shown(driver, "#why-nothing-fits").text
        ctx["shots"].take("4-weekend-nothing-fits")
        driver.execute_script("arguments[0].value = arguments[1]", field, day.isoformat())
        page.click("Find times")
        _wait(driver, lambda d: _all(d, "#slots button.slot"))
    elif step.title == "Book":
        slot = _all(driver, "#slots button.slot")[0]
        booked_start = slot.get_attribute("data-start")
        slot.click()
        page.fill(step.control("Candidate's name"), step.code("Sam Candidate"))
        page.fill(step.control("Candidate's email"), step.code("sam@example.org"))
        page.click(step.control("Book interview"))
        page.see(step.quote("Booked."))
        assert _shown(driver, "#join-url").get_attribute("href").startswith("https://")
        # Drawn again: the booked hour is no longer offered.
        _wait(
            driver, lambda d: booked_start not in [b.get_attribute("data-start") for b in _all(d, "#slots button.slot")]
        )
        ctx["booking"] = _shown(driver, "#booked").get_attribute("data-booking")
        ctx["event"] = _shown(driver, "#booked").get_attribute("data-event")
        ctx["shots"].take("5-booked")
        page.click(step.control("Open the booking"))
    elif step.title == "The RSVP":
        page.see(step.control("Event id"))
        _wait(driver, lambda d: d.find_element(By.ID, "event-id").text == ctx["event"])
        when = _shown(driver, "#when").text
        assert re.search(r"\d\d:\d\d–\d\d:\d\d (EST|EDT)$", when), when  # with its time zone
        page.see(step.control("History"))
        alex = f'#attendees .attendee[data-email="{FIVE[0]}"]'
        _wait(driver, lambda d: "Alex Wilber" in d.find_element(By.CSS_SELECTOR, alex).text)
        row = driver.find_element(By.CSS_SELECTOR, alex)
        from selenium.webdriver.support.ui import Select

        Select(row.find_element(By.CSS_SELECTOR, "select")).select_by_visible_text(step.control("Decline"))
        page.click(step.control("Answer as this attendee"), scope=row)
        _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, alex).get_attribute("data-response") == "declined")
        _wait(driver, lambda d: step.quote("Declined") in d.find_element(By.CSS_SELECTOR, alex).text)
        _wait(driver, lambda d: _all(d, '#history li[data-action="responded"]'))
        assert "/_control/graph/events/EVENT_ID/respond" in " ".join(step.codes)  # the terminal's way, named
        ctx["shots"].take("6-alex-declined")
    elif step.title == "Move, then cancel":
        page.see(step.control("Move the interview"))
        before = _shown(driver, "#when").text
        page.click(step.control("Show free times"))
        _wait(driver, lambda d: _all(d, "#move-slots button.slot"))
        _all(driver, "#move-slots button.slot")[-1].click()
        page.click(step.control("Move to"), prefix=True)
        page.see(step.quote("Moved to"))
        _wait(driver, lambda d: d.find_element(By.ID, "when").text != before)
        ctx["shots"].take("7-moved")
        page.see(step.control("Cancel the interview"))
        page.click(step.control("Cancel interview"))
        page.see(step.quote("Cancelled."))
        _wait(driver, lambda d: d.find_element(By.ID, "booking-card").get_attribute("data-status") == "cancelled")
        assert not _all(driver, "#join a")  # no Join link on a cancelled interview
        ctx["shots"].take("7-cancelled")
    else:
        pytest.fail(f"README demo step {step.number} ({step.title}) is one this walk does not know")


@pytest.mark.dates
def test_the_readme_demo_step_by_step_as_written(console: RunningConsole, e2e: Stack, tmp_path: Path) -> None:
    """Every step of the README's browser demo, in its words: the real sign-in pages of the local cloud
    (nobody answers them automatically), the console's own controls, and a screenshot per step."""
    from tests.e2e.browser import Page, readme_demo

    intro, steps = readme_demo(README.read_text(encoding="utf-8"))
    assert [s.title for s in steps] == [
        "Admin consent",
        "The tenant's mailboxes",
        "A recruiter",
        "Availability",
        "Book",
        "The RSVP",
        "Move, then cancel",
    ]
    password = re.search(r"password is `([^`]+)`", intro).group(1)
    controls.clear_auto_sign_in(e2e.world)
    with chromium(tmp_path, ca_cert=e2e.cloud.ca_cert) as driver:
        shots = Shots(driver, "readme-demo")
        page = Page(driver, lambda condition: _wait(driver, condition))
        ctx: dict[str, Any] = {"console": console.base_url, "password": password, "shots": shots}
        ctx["day"] = _next_weekday(2)  # a Wednesday next week
        for step in steps:
            try:
                _walk(step, page, ctx)
            except Exception:
                shots.take(f"{step.number}-failed")
                raise
            shots.take(f"step-{step.number}-done")
            assert not step.unused(), (
                f"README step {step.number} ({step.title}) says {step.unused()} the walk never met"
            )


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

        _shown(driver, "#to-booking").click()  # the booking's own page shows its email trail
        _wait(driver, lambda d: booking_id in d.current_url)
        _wait(driver, lambda d: _all(d, '#email-trail li[data-direction="sent"]'))
        assert "Interview confirmed" in _shown(driver, "#email-trail").text
        shots.take("email-trail")
