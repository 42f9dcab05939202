"""The whole journey against the running stack (``scripts/run``), one printed step at a time.

Admin consent, the tenant's mailboxes, a recruiter signed in, availability for five interviewers,
a booking with a Teams link, an interviewer declining in "Outlook", and the booking showing it.
Everything goes through the console (the app's public origin), as a browser would; the local
cloud's ``/_control`` routes stand in for the people: they answer the sign-in pages and decline.
Exit status 0 only when every step showed what it should.
"""

from __future__ import annotations

import argparse
import re
import ssl
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from devtools.azurite import ROOT

ADMIN = "adele.vance@contoso.example"
RECRUITER = "megan.bowen@contoso.example"
FIVE = [
    "alex.wilber@contoso.example",
    "megan.bowen@contoso.example",
    "patti.fernandez@contoso.example",
    "grady.archie@contoso.example",
    "adele.vance@contoso.example",
]
DECLINER = FIVE[0]
ZONE = "America/New_York"


class DemoFailed(Exception):
    pass


class Browser:
    """Follows redirects and auto-submitting forms, keeping cookies per host:port as a browser does
    for these origins (the service's cookies are Secure, which browsers keep for http://localhost)."""

    def __init__(self, ca_bundle: str) -> None:
        self.client = httpx.Client(
            verify=ssl.create_default_context(cafile=ca_bundle), follow_redirects=False, timeout=60
        )
        self.jar: dict[str, dict[str, str]] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        netloc = urlsplit(url).netloc
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.jar.get(netloc):
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar[netloc].items())
        response = self.client.request(method, url, headers=headers, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.jar.get(netloc, {}).pop(name, None)
                else:
                    self.jar.setdefault(netloc, {})[name] = morsel.value
        return response

    def session_cookie(self, url: str, name: str) -> str | None:
        return self.jar.get(urlsplit(url).netloc, {}).get(name)

    def navigate(self, url: str) -> httpx.Response:
        response = self.request("GET", url)
        for _ in range(15):
            if response.is_redirect:
                url = urljoin(str(response.request.url), response.headers["location"])
                response = self.request("GET", url)
                continue
            form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', response.text, re.I)
            if form and ("onload" in response.text or "submit()" in response.text):
                fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
                url = urljoin(str(response.request.url), unescape(form.group(1)))
                response = self.request("POST", url, data={k: unescape(v) for k, v in fields.items()})
                continue
            return response
        raise DemoFailed(f"too many redirects from {url}")


class Demo:
    def __init__(self, console: str, cloud: str, ca_bundle: str) -> None:
        self.console = console.rstrip("/")
        self.cloud = cloud.rstrip("/")
        self.browser = Browser(ca_bundle)
        self.control = httpx.Client(
            base_url=self.cloud, verify=ssl.create_default_context(cafile=ca_bundle), timeout=30
        )
        self.step = 0
        self.saved_auto_sign_in: dict[str, Any] | None = None
        self.booking: dict[str, Any] | None = None  # the one the run made

    def say(self, title: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {title}", flush=True)

    def app(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        """A call from the console's own page: same origin, the session cookie, no key."""
        headers = {"Origin": self.console, "Accept": "application/json", **kwargs.pop("headers", {})}
        return self.browser.request(method, f"{self.console}/app/{route}", headers=headers, **kwargs)

    def expect(self, response: httpx.Response, *statuses: int) -> Any:
        if response.status_code not in statuses:
            request = response.request
            raise DemoFailed(f"{request.method} {request.url.path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def set_auto_sign_in(self, user: str) -> None:
        if self.saved_auto_sign_in is None:
            # What the local cloud did before the demo changed it, put back by restore_sign_in().
            self.saved_auto_sign_in = self.expect(self.control.get("/_control/auto-sign-in"), 200)
        self.expect(self.control.put("/_control/auto-sign-in", json={"user": user}), 200)

    def restore_sign_in(self) -> None:
        """Put the local cloud's sign-in back as the demo found it: the next person to sign in in a
        browser gets the sign-in page again (or whatever automatic answer was set before)."""
        saved = self.saved_auto_sign_in
        if saved is None:
            return
        before = saved.get("auto_sign_in")
        if before is None:
            self.expect(self.control.delete("/_control/auto-sign-in"), 200)
        else:
            self.expect(self.control.put("/_control/auto-sign-in", json=before), 200)
        self.saved_auto_sign_in = None

    def sign_in(self, user: str) -> dict[str, Any]:
        self.set_auto_sign_in(user)
        page = self.browser.navigate(f"{self.console}/api/auth/login?return_to={self.console}/")
        if str(page.request.url).rstrip("/") != self.console:
            raise DemoFailed(f"sign-in as {user} ended at {page.request.url}: {page.text[:300]}")
        me = self.expect(self.app("GET", "me"), 200)
        if me["user"]["username"] != user:
            raise DemoFailed(f"signed in as {me['user']['username']}, not {user}")
        return dict(me)

    def run(self) -> None:
        self._check_stack()
        self._admin_consent()
        self._admin_settings()
        self._recruiter_ready()
        slots = self._availability(_weekday_ahead(2))  # a Wednesday at least a week ahead
        booking = self._book(slots)
        self._decline(booking)
        self._wait_for_decline(booking)
        print(f"\nDone: open {self.console}/bookings to see it in the console.")

    def _check_stack(self) -> None:
        self.say(f"The stack: console {self.console}, local cloud {self.cloud}")
        health = self.expect(self.browser.request("GET", f"{self.console}/api/health"), 200)
        print(f"    service health through the console: {health['status']}")

    def _admin_consent(self) -> None:
        self.say(f"Admin consent: {ADMIN} grants the app's permissions for contoso.example")
        self.set_auto_sign_in(ADMIN)
        page = self.browser.navigate(f"{self.console}/api/consent/start?tenant=contoso.example")
        if "all set" not in page.text:
            raise DemoFailed(f"admin consent did not complete: {page.status_code} {page.text[:400]}")
        print("    the service's page: \"You're all set\"")

    def _admin_settings(self) -> None:
        self.say("The admin signs in and sets the tenant's Interviews and Sync mailboxes")
        me = self.sign_in(ADMIN)
        print(f"    signed in as {me['user']['display_name']} (admin: {me['user']['is_tenant_admin']})")
        settings = {"interviews_mailbox": "interviews@contoso.example", "sync_mailbox": "sync@contoso.example"}
        stored = self.expect(self.app("PUT", "settings", json=settings), 200)
        print(f"    Interviews: {stored['interviews_mailbox']}, Sync: {stored['sync_mailbox']}")
        self.expect(self.browser.request("POST", f"{self.console}/api/auth/logout"), 204)
        print("    the admin signs out")

    def _recruiter_ready(self) -> None:
        self.say(f"A recruiter signs in: {RECRUITER}")
        me = self.sign_in(RECRUITER)
        print(f"    signed in as {me['user']['display_name']}; consent {me['tenant']['consent']['status']}")
        readiness = self.expect(self.app("GET", "readiness"), 200)
        for check in readiness["checks"]:
            print(f"    {check['status']:>7}  {check['title']}")
        if not readiness["ready"]:
            raise DemoFailed("the tenant is not ready")
        print("    ready: true")

    def _availability(self, day: Any) -> list[dict[str, Any]]:
        self.say(f"Availability of five interviewers on {day.isoformat()} ({ZONE}), 60 minutes")
        from zoneinfo import ZoneInfo

        start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONE))
        answer = self.expect(
            self.app(
                "POST",
                "availability",
                json={
                    "interviewers": [{"email": e, "required": True} for e in FIVE],
                    "start": start.isoformat(),
                    "end": (start + timedelta(days=1)).isoformat(),
                    "duration_minutes": 60,
                    "interval_minutes": 30,
                    "time_zone": ZONE,
                },
            ),
            200,
        )
        for person in answer["interviewers"]:
            busy = [b for b in person["busy"] if b["status"] != "free"]
            print(f"    {person['email']:<34} {person['status']:<10} {len(busy)} busy block(s)")
        slots: list[dict[str, Any]] = answer["slots"]
        print(f"    {len(slots)} bookable slot(s): " + ", ".join(s["start"][11:16] for s in slots[:8]))
        if not slots:
            raise DemoFailed(f"no slot fits: {answer.get('explanation')}")
        return slots

    def _book(self, slots: list[dict[str, Any]]) -> dict[str, Any]:
        self.say(f"Book the first free time, {slots[0]['start']} to {slots[0]['end']}, with a Teams meeting")
        for slot in slots[:5]:
            response = self.app(
                "POST",
                "bookings",
                headers={"Idempotency-Key": str(uuid.uuid4())},
                json={
                    "start": slot["start"],
                    "end": slot["end"],
                    "interviewers": FIVE,
                    "optional_interviewers": [],
                    "candidate": {"name": "Sam Candidate", "email": "sam@example.org"},
                    "subject": "Interview: Sam Candidate",
                    "body": "Agenda: introductions, a design exercise, questions.",
                    "online_meeting": True,
                    "location": None,
                    "calendar": "interviews",
                    "check_availability": True,
                },
            )
            if response.status_code != 409 or response.json()["error"]["code"] != "slot_unavailable":
                break
            # What a recruiter does when someone became busy meanwhile: take the next time.
            print(f"    {slot['start']} was taken meanwhile ({response.json()['error']['message']}); trying the next")
        booking: dict[str, Any] = self.expect(response, 200, 201)
        self.booking = booking
        print(f"    booking {booking['id']}: {booking['status']}, organizer {booking.get('organizer')}")
        print(f"    Teams: {booking.get('join_url')}")
        if not booking.get("join_url"):
            raise DemoFailed("the booking has no Teams link")
        return booking

    def _decline(self, booking: dict[str, Any]) -> None:
        self.say(f'{DECLINER} declines the invitation in "Outlook"')
        self.expect(
            self.control.post(
                f"/_control/graph/events/{booking['event_id']}/respond",
                json={"attendee": DECLINER, "response": "declined"},
            ),
            200,
        )
        print("    declined in the local cloud; its change notification goes to the service")

    def _wait_for_decline(self, booking: dict[str, Any]) -> None:
        self.say("The booking shows the decline")
        deadline = time.monotonic() + 90
        while True:
            current = self.expect(self.app("GET", f"bookings/{booking['id']}"), 200)
            answers = {a["email"]: a.get("response") for a in current.get("attendees", [])}
            if answers.get(DECLINER) == "declined":
                break
            if time.monotonic() > deadline:
                raise DemoFailed(f"the booking still shows {answers}")
            time.sleep(1)
        for email, response_name in answers.items():
            print(f"    {email:<34} {response_name}")


def _weekday_ahead(weekday: int) -> Any:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=1, days=weekday)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    parser.add_argument("--console", default="http://localhost:7080")
    parser.add_argument("--cloud", default="https://127.0.0.1:8443")
    parser.add_argument("--ca-bundle", default=str(ROOT / ".devdata" / "cloud" / "ca-bundle.pem"))
    args = parser.parse_args(argv)
    demo = Demo(args.console, args.cloud, args.ca_bundle)
    status = 0
    try:
        demo.run()
    except (DemoFailed, httpx.HTTPError) as err:
        print(f"\nThe demo failed at step {demo.step}: {err}", file=sys.stderr)
        status = 1
    finally:
        try:
            demo.restore_sign_in()
        except (DemoFailed, httpx.HTTPError) as err:
            print(
                f"Could not put the local cloud's sign-in back (PUT or DELETE /_control/auto-sign-in): {err}",
                file=sys.stderr,
            )
            status = 1
    if status == 0:
        print("The local cloud's sign-in is back as the demo found it (GET /_control/auto-sign-in shows it).")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
