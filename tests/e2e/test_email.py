"""Candidate email end to end: the whole app on the local host against Azurite and the local cloud's mail.

The app's clock reads the cloud's (one container override), so moving the cloud's clock moves both: pacing,
reminders and retries are driven by the clock and the email timer, never by sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.cloud import controls as identity_controls
from devtools.cloud import notify
from devtools.cloud.graph import controls as graph
from shared.bootstrap import Container, set_container
from tests.e2e.conftest import Stack
from tests.kit import (
    CONTOSO_ADMIN,
    KEY,
    RECRUITER,
    browser_sign_in,
    consent,
    our_events,
    stack_today,
)

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"
LYNNE = "lynne.robbins@contoso.example"
INTERVIEWS = "interviews@contoso.example"
CANDIDATE = "sam@example.org"
KEY_PROPERTY = "String {9d3e6c41-2b7a-4f18-a5c0-7e1d4b8f2a63} Name InterviewEmailKey"
AUTOMATION_LOGIN = "/api/auth/login?features=automation"


class CloudClock:
    """The app's clock reads the cloud's, so both move together."""

    def __init__(self, stack: Stack) -> None:
        self._world = stack.world

    def now(self) -> datetime:
        return self._world.now()


def run_timer(name: str) -> None:
    """Run a timer function as the host does when its schedule comes due."""
    from azure.functions.timer import TimerRequest

    from tests.app_functions import app_functions

    [fn] = [f for f in app_functions() if f.get_function_name() == name]
    fn.get_user_function()(TimerRequest(past_due=False))


def slot(n: int = 0, *, days: int = 21) -> tuple[datetime, datetime]:
    """The n-th half hour of free interview time from a Tuesday at least ``days`` ahead (21:00 UTC onwards,
    clear of the fixtures' meetings), on the stack's clock."""
    day = stack_today() + timedelta(days=days)
    while day.weekday() != 1:
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, 21, tzinfo=UTC) + timedelta(minutes=30 * n)
    return start, start + timedelta(minutes=30)


def headers(key: str | None = None) -> dict[str, str]:
    return {**KEY, "Idempotency-Key": key or f"key-{uuid.uuid4()}"}


class Mail:
    """Contoso consented, its Interviews mailbox set, and the recruiter signed in (opted into automation or not)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        consent(stack)
        admin = browser_sign_in(stack, CONTOSO_ADMIN)
        saved = admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS})
        assert saved.status_code == 200, saved.text
        self.admin = admin
        self.recruiter = browser_sign_in(stack, RECRUITER, AUTOMATION_LOGIN)

    @property
    def world(self) -> Any:
        return self.stack.world

    def body(self, n: int = 0, **extra: Any) -> dict[str, Any]:
        start, end = slot(n)
        return {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "interviewers": [ALEX, LYNNE],
            "candidate": {"name": "Sam Candidate", "email": CANDIDATE},
            "subject": "Interview: Sam Candidate",
            "online_meeting": True,
            "check_availability": False,
            "notify_candidate": True,
            **extra,
        }

    def book(self, n: int = 0, **extra: Any) -> dict[str, Any]:
        response = self.recruiter.request("POST", "/api/bookings", headers=headers(), json=self.body(n, **extra))
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def sent(self, mailbox: str = RECRUITER) -> list[Any]:
        return graph.mailbox_messages(self.world, mailbox, "sentitems")

    def sent_for(self, booking_id: str, template: str | None = None) -> list[Any]:
        prefix = f"{booking_id}.{template}." if template else f"{booking_id}."
        return [m for m in self.sent() if m.extended_properties.get(KEY_PROPERTY, "").startswith(prefix)]

    def trail(self, booking_id: str) -> dict[str, Any]:
        response = self.recruiter.request("GET", f"/api/bookings/{booking_id}/emails", headers=KEY)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def mail(e2e: Stack) -> Iterator[Mail]:
    set_container(Container(clock=CloudClock(e2e)))
    try:
        yield Mail(e2e)
    finally:
        set_container(None)


def test_opting_in_grants_mail_send_and_mail_read_and_me_says_automation(mail: Mail) -> None:
    me = mail.recruiter.request("GET", "/api/me", headers=KEY).json()
    assert "automation" in me["features"]
    assert {"Mail.Send", "Mail.Read"} <= set(me["granted_scopes"])


def test_a_recruiter_without_automation_gets_feature_not_enabled_and_nothing_is_booked(e2e: Stack) -> None:
    set_container(Container(clock=CloudClock(e2e)))
    try:
        consent(e2e)
        admin = browser_sign_in(e2e, CONTOSO_ADMIN)
        assert admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json={"interviews_mailbox": INTERVIEWS})
        plain = browser_sign_in(e2e, RECRUITER)
        body = Mail.body(None, 0)  # type: ignore[arg-type]
        response = plain.request("POST", "/api/bookings", headers=headers(), json=body)
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "feature_not_enabled"
        assert error["login_url"].endswith(AUTOMATION_LOGIN)
        assert our_events(e2e, INTERVIEWS) == []
    finally:
        set_container(None)


@pytest.mark.dates
def test_the_confirmation_is_sent_once_for_50_concurrent_identical_bookings(mail: Mail) -> None:
    key = f"key-{uuid.uuid4()}"
    body = mail.body()

    def book() -> Any:
        return mail.recruiter.request("POST", "/api/bookings", headers=headers(key), json=body)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: book(), range(50)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers if a.status_code >= 300]
    [booking_id] = {a.json()["id"] for a in answers}
    [message] = mail.sent_for(booking_id, "confirmation")
    assert message.to[0].address == CANDIDATE
    assert message.subject.startswith("Interview confirmed:")
    assert "Sam Candidate" in message.body and "teams.microsoft.com" in message.body
    # recorded in the booking's history, and shown in the trail
    booking = mail.recruiter.request("GET", f"/api/bookings/{booking_id}", headers=KEY).json()
    assert [h["action"] for h in booking["history"]].count("email_sent") == 1
    [entry] = mail.trail(booking_id)["emails"]
    assert entry["direction"] == "sent" and entry["template"] == "confirmation" and entry["to"] == [CANDIDATE]


def _patch(mail: Mail, booking: dict[str, Any], **fields: Any) -> Any:
    current = mail.recruiter.request("GET", f"/api/bookings/{booking['id']}", headers=KEY)
    return mail.recruiter.request(
        "PATCH",
        f"/api/bookings/{booking['id']}",
        headers={**KEY, "If-Match": current.headers["ETag"]},
        json=fields,
    )


@pytest.mark.dates
def test_a_move_sends_the_reschedule_notice_and_a_cancellation_the_cancellation_notice(mail: Mail) -> None:
    booking = mail.book()
    start, end = slot(4)
    moved = _patch(mail, booking, start=start.isoformat(), end=end.isoformat())
    assert moved.status_code == 200, moved.text
    assert moved.json()["email"]["template"] == "reschedule"
    assert moved.json()["email"]["status"] == "sent"
    [notice] = mail.sent_for(booking["id"], "reschedule")
    assert notice.subject.startswith("Interview moved:")
    # a change that does not move the interview sends nothing
    renamed = _patch(mail, booking, subject="Interview: Sam Candidate (final round)")
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["email"] is None
    assert len(mail.sent_for(booking["id"], "reschedule")) == 1
    cancelled = mail.recruiter.request("DELETE", f"/api/bookings/{booking['id']}", headers=KEY)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["email"]["template"] == "cancellation"
    again = mail.recruiter.request("DELETE", f"/api/bookings/{booking['id']}", headers=KEY)
    assert again.status_code == 200
    [cancellation] = mail.sent_for(booking["id"], "cancellation")
    assert cancellation.subject.startswith("Interview cancelled:")
    templates = [e["template"] for e in mail.trail(booking["id"])["emails"]]
    assert templates == ["cancellation", "reschedule", "confirmation"]  # newest first


@pytest.mark.dates
def test_a_reminder_is_sent_once_by_two_overlapping_timer_runs_and_never_after_the_interview_started(
    mail: Mail,
) -> None:
    booking = mail.book()
    later = mail.book(2)
    start = datetime.fromisoformat(booking["start"])
    run_timer("email_timer")
    assert mail.sent_for(booking["id"], "reminder") == []  # three weeks ahead: not yet
    # the cloud's clock (and so the app's) moves to 23 hours before the first interview
    notify.advance_clock(mail.world, (start - timedelta(hours=23) - mail.world.now()).total_seconds())
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: run_timer("email_timer"), range(2)))
    run_timer("email_timer")
    [reminder] = mail.sent_for(booking["id"], "reminder")
    assert reminder.subject.startswith("Reminder:")
    # the second interview starts an hour later: its reminder went too; once it has started, none goes
    assert len(mail.sent_for(later["id"], "reminder")) == 1
    notify.advance_clock(mail.world, timedelta(days=1).total_seconds())
    run_timer("email_timer")
    assert len(mail.sent_for(booking["id"], "reminder")) == 1


@pytest.mark.dates
def test_a_candidate_reply_shows_in_the_trail_and_nothing_else_of_the_mailbox_is_read(mail: Mail) -> None:
    booking = mail.book()
    [confirmation] = mail.sent_for(booking["id"], "confirmation")
    graph.reply_to_message(mail.world, confirmation.id, body="Thank you, I will be there.")
    # mail of the recruiter's that is not about the interview
    graph.reply_to_message(mail.world, confirmation.id, sender="someone@example.net")  # same conversation
    other = mail.book(1)
    [unrelated] = mail.sent_for(other["id"], "confirmation")
    graph.reply_to_message(mail.world, unrelated.id, body="Another interview's reply")
    trail = mail.trail(booking["id"])
    assert trail["replies_read"] is True
    directions = [(e["direction"], e["from"]) for e in trail["emails"]]
    assert ("received", CANDIDATE) in directions
    assert ("sent", RECRUITER) in directions
    assert all("Another interview" not in e["preview"] for e in trail["emails"])
    [reply] = [e for e in trail["emails"] if e["from"] == CANDIDATE]
    assert reply["subject"].startswith("RE: Interview confirmed")
    assert reply["preview"] == "Thank you, I will be there."
    times = [e["at"] for e in trail["emails"]]
    assert times == sorted(times, reverse=True)


@pytest.mark.dates
def test_an_answer_lost_after_the_send_is_found_in_sent_items_and_never_sent_twice(mail: Mail) -> None:
    booking = mail.book(notify_candidate=False)
    graph.lose_answers(mail.world, count=1, status=504)  # Exchange takes the message, the answer is lost
    path = f"/api/bookings/{booking['id']}/emails"
    answer = mail.recruiter.request("POST", path, headers=headers(), json={"template": "confirmation"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    assert len(mail.sent_for(booking["id"], "confirmation")) == 1
    run_timer("email_timer")  # too early to look: nothing happens
    notify.advance_clock(mail.world, 61)
    run_timer("email_timer")
    run_timer("email_timer")
    assert len(mail.sent_for(booking["id"], "confirmation")) == 1
    [entry] = mail.trail(booking["id"])["emails"]
    assert entry["status"] == "sent"


@pytest.mark.dates
def test_a_worker_that_dies_mid_send_leaves_exactly_one_message(mail: Mail) -> None:
    """The attempt claimed the message and handed it to Graph, then its process died: its lease runs out and
    the timer finds the message in Sent Items."""
    from shared.bootstrap import get_container
    from shared.models import EmailStatus

    graph.set_latency(mail.world, 0)
    booking = mail.book()
    deps = get_container()
    [record] = deps.emails.list_booking_emails(deps_tenant(mail), booking["id"])
    # Put the ledger back as a dead worker leaves it: claimed, maybe sent, lease still running.
    from dataclasses import replace

    now = mail.world.now()
    deps.emails.update_email(
        replace(record, status=EmailStatus.SENDING, maybe_sent=True, lease_until=now + timedelta(minutes=2))
    )
    run_timer("email_timer")  # the lease holds: nobody else touches it
    assert deps.emails.get_email(record.tenant_id, record.key).status is EmailStatus.SENDING
    notify.advance_clock(mail.world, 121)
    run_timer("email_timer")
    after = deps.emails.get_email(record.tenant_id, record.key)
    assert after.status is EmailStatus.SENT
    assert len(mail.sent_for(booking["id"], "confirmation")) == 1


def deps_tenant(mail: Mail) -> str:
    return str(identity_controls.get_tenant(mail.world, "contoso.example").tenant_id)


@pytest.mark.dates
def test_a_throttled_send_waits_retry_after_in_the_queue(mail: Mail, e2e: Stack) -> None:
    booking = mail.book(notify_candidate=False)
    graph.throttle(mail.world, count=1, retry_after=30, mailbox=RECRUITER)
    path = f"/api/bookings/{booking['id']}/emails"
    answer = mail.recruiter.request("POST", path, headers=headers(), json={"template": "confirmation"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    assert answer.json()["not_before"] is not None
    assert mail.sent_for(booking["id"]) == []
    run_timer("email_timer")
    assert mail.sent_for(booking["id"]) == []  # Retry-After has not passed
    notify.advance_clock(mail.world, 31)
    # Another instance takes it (this worker keeps the mailbox shut for Retry-After of its own, in real time).
    set_container(Container(clock=CloudClock(e2e)))
    run_timer("email_timer")
    assert len(mail.sent_for(booking["id"], "confirmation")) == 1


@pytest.mark.dates
def test_a_revoked_grant_fails_the_message_with_reauth_required_never_silently(mail: Mail) -> None:
    booking = mail.book()
    identity_controls.revoke_sign_in_sessions(mail.world, RECRUITER)  # refresh and access tokens revoked
    start = datetime.fromisoformat(booking["start"])
    notify.advance_clock(mail.world, (start - timedelta(hours=23) - mail.world.now()).total_seconds())
    run_timer("email_timer")
    assert mail.sent_for(booking["id"], "reminder") == []
    from shared.bootstrap import get_container

    deps = get_container()
    records = {r.template: r for r in deps.emails.list_booking_emails(deps_tenant(mail), booking["id"])}
    assert records["reminder"].status.value == "failed"
    assert records["reminder"].error == "reauth_required"
    stored = deps.bookings.get_booking(deps_tenant(mail), booking["id"])
    assert any(h.action == "email_failed" and "reauth_required" in h.detail for h in stored.history)


@pytest.mark.dates
def test_on_demand_sends_once_per_idempotency_key(mail: Mail) -> None:
    booking = mail.book(notify_candidate=False)
    assert mail.sent_for(booking["id"]) == []
    key = f"key-{uuid.uuid4()}"
    path = f"/api/bookings/{booking['id']}/emails"
    first = mail.recruiter.request("POST", path, headers=headers(key), json={"template": "invitation"})
    again = mail.recruiter.request("POST", path, headers=headers(key), json={"template": "invitation"})
    assert first.status_code == 200, first.text
    assert again.status_code == 200 and again.json()["status"] == "sent"
    assert len(mail.sent_for(booking["id"], "invitation")) == 1
    unknown = mail.recruiter.request("POST", path, headers=headers(), json={"template": "gossip"})
    assert unknown.status_code == 404


@pytest.mark.dates
def test_templates_are_checked_when_saved_and_candidate_text_is_rendered_inert(mail: Mail) -> None:
    path = "/api/email-templates/confirmation"
    default = mail.recruiter.request("GET", path, headers=KEY)
    assert default.status_code == 200 and default.json()["is_default"] is True
    # only the tenant's admins edit templates
    body = {"subject": "Confirmed: {{ date }}", "html": "<p>Hello {{ candidate.name }}</p>"}
    assert mail.recruiter.request("PUT", path, headers=KEY, json=body).status_code == 403
    attacks = [
        ("<p>Hi</p>\n<script>alert(1)</script>", 2),
        ("<p>Hi</p>\n<p>\n{{ ''.__class__ }}</p>", 3),
        ("<p>{{ candidate|attr('__class__') }}</p>", 1),
        ("<p>{{ candidate.name.__init__.__globals__ }}</p>", 1),
        ("<p>Hi {{ nobody }}</p>", 1),
        ("<p>{% if %}</p>", 1),
        ('<a href="javascript:alert(1)">x</a>', 1),
        ("<p>{{ candidate.name|safe }}</p>", 1),
    ]
    for html, line in attacks:
        refused = mail.admin.request("PUT", path, headers=KEY, json={"subject": "Hi", "html": html})
        assert refused.status_code == 400, (html, refused.text)
        error = refused.json()["error"]
        assert (error["code"], error["field"], error["line"]) == ("invalid_template", "html", line), html
    saved = mail.admin.request("PUT", path, headers=KEY, json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["is_default"] is False
    # a candidate whose name is markup: escaped in the message, never run
    booking = mail.book(candidate={"name": "<img src=x onerror=alert(1)>Sam", "email": CANDIDATE})
    [message] = mail.sent_for(booking["id"], "confirmation")
    assert message.subject.startswith("Confirmed: ")
    assert "<img" not in message.body and "&lt;img src=x onerror=alert(1)&gt;Sam" in message.body
    preview = mail.recruiter.request(
        "POST",
        "/api/email-templates/reminder/preview",
        headers=KEY,
        json={"booking_id": booking["id"], "html": "<p>See you {{ candidate.name }} on {{ date }}</p>"},
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["html"].startswith("<p>See you &lt;img")
    assert len(mail.sent_for(booking["id"])) == 1  # a preview sends nothing
    bad_preview = mail.recruiter.request(
        "POST",
        "/api/email-templates/reminder/preview",
        headers=KEY,
        json={"booking_id": booking["id"], "html": "{{ lipsum }}"},
    )
    assert bad_preview.status_code == 400


@pytest.mark.dates
def test_pacing_holds_a_burst_of_100_bookings_under_exchange_s_limit_and_loses_no_message(mail: Mail) -> None:
    graph.limit_mail(mail.world)  # Exchange's 30 messages a minute, enforced by the local cloud
    with ThreadPoolExecutor(max_workers=6) as pool:
        bookings = list(pool.map(mail.book, range(100)))
    statuses = [b["email"]["status"] for b in bookings]
    assert statuses.count("sent") == 25  # EMAIL_PER_MINUTE, the default
    assert statuses.count("queued") == 75
    assert all(b["status"] == "booked" for b in bookings)  # waiting mail never fails a booking
    for _ in range(6):
        notify.advance_clock(mail.world, 61)
        run_timer("email_timer")
    sent = {m.extended_properties[KEY_PROPERTY] for m in mail.sent()}
    assert sent == {f"{b['id']}.confirmation.1" for b in bookings}
    assert len(mail.sent()) == 100
    assert graph.mail_counts(mail.world, RECRUITER) == {"submitted": 100, "held": 0, "refused": 0}
