"""The write rule: the app's permission only for an interviewer's own user mailbox in the tenant, and the
ways around it tried one by one; the directory facts it reads, remembered per worker, failing closed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.booking.change import cancel_booking, update_booking
from shared.booking.create import create_booking
from shared.booking.request import BookingChange, parse_booking_request
from shared.booking.write_rule import Writer, check_interviewers, decide_writer, mailbox_purposes, writer_for
from shared.errors import GraphUnavailable, InvalidRequest, UpstreamUnavailable
from shared.identity.guard import RequestContext, require_calendar_access
from shared.models import ConsentStatus, MailboxPurpose, Schedule, Tenant
from tests.kit import TENANT_A, FakeDeps, consented, sign_in

ALEX = "alex@contoso.example"
LYNNE = "lynne@contoso.example"
INTERVIEWS = "interviews@contoso.example"
SYNC = "sync@contoso.example"
ROOM = "room.4a@contoso.example"
TENANT = Tenant(
    tenant_id=TENANT_A, consent_status=ConsentStatus.CONSENTED, interviews_mailbox=INTERVIEWS, sync_mailbox=SYNC
)


def test_the_app_writes_an_interviewer_s_own_user_mailbox_of_the_tenant() -> None:
    assert writer_for(ALEX, interviewers=[ALEX, LYNNE], purpose=MailboxPurpose.USER, tenant=TENANT) is Writer.APP
    # The same person however the address is spelt.
    assert writer_for(" Alex@Contoso.Example ", interviewers=[ALEX], purpose=MailboxPurpose.USER, tenant=TENANT) is (
        Writer.APP
    )


@pytest.mark.parametrize(
    ("mailbox", "interviewers", "purpose", "why"),
    [
        (ALEX, [LYNNE], MailboxPurpose.USER, "not one of this interview's interviewers"),
        (ALEX, [], MailboxPurpose.USER, "an interview without interviewers"),
        ("", [""], MailboxPurpose.USER, "no mailbox at all"),
        (INTERVIEWS, [INTERVIEWS], MailboxPurpose.USER, "the Interviews mailbox, listed as an interviewer"),
        (SYNC, [SYNC], MailboxPurpose.USER, "the Sync mailbox, listed as an interviewer"),
        (INTERVIEWS.upper(), [INTERVIEWS], MailboxPurpose.USER, "the Interviews mailbox in capitals"),
        ("other.shared@contoso.example", ["other.shared@contoso.example"], MailboxPurpose.SHARED, "shared"),
        (ROOM, [ROOM], MailboxPurpose.ROOM, "a room"),
        ("projector@contoso.example", ["projector@contoso.example"], MailboxPurpose.EQUIPMENT, "equipment"),
        (ALEX, [ALEX], MailboxPurpose.LINKED, "a linked mailbox: its account lives in another forest"),
        (ALEX, [ALEX], MailboxPurpose.OTHERS, "a purpose Graph does not call a user's"),
        ("sara@fabrikam.example", ["sara@fabrikam.example"], MailboxPurpose.NOT_IN_TENANT, "another tenant"),
        (ALEX, [ALEX], MailboxPurpose.UNREACHABLE, "a mailbox Graph will not open for the app"),
        (ALEX, [ALEX], MailboxPurpose.UNKNOWN, "Graph could not say"),
        (ALEX, [ALEX], None, "never asked"),
    ],
)
def test_every_other_calendar_is_written_with_the_recruiter_s_token(
    mailbox: str, interviewers: list[str], purpose: MailboxPurpose | None, why: str
) -> None:
    assert writer_for(mailbox, interviewers=interviewers, purpose=purpose, tenant=TENANT) is Writer.RECRUITER, why


def _deps() -> tuple[FakeDeps, RequestContext]:
    deps = FakeDeps()
    tenant = consented(deps)
    deps.tenants.update_tenant(replace(tenant, interviews_mailbox=INTERVIEWS, sync_mailbox=SYNC))
    deps.graph.schedules[TENANT_A] = {
        ALEX: Schedule(email=ALEX),
        LYNNE: Schedule(email=LYNNE),
        INTERVIEWS: Schedule(email=INTERVIEWS),
        ROOM: Schedule(email=ROOM),
    }
    deps.graph.purposes[TENANT_A] = {INTERVIEWS: MailboxPurpose.SHARED, ROOM: MailboxPurpose.ROOM}
    return deps, require_calendar_access(deps, sign_in(deps))


def test_purposes_are_remembered_per_worker_and_asked_in_one_request_for_everyone() -> None:
    deps, _ = _deps()
    first = mailbox_purposes(deps, TENANT_A, [ALEX, LYNNE, INTERVIEWS, ALEX.upper()])
    assert first == {ALEX: MailboxPurpose.USER, LYNNE: MailboxPurpose.USER, INTERVIEWS: MailboxPurpose.SHARED}
    assert deps.graph.purpose_calls == [(ALEX, LYNNE, INTERVIEWS)]
    assert mailbox_purposes(deps, TENANT_A, [LYNNE, ALEX]) == {ALEX: MailboxPurpose.USER, LYNNE: MailboxPurpose.USER}
    assert len(deps.graph.purpose_calls) == 1  # answered from this worker's memory
    deps.clock.advance(seconds=31)
    mailbox_purposes(deps, TENANT_A, [ALEX])
    assert deps.graph.purpose_calls[-1] == (ALEX,)  # never kept past the worker cache's limit


def test_a_graph_failure_is_unknown_and_never_remembered() -> None:
    deps, _ = _deps()
    deps.graph.purpose_failure = UpstreamUnavailable("Microsoft Graph did not answer.")
    assert mailbox_purposes(deps, TENANT_A, [ALEX]) == {ALEX: MailboxPurpose.UNKNOWN}
    assert mailbox_purposes(deps, TENANT_A, [ALEX]) == {ALEX: MailboxPurpose.USER}
    assert len(deps.graph.purpose_calls) == 2


def test_a_shared_room_or_equipment_mailbox_is_never_an_interviewer() -> None:
    fields = {ALEX: "interviewers[0]", ROOM: "optional_interviewers[0]"}
    with pytest.raises(InvalidRequest) as refused:
        check_interviewers({ALEX: MailboxPurpose.USER, ROOM: MailboxPurpose.ROOM}, fields)
    assert refused.value.details["field"] == "optional_interviewers[0]"
    with pytest.raises(GraphUnavailable):  # nobody is let in unseen
        check_interviewers({ALEX: MailboxPurpose.UNKNOWN, ROOM: MailboxPurpose.USER}, fields)


def test_unsure_about_the_calendar_s_own_mailbox_is_503_not_a_guess() -> None:
    deps, _ = _deps()
    deps.graph.purpose_failure = UpstreamUnavailable("Microsoft Graph did not answer.")
    with pytest.raises(GraphUnavailable) as unsure:
        decide_writer(deps, TENANT_A, TENANT, ALEX, {ALEX: "interviewers[0]"}, check=False)
    assert unsure.value.details["retry_after"] > 0
    # Unsure about someone whose calendar the app could never write anyway changes nothing.
    deps.graph.purpose_failure = UpstreamUnavailable("Microsoft Graph did not answer.")
    assert decide_writer(deps, TENANT_A, TENANT, INTERVIEWS, {LYNNE: "interviewers[0]"}, check=False) is (
        Writer.RECRUITER
    )


def _request(deps: FakeDeps, **overrides: object) -> object:
    from datetime import timedelta

    start = deps.clock.now() + timedelta(days=14)
    body = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "interviewers": [ALEX]}
    body.update(overrides)
    return parse_booking_request(body, now=deps.clock.now())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"calendar": INTERVIEWS, "interviewers": [ALEX, INTERVIEWS]}, "interviewers[1]"),
        ({"calendar": "interviews", "optional_interviewers": [INTERVIEWS]}, "optional_interviewers[0]"),
        ({"calendar": ROOM, "interviewers": [ROOM]}, "interviewers[0]"),
    ],
)
def test_a_booking_naming_a_mailbox_that_is_not_a_person_writes_nothing(
    overrides: dict[str, object], field: str
) -> None:
    deps, ctx = _deps()
    with pytest.raises(InvalidRequest) as refused:
        create_booking(deps, ctx, _request(deps, **overrides), "key-00000001")  # type: ignore[arg-type]
    assert refused.value.details["field"] == field
    assert not deps.events.events and not deps.bookings.items


def test_the_booking_records_whose_permission_wrote_it() -> None:
    deps, ctx = _deps()
    own = create_booking(deps, ctx, _request(deps, calendar=ALEX), "key-00000001").booking  # type: ignore[arg-type]
    assert not own.delegated and deps.events.permissions == [("create", ALEX, "app")]
    deps.graph.purposes[TENANT_A][LYNNE] = MailboxPurpose.UNREACHABLE  # an access policy keeps the app out
    other = create_booking(
        deps,
        ctx,
        _request(deps, calendar=LYNNE, interviewers=[LYNNE]),  # type: ignore[arg-type]
        "key-00000002",
    ).booking
    assert other.delegated and deps.events.permissions[-1] == ("create", LYNNE, "recruiter")


def test_a_booking_stored_as_app_written_where_the_rule_now_forbids_is_changed_and_cancelled_as_the_recruiter() -> None:
    deps, ctx = _deps()
    booked = create_booking(deps, ctx, _request(deps, calendar=ALEX), "key-00000001").booking  # type: ignore[arg-type]
    # What a booking made before the rule looks like: the Interviews mailbox, app-written.
    event = deps.events.events[booked.event_id or ""]
    deps.events.events[event.event_id] = replace(event, mailbox=INTERVIEWS, organizer=INTERVIEWS)
    legacy = deps.bookings.update_booking(replace(booked, mailbox=INTERVIEWS, calendar=INTERVIEWS, delegated=False))
    deps.events.permissions.clear()
    changed = update_booking(deps, ctx, legacy.booking_id, legacy.etag, BookingChange(subject="Moved on"))
    assert changed.delegated and {p[2] for p in deps.events.permissions} == {"recruiter"}
    deps.events.permissions.clear()
    cancelled = cancel_booking(deps, ctx, changed.booking_id, "filled")
    assert cancelled.delegated and {p[2] for p in deps.events.permissions} == {"recruiter"}


def test_a_patch_that_takes_the_organizer_out_of_the_interview_no_longer_writes_with_the_app() -> None:
    deps, ctx = _deps()
    booked = create_booking(
        deps,
        ctx,
        _request(deps, calendar=ALEX, interviewers=[ALEX, LYNNE]),  # type: ignore[arg-type]
        "key-00000001",
    ).booking
    deps.events.permissions.clear()
    changed = update_booking(
        deps, ctx, booked.booking_id, booked.etag, BookingChange(interviewers=(LYNNE,), check_availability=False)
    )
    assert changed.delegated and {p[2] for p in deps.events.permissions} == {"recruiter"}
