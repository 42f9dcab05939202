"""Candidate email's core against the kit's fakes: templates checked when saved, pacing, and exactly-once sending."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.email.pacing import Limits, decide
from shared.email.sending import LOOKUP_DELAY, deliver, notify, request_email, require_automation
from shared.email.templates import DEFAULTS, SAMPLE, check_template, render, sanitize
from shared.errors import FeatureNotEnabled, GraphRequestFailed, InvalidTemplate, UpstreamUnavailable
from shared.models import Booking, BookingStatus, EmailStatus, Pace, User
from tests.kit import TENANT_A, FakeDeps

RECRUITER_ID = "u1"
CANDIDATE = "sam@example.org"


def recruiter(deps: FakeDeps, *, features: tuple[str, ...] = ("automation",)) -> User:
    deps.token_caches.save_cache(TENANT_A, RECRUITER_ID, '{"user": "cache"}')
    return deps.users.create_user(
        User(
            tenant_id=TENANT_A,
            user_id=RECRUITER_ID,
            username="rita@contoso.example",
            display_name="Rita",
            features=features,
        )
    )


def booking(deps: FakeDeps, *, hours_ahead: float = 72, invited: bool = True) -> Booking:
    start = deps.clock.now() + timedelta(hours=hours_ahead)
    attendees = ("alex.wilber@contoso.example", *((CANDIDATE,) if invited else ()))
    return deps.bookings.create_booking(
        Booking(
            tenant_id=TENANT_A,
            booking_id="b" * 26,
            mailbox="interviews@contoso.example",
            start=start,
            end=start + timedelta(hours=1),
            subject="Interview: Sam",
            status=BookingStatus.BOOKED,
            attendees=attendees,
            interviewers=("alex.wilber@contoso.example",),
            created_by=RECRUITER_ID,
            candidate_email=CANDIDATE,
            candidate_name="Sam <b>Candidate</b>",
            join_url="https://teams.microsoft.com/l/meetup-join/x",
            notify_candidate=True,
            display_offset_minutes=-300,
        )
    )


@pytest.fixture
def deps() -> FakeDeps:
    made = FakeDeps()
    recruiter(made)
    return made


# ---- templates --------------------------------------------------------------------------------------
def test_every_default_template_passes_the_check_and_renders() -> None:
    for name, (subject, html) in DEFAULTS.items():
        rendered = render(check_template(TENANT_A, name, subject, html), SAMPLE)
        assert "\n" not in rendered.subject and rendered.subject
        assert "Sam Candidate" in rendered.html


@pytest.mark.parametrize(
    ("html", "line", "says"),
    [
        ("<p>a</p>\n<script>alert(1)</script>", 2, "<script"),
        ("<p>a</p>\n\n{{ ''.__class__.__mro__ }}", 3, "cannot be read"),
        ("{{ candidate|attr('__class__') }}", 1, "attr"),
        ("{% for p in interviewers %}\n{{ p.__init__ }}{% endfor %}", 2, "__init__"),
        ("{{ candidate.name.upper() }}", 1, "calls"),
        ("{{ range(3) }}", 1, "calls"),
        ("{{ cycler }}", 1, "unknown variable"),
        ("{{ candidate.phone }}", 1, "no field"),
        ("{{ interviewers.pop }}", 1, "cannot be rendered"),  # the sandbox itself refuses it
        ("{% include 'x' %}", 1, "include"),
        ("{{ candidate.name|safe }}", 1, "safe"),
        ('<img src="x" onerror="alert(1)">', 1, "onerror"),
        ('<a href="data:text/html;base64,xx">x</a>', 1, "data:"),
        ("<p>{% if %}</p>", 1, "does not compile"),
        ("<p>\n{{ duration_minutes + candidate.name }}</p>", 2, "cannot be rendered"),
        ("{{ 9 ** 9 ** 9 }}", 1, "powers"),
        ("{{ candidate.name * 100000000 }}", 1, "multiplication"),
    ],
)
def test_a_template_is_refused_when_saved_naming_the_field_and_line(html: str, line: int, says: str) -> None:
    with pytest.raises(InvalidTemplate) as refused:
        check_template(TENANT_A, "confirmation", "Hello", html)
    assert refused.value.details == {"field": "html", "line": line}
    assert says in refused.value.message


def test_a_subject_is_one_line_of_plain_text() -> None:
    with pytest.raises(InvalidTemplate) as refused:
        check_template(TENANT_A, "confirmation", "Hi\r\nBcc: x@example.org", "<p>x</p>")
    assert refused.value.details["field"] == "subject"
    template = check_template(TENANT_A, "confirmation", "Hi {{ candidate.name }}", "<p>{{ candidate.name }}</p>")
    rendered = render(template, {**SAMPLE, "candidate": {"name": "<b>Sam</b>", "email": CANDIDATE}})
    assert rendered.subject == "Hi <b>Sam</b>"  # plain text: not HTML-escaped, never rendered as HTML
    assert rendered.html == "<p>&lt;b&gt;Sam&lt;/b&gt;</p>"


def test_the_rendered_html_is_sanitized() -> None:
    assert sanitize('<p onclick="x()">a<script>alert(1)</script></p><a href="javascript:x">l</a>') == (
        '<p>a</p><a rel="noopener noreferrer">l</a>'
    )


# ---- pacing -------------------------------------------------------------------------------------------
def test_pacing_allows_the_setting_per_sliding_minute_and_says_when_the_next_fits(deps: FakeDeps) -> None:
    limits = Limits(per_minute=3, recipients_per_day=100)
    pace = Pace(TENANT_A, RECRUITER_ID)
    now = deps.clock.now()
    times = [now, now + timedelta(seconds=10), now + timedelta(seconds=20)]
    for moment in times:
        taken, wait = decide(pace, moment, 1, limits)
        assert wait is None and taken is not None
        pace = taken
    refused, wait = decide(pace, now + timedelta(seconds=30), 1, limits)
    assert refused is None and wait == now + timedelta(minutes=1)
    later, none = decide(pace, now + timedelta(minutes=1), 1, limits)
    assert none is None and later is not None and len(later.recent) == 3


def test_pacing_counts_recipients_per_day_in_hour_buckets(deps: FakeDeps) -> None:
    limits = Limits(per_minute=30, recipients_per_day=5)
    now = deps.clock.now().replace(minute=30, second=0, microsecond=0)
    bucket = now.replace(minute=0)
    pace = Pace(TENANT_A, RECRUITER_ID, hourly=((bucket - timedelta(hours=3), 4),))
    taken, _ = decide(pace, now, 1, limits)
    assert taken is not None
    refused, wait = decide(taken, now + timedelta(minutes=2), 1, limits)
    assert refused is None
    assert wait == bucket - timedelta(hours=3) + timedelta(hours=25)  # when the oldest bucket leaves the day


# ---- sending exactly once -------------------------------------------------------------------------
def test_asking_twice_for_the_same_message_makes_one_row(deps: FakeDeps) -> None:
    made = booking(deps)
    first = request_email(deps, made, "confirmation", "1", RECRUITER_ID)
    second = request_email(deps, made, "confirmation", "1", RECRUITER_ID)
    assert first.created and not second.created
    assert first.record.key == second.record.key == f"{made.booking_id}.confirmation.1"


def test_a_lost_answer_is_looked_up_before_any_retry_and_never_sent_twice(deps: FakeDeps) -> None:
    made = booking(deps)
    deps.mail.failures.append(UpstreamUnavailable("timed out"))
    deps.mail.send_then_fail = True  # Exchange took it; the answer never came
    record = notify(deps, made, "confirmation", "1", RECRUITER_ID)
    assert (record.status, record.maybe_sent) == (EmailStatus.QUEUED, True)
    assert len(deps.mail.sent) == 1
    deps.clock.advance(seconds=10)
    assert deliver(deps, TENANT_A, record.key).status is EmailStatus.QUEUED  # too early to look
    deps.clock.advance(seconds=LOOKUP_DELAY.total_seconds())
    after = deliver(deps, TENANT_A, record.key)
    assert after.status is EmailStatus.SENT and after.conversation_id == f"c-{record.key}"
    assert len(deps.mail.sent) == 1 and deps.mail.lookups == 1
    assert [h.action for h in deps.bookings.get_booking(TENANT_A, made.booking_id).history] == ["email_sent"]


def test_an_unknown_outcome_that_never_reached_exchange_is_sent_once_more(deps: FakeDeps) -> None:
    made = booking(deps)
    deps.mail.failures.append(GraphRequestFailed("bad gateway", status=502, reason="unavailable"))
    record = notify(deps, made, "confirmation", "1", RECRUITER_ID)
    assert record.maybe_sent and deps.mail.sent == []
    deps.clock.advance(seconds=LOOKUP_DELAY.total_seconds())
    assert deliver(deps, TENANT_A, record.key).status is EmailStatus.SENT
    assert len(deps.mail.sent) == 1 and deps.mail.lookups == 1


def test_a_dead_attempt_s_lease_runs_out_and_the_key_is_looked_up(deps: FakeDeps) -> None:
    made = booking(deps)
    asked = request_email(deps, made, "confirmation", "1", RECRUITER_ID).record
    now = deps.clock.now()
    dead = deps.emails.update_email(
        replace(asked, status=EmailStatus.SENDING, maybe_sent=True, attempts=1, lease_until=now + timedelta(minutes=2))
    )
    assert deliver(deps, TENANT_A, dead.key).status is EmailStatus.SENDING  # the lease holds
    deps.clock.advance(minutes=3)
    assert deliver(deps, TENANT_A, dead.key).status is EmailStatus.SENT
    assert len(deps.mail.sent) == 1 and deps.mail.lookups == 1


def test_throttling_waits_retry_after_and_needs_no_lookup(deps: FakeDeps) -> None:
    made = booking(deps)
    deps.mail.failures.append(GraphRequestFailed("throttled", status=429, reason="throttled", retry_after=42))
    record = notify(deps, made, "confirmation", "1", RECRUITER_ID)
    assert record.status is EmailStatus.QUEUED and not record.maybe_sent
    assert record.not_before == deps.clock.now() + timedelta(seconds=42)
    deps.clock.advance(seconds=43)
    assert deliver(deps, TENANT_A, record.key).status is EmailStatus.SENT
    assert deps.mail.lookups == 0


def test_send_as_denied_fails_the_message_and_the_history_says_so(deps: FakeDeps) -> None:
    made = booking(deps)
    deps.mail.failures.append(
        GraphRequestFailed("denied", status=403, reason="forbidden", graph_code="ErrorSendAsDenied")
    )
    record = notify(deps, made, "confirmation", "1", RECRUITER_ID)
    assert (record.status, record.error) == (EmailStatus.FAILED, "send_as_denied")
    history = deps.bookings.get_booking(TENANT_A, made.booking_id).history
    assert [(h.action, h.detail) for h in history] == [("email_failed", "confirmation: send_as_denied")]


def test_a_reminder_is_never_sent_once_the_interview_started(deps: FakeDeps) -> None:
    made = booking(deps, hours_ahead=1)
    record = request_email(deps, made, "reminder", "r", RECRUITER_ID).record
    deps.clock.advance(hours=2)
    after = deliver(deps, TENANT_A, record.key)
    assert (after.status, after.error) == (EmailStatus.FAILED, "too_late")
    assert deps.mail.sent == []


def test_the_pace_holds_the_26th_message_of_a_minute_in_the_queue(deps: FakeDeps) -> None:
    first = booking(deps)
    for n in range(26):
        made = deps.bookings.create_booking(replace(first, booking_id=f"{n:026d}", etag=None))
        record = notify(deps, made, "confirmation", "1", RECRUITER_ID)
    assert record.status is EmailStatus.QUEUED and record.not_before is not None
    assert len(deps.mail.sent) == 25
    deps.clock.advance(seconds=61)
    assert deliver(deps, TENANT_A, record.key).status is EmailStatus.SENT


def test_the_ics_goes_with_a_confirmation_only_when_outlook_did_not_invite_the_candidate(deps: FakeDeps) -> None:
    notify(deps, booking(deps), "confirmation", "1", RECRUITER_ID)
    assert deps.mail.sent[-1][1].attachments == ()
    deps.bookings.items.clear()
    uninvited = booking(deps, invited=False)
    notify(deps, uninvited, "confirmation", "2", RECRUITER_ID)
    [ics] = deps.mail.sent[-1][1].attachments
    assert ics.name == "interview.ics" and ics.content_type.startswith("text/calendar")
    assert b"BEGIN:VEVENT" in ics.content and b"DTSTART:" in ics.content


def test_times_are_in_the_candidate_s_offset_and_names_are_escaped(deps: FakeDeps) -> None:
    made = booking(deps)
    notify(deps, made, "confirmation", "1", RECRUITER_ID)
    mail = deps.mail.sent[-1][1]
    local = made.start - timedelta(hours=5)
    assert f"{local:%H:%M}" in mail.subject and "UTC-05:00" in mail.html
    assert "Sam &lt;b&gt;Candidate&lt;/b&gt;" in mail.html


def test_a_recruiter_who_did_not_opt_in_gets_feature_not_enabled() -> None:
    deps = FakeDeps()
    user = recruiter(deps, features=())
    with pytest.raises(FeatureNotEnabled) as refused:
        require_automation(deps, user)
    assert refused.value.details["login_url"].endswith("/api/auth/login?features=automation")
