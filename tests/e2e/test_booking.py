"""Booking through the HTTP endpoints, against Azurite and the local Microsoft cloud."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from devtools.cloud.graph import controls as graph_controls
from shared.bootstrap import Container, get_container, set_container
from shared.errors import UpstreamUnavailable
from shared.models import Booking, BookingStatus
from tests.e2e.conftest import Stack
from tests.kit import (
    CONTOSO,
    FABRIKAM_ADMIN,
    FABRIKAM_RECRUITER,
    KEY,
    RECRUITER,
    booking_headers,
    consent,
    interview_slot,
    our_events,
    recruiter_with_interviews_mailbox,
    stack_now,
)
from tests.kit import browser_sign_in as sign_in

pytestmark = pytest.mark.e2e

ALEX = "alex.wilber@contoso.example"
LYNNE = "lynne.robbins@contoso.example"
INTERVIEWS = "interviews@contoso.example"
GRADY = "grady.archie@contoso.example"  # not in the Recruiting Team group


_slot = interview_slot
_key = booking_headers


def _body(**overrides: Any) -> dict[str, Any]:
    start, end = _slot()
    body = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "interviewers": [ALEX],
        "candidate": {"name": "Sam Candidate", "email": "sam@example.org"},
        "subject": "Interview: Sam Candidate",
        "body": "Agenda: system design",
        "online_meeting": True,
        "calendar": "interviews",
    }
    body.update(overrides)
    return body


@pytest.fixture
def recruiter(e2e: Stack) -> Any:
    return recruiter_with_interviews_mailbox(e2e)


def _events(stack: Stack, mailbox: str) -> list[Any]:
    user = graph_controls.resolve_user(stack.world, mailbox)
    return list(stack.world.mailbox_events(user.id))


_ours = our_events


@pytest.mark.dates
def test_a_booking_lands_in_the_interviews_calendar_and_each_attendee_s_with_the_teams_link(
    e2e: Stack, recruiter: Any
) -> None:
    response = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body())
    assert response.status_code == 201, response.text
    booking = response.json()
    assert booking["status"] == "booked" and booking["organizer"] == INTERVIEWS
    assert booking["join_url"].startswith("https://teams.microsoft.com/")
    assert {a["email"]: a["type"] for a in booking["attendees"]} == {ALEX: "required", "sam@example.org": "candidate"}
    assert response.headers["ETag"] == booking["etag"]
    [organizer_event] = _ours(e2e, INTERVIEWS)
    assert organizer_event.id == booking["event_id"] and organizer_event.ical_uid == booking["ical_uid"]
    assert booking["id"] in organizer_event.extended_properties.values()
    [copy] = [e for e in _events(e2e, ALEX) if e.ical_uid == booking["ical_uid"]]
    assert copy.online_meeting is not None and copy.online_meeting.join_url == booking["join_url"]
    read = recruiter.request("GET", f"/api/bookings/{booking['id']}", headers=KEY)
    assert read.status_code == 200 and read.json()["event_id"] == booking["event_id"]

    graph_controls.accept(e2e.world, copy.id, ALEX)
    # What the notification worker will do: read the event and apply it.
    from shared.booking.outlook import apply_observed_event

    deps = get_container()
    observed = deps.events.get_event(_app_token(deps), INTERVIEWS, booking["event_id"])
    apply_observed_event(deps, CONTOSO, event_id=booking["event_id"], observed=observed, seen_at=stack_now())
    attendees = recruiter.request("GET", f"/api/bookings/{booking['id']}", headers=KEY).json()["attendees"]
    alex = next(a for a in attendees if a["email"] == ALEX)
    assert alex["response"] == "accepted" and alex["responded_at"]


def _app_token(deps: Any) -> Any:
    from shared.identity.tokens import app_token

    return app_token(deps, CONTOSO)


def test_the_same_key_and_body_answers_the_original_and_another_body_is_refused(e2e: Stack, recruiter: Any) -> None:
    headers = _key()
    first = recruiter.request("POST", "/api/bookings", headers=headers, json=_body())
    assert first.status_code == 201, first.text
    again = recruiter.request("POST", "/api/bookings", headers=headers, json=_body())
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = recruiter.request("POST", "/api/bookings", headers=headers, json=_body(subject="Another"))
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    missing = recruiter.request("POST", "/api/bookings", headers=KEY, json=_body())
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "Idempotency-Key"
    assert len(_ours(e2e, INTERVIEWS)) == 1


def test_fifty_concurrent_identical_requests_make_one_event_and_one_booking(e2e: Stack, recruiter: Any) -> None:
    headers = _key()
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(
            pool.map(lambda _i: recruiter.request("POST", "/api/bookings", headers=headers, json=_body()), range(50))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 1 and statuses.count(200) == 49, [a.text for a in answers if a.status_code >= 300]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(_ours(e2e, INTERVIEWS)) == 1


def test_two_bookings_racing_for_one_interviewer_s_slot_one_wins(e2e: Stack, recruiter: Any) -> None:
    bodies = [_body(subject="Candidate A"), _body(subject="Candidate B", candidate={"email": "b@example.org"})]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda b: recruiter.request("POST", "/api/bookings", headers=_key(), json=b), bodies))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409).json()["error"]
    assert loser["code"] == "slot_unavailable" and loser["busy"] == [ALEX]
    assert len(_ours(e2e, INTERVIEWS)) == 1
    forced = recruiter.request(
        "POST", "/api/bookings", headers=_key(), json=_body(subject="On purpose", check_availability=False)
    )
    assert forced.status_code == 201 and any("check_availability" in w for w in forced.json()["warnings"])


def test_an_event_we_did_not_create_is_refused_and_left_alone(e2e: Stack, recruiter: Any) -> None:
    booked = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body()).json()
    start, end = _slot(days=28)
    fmt = "%Y-%m-%dT%H:%M:%S"
    stranger = graph_controls.add_event(
        e2e.world,
        INTERVIEWS,
        {
            "subject": "Board meeting",
            "start": {"dateTime": start.strftime(fmt), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime(fmt), "timeZone": "UTC"},
        },
    )
    deps = get_container()
    record = deps.bookings.get_booking(CONTOSO, booked["id"])
    planted = deps.bookings.update_booking(replace(record, event_id=stranger.id))  # an id guessed or copied
    before = (stranger.subject, stranger.start, stranger.is_cancelled, stranger.change_key)
    patch = recruiter.request(
        "PATCH",
        f"/api/bookings/{booked['id']}",
        headers={**KEY, "If-Match": planted.etag or ""},
        json={"subject": "Hijacked"},
    )
    assert patch.status_code == 403 and patch.json()["error"]["code"] == "not_our_event"
    delete = recruiter.request("DELETE", f"/api/bookings/{booked['id']}", headers=KEY)
    assert delete.status_code == 403 and delete.json()["error"]["code"] == "not_our_event"
    assert (stranger.subject, stranger.start, stranger.is_cancelled, stranger.change_key) == before
    assert deps.bookings.get_booking(CONTOSO, booked["id"]).etag == planted.etag  # nothing written


def test_a_reschedule_keeps_the_teams_link_when_graph_drops_it(e2e: Stack, recruiter: Any) -> None:
    booked = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body()).json()
    graph_controls.drop_online_meetings(e2e.world, count=1, mailbox=INTERVIEWS)
    start, end = _slot(days=22, hour=22)
    missing = recruiter.request(
        "PATCH", f"/api/bookings/{booked['id']}", headers=KEY, json={"start": start.isoformat()}
    )
    assert missing.status_code == 428
    stale = recruiter.request(
        "PATCH", f"/api/bookings/{booked['id']}", headers={**KEY, "If-Match": '"stale"'}, json={"subject": "x"}
    )
    assert stale.status_code == 412
    moved = recruiter.request(
        "PATCH",
        f"/api/bookings/{booked['id']}",
        headers={**KEY, "If-Match": booked["etag"]},
        json={"start": start.isoformat(), "end": end.isoformat()},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["join_url"] == booked["join_url"]
    assert [h["action"] for h in moved.json()["history"]][-2:] == ["moved", "meeting_restored"]
    [event] = _ours(e2e, INTERVIEWS)
    assert event.start == start and event.online_meeting is not None
    assert event.online_meeting.join_url == booked["join_url"]


def test_a_change_that_keeps_the_teams_meeting_records_no_restore(e2e: Stack, recruiter: Any) -> None:
    booked = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body()).json()
    start, end = _slot(days=22, hour=22)
    moved = recruiter.request(
        "PATCH",
        f"/api/bookings/{booked['id']}",
        headers={**KEY, "If-Match": booked["etag"]},
        json={"start": start.isoformat(), "end": end.isoformat()},
    )
    assert moved.status_code == 200, moved.text
    renamed = recruiter.request(
        "PATCH",
        f"/api/bookings/{booked['id']}",
        headers={**KEY, "If-Match": moved.json()["etag"]},
        json={"subject": "Interview: Sam Candidate (panel)"},
    )
    assert renamed.status_code == 200, renamed.text
    assert [h["action"] for h in renamed.json()["history"]] == ["created", "moved", "updated"]
    assert renamed.json()["join_url"] == booked["join_url"]


def test_cancel_tells_the_attendees_and_twice_is_fine(e2e: Stack, recruiter: Any) -> None:
    booked = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body()).json()
    for _ in range(2):
        cancelled = recruiter.request(
            "DELETE", f"/api/bookings/{booked['id']}", headers=KEY, json={"message": "The role was filled."}
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    [copy] = [e for e in _events(e2e, ALEX) if e.ical_uid == booked["ical_uid"]]
    assert copy.is_cancelled
    listed = recruiter.request(
        "GET",
        "/api/bookings",
        headers=KEY,
        params={"from": _slot()[0].isoformat(), "to": _slot()[1].isoformat(), "interviewer": ALEX},
    )
    assert listed.status_code == 200 and [b["id"] for b in listed.json()["bookings"]] == [booked["id"]]


def test_a_lost_create_answer_is_retried_without_a_second_event(e2e: Stack, recruiter: Any) -> None:
    graph_controls.lose_answers(e2e.world, count=1, status=504)
    response = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body())
    assert response.status_code == 201, response.text
    assert len(_ours(e2e, INTERVIEWS)) == 1


class _FailingBookings:
    """The booking store, failing the first write that records a booked event (storage down after Graph wrote)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def update_booking(self, booking: Booking) -> Booking:
        if not self.failed and booking.status is BookingStatus.BOOKED:
            self.failed = True
            raise UpstreamUnavailable("Table Storage is unreachable.")
        return self._inner.update_booking(booking)  # type: ignore[no-any-return]


def test_storage_failing_after_graph_wrote_is_recovered_by_the_retry(e2e: Stack, recruiter: Any) -> None:
    plain = Container()
    failing = _FailingBookings(plain.bookings)
    set_container(Container(bookings=failing))  # type: ignore[arg-type]
    headers = _key()
    first = recruiter.request("POST", "/api/bookings", headers=headers, json=_body())
    assert first.status_code == 503, first.text
    assert len(_ours(e2e, INTERVIEWS)) == 1
    retry = recruiter.request("POST", "/api/bookings", headers=headers, json=_body())
    assert retry.status_code == 201, retry.text
    assert [h["action"] for h in retry.json()["history"]] == ["recovered"]
    [event] = _ours(e2e, INTERVIEWS)
    assert retry.json()["event_id"] == event.id


def test_a_recruiter_outside_the_group_is_refused_with_the_group_named(e2e: Stack, recruiter: Any) -> None:
    grady = sign_in(e2e, GRADY)
    refused = grady.request("POST", "/api/bookings", headers=_key(), json=_body())
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "no_access_to_calendar" and error["group"] == "Recruiting Team"
    assert not _ours(e2e, INTERVIEWS)
    checks = {c["id"]: c for c in grady.request("GET", "/api/tenants/me/readiness", headers=KEY).json()["checks"]}
    assert checks["interviews_write_access"]["status"] == "fail"
    assert "Recruiting Team" in checks["interviews_write_access"]["action"]


def test_another_tenant_cannot_read_change_or_cancel_a_booking(e2e: Stack, recruiter: Any) -> None:
    booked = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body()).json()
    consent(e2e, FABRIKAM_ADMIN, "fabrikam.example")
    fabrikam = sign_in(e2e, FABRIKAM_RECRUITER)
    path = f"/api/bookings/{booked['id']}"
    assert fabrikam.request("GET", path, headers=KEY).status_code == 404
    assert (
        fabrikam.request("PATCH", path, headers={**KEY, "If-Match": booked["etag"]}, json={"subject": "x"}).status_code
        == 404
    )
    assert fabrikam.request("DELETE", path, headers=KEY).status_code == 404
    assert recruiter.request("GET", path, headers=KEY).json()["status"] == "booked"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"}, "start"),
        ({"end": "2020-01-01T10:00:00Z"}, "end"),
        ({"end": (_slot()[0] + timedelta(hours=9)).isoformat()}, "end"),
        ({"interviewers": ["ghost.person@contoso.example"]}, "interviewers[0]"),
        ({"interviewers": [], "candidate": None}, "interviewers"),
        ({"body": "x" * (64 * 1024 + 10)}, "body"),
        ({"candidate": {"email": "sam@@example.org"}}, "candidate.email"),
        ({"start": "9999-12-31T22:00:00Z", "end": "9999-12-31T23:00:00Z"}, "start"),
        ({"start": "9999-12-31T20:00:00-05:00", "end": "9999-12-31T21:00:00-05:00"}, "start"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    e2e: Stack, recruiter: Any, overrides: dict[str, Any], field: str
) -> None:
    response = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body(**overrides))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field
    assert not _ours(e2e, INTERVIEWS)
    assert not get_container().bookings.list_bookings(CONTOSO)  # refused before anything was stored


# ---- retries answer the same ---------------------------------------------------------------------------
def test_racing_requests_retried_concurrently_each_get_their_first_answer(e2e: Stack, recruiter: Any) -> None:
    # Two different interviews race for one slot, and each client retries its own key at once, as
    # clients do after a timeout: every answer for one key is the same as that key's first answer.
    tries = 5
    bodies = {
        "a": (_key(), _body(subject="Candidate A")),
        "b": (_key(), _body(subject="Candidate B", candidate={"email": "b@example.org"})),
    }
    jobs = [name for name in bodies for _ in range(tries)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(
            pool.map(
                lambda n: (n, recruiter.request("POST", "/api/bookings", headers=bodies[n][0], json=bodies[n][1])),
                jobs,
            )
        )
    by_key: dict[str, list[Any]] = {name: [a for n, a in answers if n == name] for name in bodies}
    outcomes = {}
    for name, replies in by_key.items():
        statuses = {r.status_code for r in replies}
        assert statuses <= {200, 201} or statuses == {409}, [(r.status_code, r.text) for r in replies]
        if statuses == {409}:
            assert {r.json()["error"]["code"] for r in replies} == {"slot_unavailable"}
            assert {tuple(r.json()["error"]["busy"]) for r in replies} == {(ALEX,)}
            outcomes[name] = "refused"
        else:
            assert sorted(r.status_code for r in replies).count(201) == 1
            assert len({r.json()["id"] for r in replies}) == 1
            outcomes[name] = "booked"
    assert sorted(outcomes.values()) == ["booked", "refused"]
    loser = next(n for n, o in outcomes.items() if o == "refused")
    later = recruiter.request("POST", "/api/bookings", headers=bodies[loser][0], json=bodies[loser][1])
    assert later.status_code == 409 and later.json() == by_key[loser][0].json()
    reused = recruiter.request("POST", "/api/bookings", headers=bodies[loser][0], json=_body(subject="Other"))
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(_ours(e2e, INTERVIEWS)) == 1


def test_a_refused_key_is_free_again_once_its_refusal_has_lived_its_life(e2e: Stack, recruiter: Any) -> None:
    from shared.booking.create import REFUSAL_LIFETIME
    from shared.booking.records import booking_id_for

    taken = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body(subject="First"))
    assert taken.status_code == 201, taken.text
    headers = _key()
    refused = recruiter.request("POST", "/api/bookings", headers=headers, json=_body(subject="Second"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "slot_unavailable"
    deps = get_container()
    booking_id = booking_id_for(CONTOSO, headers["Idempotency-Key"])
    row = deps.bookings.get_booking(CONTOSO, booking_id)
    assert row.status is BookingStatus.FAILED and row.claimed_until is not None
    # The refusal's lifetime has passed: the same key may book something else now.
    lapsed = row.claimed_until - REFUSAL_LIFETIME - timedelta(seconds=1)
    deps.bookings.update_booking(replace(row, claimed_until=lapsed))
    start, end = _slot(hour=15)
    other_slot = _body(subject="Second", start=start.isoformat(), end=end.isoformat())
    again = recruiter.request("POST", "/api/bookings", headers=headers, json=other_slot)
    assert again.status_code == 201, again.text


def test_every_answer_about_a_booking_shows_its_times_in_the_request_s_offset(e2e: Stack, recruiter: Any) -> None:
    start, end = _slot()
    eastern = timezone(timedelta(hours=-5))
    body = _body(start=start.astimezone(eastern).isoformat(), end=end.astimezone(eastern).isoformat())
    headers = _key()
    first = recruiter.request("POST", "/api/bookings", headers=headers, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["start"] == start.astimezone(eastern).isoformat()
    replay = recruiter.request("POST", "/api/bookings", headers=headers, json=body)
    assert replay.status_code == 200
    assert replay.json() == first.json()
    read = recruiter.request("GET", f"/api/bookings/{first.json()['id']}", headers=KEY)
    assert read.json() == first.json()
    listed = recruiter.request(
        "GET", "/api/bookings", headers=KEY, params={"from": start.isoformat(), "to": end.isoformat()}
    ).json()["bookings"]
    assert [b["start"] for b in listed] == [start.astimezone(eastern).isoformat()]
    moved_start = start + timedelta(hours=-1)
    moved = recruiter.request(
        "PATCH",
        f"/api/bookings/{first.json()['id']}",
        headers={**KEY, "If-Match": first.json()["etag"]},
        json={"start": moved_start.isoformat(), "end": (moved_start + timedelta(hours=1)).isoformat()},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == moved_start.astimezone(eastern).isoformat()


def test_error_answers_name_nothing_internal(e2e: Stack, recruiter: Any) -> None:
    from shared.booking.records import booking_id_for

    missing = recruiter.request("GET", f"/api/bookings/{booking_id_for(CONTOSO, 'key-never-used')}", headers=KEY)
    assert missing.status_code == 404, missing.text
    text = missing.text.lower()
    for internal in (CONTOSO.lower(), "tenant", "table", "storage", "partition", "row"):
        assert internal not in text, missing.text


def test_a_booking_still_being_made_reads_as_pending(e2e: Stack, recruiter: Any) -> None:
    from shared.booking.records import booking_id_for

    deps = get_container()
    start, end = _slot(hour=16)
    key = f"key-{uuid.uuid4()}"
    booking_id = booking_id_for(CONTOSO, key)
    # As a request leaves it when it dies after storing its pending booking.
    deps.bookings.create_booking(
        Booking(tenant_id=CONTOSO, booking_id=booking_id, mailbox=INTERVIEWS, start=start, end=end, subject="Half-way")
    )
    read = recruiter.request("GET", f"/api/bookings/{booking_id}", headers=KEY)
    assert read.status_code == 200 and read.json()["status"] == "pending"
    cancel = recruiter.request("DELETE", f"/api/bookings/{booking_id}", headers=KEY)
    assert cancel.status_code == 409


# ---- nothing left half-done ------------------------------------------------------------------------------
def _lapsed(deps: Any, booking_id: str) -> Booking:
    """Move the pending booking's last sign of life back past what the recovery timer waits for."""
    from shared.booking.recovery import SETTLE_AFTER

    row = deps.bookings.get_booking(CONTOSO, booking_id)
    long_ago = datetime.now(UTC) - SETTLE_AFTER - timedelta(minutes=1)
    return deps.bookings.update_booking(replace(row, claimed_until=None, updated_at=long_ago))  # type: ignore[no-any-return]


def test_a_booking_whose_request_died_after_graph_wrote_is_finished_by_the_timer(e2e: Stack, recruiter: Any) -> None:
    from shared.booking.records import booking_id_for
    from shared.booking.recovery import recover_pending_bookings

    plain = Container()
    set_container(Container(bookings=_FailingBookings(plain.bookings)))  # type: ignore[arg-type]
    headers = _key()
    first = recruiter.request("POST", "/api/bookings", headers=headers, json=_body())
    assert first.status_code == 503, first.text
    set_container(None)
    deps = get_container()
    booking_id = booking_id_for(CONTOSO, headers["Idempotency-Key"])
    pending = recruiter.request("GET", f"/api/bookings/{booking_id}", headers=KEY)
    assert pending.status_code == 200 and pending.json()["status"] == "pending"
    # The client never comes back with the key; the timer finds the event by our property.
    assert recover_pending_bookings(deps).recovered == 0  # too soon: its request may still be at work
    _lapsed(deps, booking_id)
    report = recover_pending_bookings(deps)
    assert (report.recovered, report.forgotten, report.left) == (1, 0, 0)
    [event] = _ours(e2e, INTERVIEWS)
    read = recruiter.request("GET", f"/api/bookings/{booking_id}", headers=KEY).json()
    assert read["status"] == "booked" and read["event_id"] == event.id
    assert [h["action"] for h in read["history"]] == ["recovered"]
    # The client's retry with the key, however late, gets that booking.
    retry = recruiter.request("POST", "/api/bookings", headers=headers, json=_body())
    assert retry.status_code == 200 and retry.json()["id"] == booking_id
    assert len(_ours(e2e, INTERVIEWS)) == 1


def test_a_pending_booking_graph_never_saw_is_forgotten_with_its_claims(e2e: Stack, recruiter: Any) -> None:
    from shared.booking.claims import grid_cells
    from shared.booking.records import booking_id_for
    from shared.booking.recovery import recover_pending_bookings

    deps = get_container()
    start, end = _slot()
    booking_id = booking_id_for(CONTOSO, f"key-{uuid.uuid4()}")
    # A request that stored its pending booking and claimed the slot, then died before writing to Graph.
    deps.bookings.create_booking(
        Booking(
            tenant_id=CONTOSO,
            booking_id=booking_id,
            mailbox=INTERVIEWS,
            start=start,
            end=end,
            subject="Never written",
            delegated=True,
            interviewers=(ALEX,),
            attendees=(ALEX,),
            created_by=next(u.user_id for u in deps.users.list_users(CONTOSO) if u.username == RECRUITER),
        )
    )
    deps.bookings.claim_slots(CONTOSO, ALEX, booking_id, grid_cells(start, end))
    _lapsed(deps, booking_id)
    report = recover_pending_bookings(deps)
    assert (report.recovered, report.forgotten) == (0, 1), report
    assert recruiter.request("GET", f"/api/bookings/{booking_id}", headers=KEY).status_code == 404
    # Its claims are gone: another interview can have the slot.
    body = _body(start=start.isoformat(), end=end.isoformat())
    assert recruiter.request("POST", "/api/bookings", headers=_key(), json=body).status_code == 201


def test_the_booking_list_is_in_start_order_and_filters_by_interviewer_in_storage(e2e: Stack, recruiter: Any) -> None:
    made = {}
    for hour, people in ((21, [ALEX]), (15, [ALEX, LYNNE]), (16, [LYNNE])):
        start, end = _slot(hour=hour)
        body = _body(start=start.isoformat(), end=end.isoformat(), interviewers=people, subject=f"At {hour}")
        answer = recruiter.request("POST", "/api/bookings", headers=_key(), json=body)
        assert answer.status_code == 201, answer.text
        made[hour] = answer.json()["id"]
    day_start = _slot(hour=0)[0]
    window = {"from": day_start.isoformat(), "to": (day_start + timedelta(days=1)).isoformat()}
    listed = recruiter.request("GET", "/api/bookings", headers=KEY, params=window).json()
    assert [b["id"] for b in listed["bookings"]] == [made[15], made[16], made[21]]
    assert listed["continuation"] is None
    lynne = recruiter.request("GET", "/api/bookings", headers=KEY, params={**window, "interviewer": LYNNE}).json()
    assert [b["id"] for b in lynne["bookings"]] == [made[15], made[16]]


def test_a_move_to_a_time_no_calendar_holds_is_refused_naming_the_field(e2e: Stack, recruiter: Any) -> None:
    booked = recruiter.request("POST", "/api/bookings", headers=_key(), json=_body()).json()
    for change, field in [
        ({"start": "9999-12-31T22:00:00Z", "end": "9999-12-31T23:00:00Z"}, "start"),
        ({"end": "9999-12-31T23:30:00-05:00"}, "end"),
    ]:
        response = recruiter.request(
            "PATCH", f"/api/bookings/{booked['id']}", headers={**KEY, "If-Match": booked["etag"]}, json=change
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field
    after = recruiter.request("GET", f"/api/bookings/{booked['id']}", headers=KEY).json()
    assert (after["etag"], after["start"]) == (booked["etag"], booked["start"])
    [event] = _ours(e2e, INTERVIEWS)
    assert event.start == datetime.fromisoformat(booked["start"])
