"""GraphClient's event calls against httpx.MockTransport: the JSON sent, what is read back, and retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.adapters.graph import GraphClient
from shared.adapters.graph_events import BOOKING_PROPERTY
from shared.config import Settings
from shared.errors import GraphRequestFailed, NotFound
from shared.models import AccessToken, AttendeeResponse, EventDraft, ObservedAttendee

TOKEN = AccessToken(token="app-token", tenant_id="tenant-a", roles=("Calendars.ReadWrite",))
START = datetime(2026, 12, 8, 15, tzinfo=UTC)
MAILBOX = "interviews@contoso.example"
EVENT = {
    "id": "AAMkEvent1",
    "iCalUId": "040000008200E00074C5B7101A82E008ABC",
    "subject": "Interview: Sam",
    "start": {"dateTime": "2026-12-08T15:00:00.0000000", "timeZone": "UTC"},
    "end": {"dateTime": "2026-12-08T16:00:00.0000000", "timeZone": "UTC"},
    "isCancelled": False,
    "isOnlineMeeting": True,
    "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/abc", "conferenceId": "123"},
    "location": {"displayName": "Room 1"},
    "organizer": {"emailAddress": {"name": "Interviews", "address": "Interviews@contoso.example"}},
    "attendees": [
        {
            "type": "required",
            "status": {"response": "tentativelyAccepted", "time": "2026-12-01T10:00:00Z"},
            "emailAddress": {"address": "Alex@contoso.example"},
            "proposedNewTime": {
                "start": {"dateTime": "2026-12-08T17:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-08T18:00:00.0000000", "timeZone": "UTC"},
            },
        },
        {
            "type": "required",
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"address": "sam@example.org"},
        },
    ],
    "lastModifiedDateTime": "2026-12-01T10:00:00Z",
    "changeKey": "ck1",
    "singleValueExtendedProperties": [{"id": BOOKING_PROPERTY, "value": "bookingid"}],
}


def client(handler: Callable[[httpx.Request], httpx.Response], waits: list[float] | None = None) -> GraphClient:
    return GraphClient(
        Settings(graph_base_url="https://graph.example/v1.0"),
        transport=httpx.MockTransport(handler),
        sleep=(waits.append if waits is not None else lambda _s: None),
        jitter=lambda: 0.0,
    )


def draft(**changes: Any) -> EventDraft:
    values: dict[str, Any] = {
        "subject": "Interview: Sam",
        "body": "Agenda",
        "start": START,
        "end": START + timedelta(hours=1),
        "attendees": (ObservedAttendee("alex@contoso.example"), ObservedAttendee("sam@example.org")),
        "names": (("sam@example.org", "Sam Candidate"),),
        "online_meeting": True,
        "booking_id": "bookingid",
        "transaction_id": "key-00000001",
    }
    values.update(changes)
    return EventDraft(**values)


def test_create_sends_the_transaction_id_our_property_and_a_teams_meeting() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={k: v for k, v in EVENT.items() if k != "singleValueExtendedProperties"})

    event = client(handler).create_event(TOKEN, MAILBOX, draft())
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1.0/users/interviews@contoso.example/events"
    assert body["transactionId"] == "key-00000001"
    assert body["singleValueExtendedProperties"] == [{"id": BOOKING_PROPERTY, "value": "bookingid"}]
    assert body["isOnlineMeeting"] is True and body["onlineMeetingProvider"] == "teamsForBusiness"
    assert body["start"] == {"dateTime": "2026-12-08T15:00:00", "timeZone": "UTC"}
    assert body["attendees"][1]["emailAddress"] == {"address": "sam@example.org", "name": "Sam Candidate"}
    assert event.event_id == "AAMkEvent1" and event.join_url and event.ical_uid
    assert event.booking_id is None  # a create's answer holds no extended properties


def test_a_create_into_another_calendar_posts_to_that_calendar() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(201, json=EVENT)

    client(handler).create_event(TOKEN, "alex@contoso.example", draft(), calendar_id="AAMkCal2")
    assert seen == ["/v1.0/users/alex@contoso.example/calendars/AAMkCal2/events"]


def test_a_create_with_a_transaction_id_is_retried_after_a_fault_honouring_retry_after() -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(503), httpx.Response(201, json=EVENT)]
    )
    waits: list[float] = []
    event = client(lambda _r: next(answers), waits).create_event(TOKEN, MAILBOX, draft())
    assert event.event_id == "AAMkEvent1" and waits[0] == 3.0 and len(waits) == 2


def test_a_create_without_a_transaction_id_is_not_retried() -> None:
    calls: list[int] = []

    def handler(_request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503)

    with pytest.raises(GraphRequestFailed):
        client(handler).create_event(TOKEN, MAILBOX, draft(transaction_id=None))
    assert len(calls) == 1


def test_get_event_selects_only_what_it_needs_and_reads_our_property_and_responses() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=EVENT)

    event = client(handler).get_event(TOKEN, MAILBOX, "AAMkEvent1")
    params = seen[0].url.params
    assert "onlineMeeting" in params["$select"] and "body" not in params["$select"].split(",")
    assert BOOKING_PROPERTY in params["$expand"]
    assert seen[0].headers["Prefer"] == 'outlook.timezone="UTC"'
    assert event.booking_id == "bookingid" and event.organizer == "interviews@contoso.example"
    alex, sam = event.attendees
    assert alex.email == "alex@contoso.example" and alex.response is AttendeeResponse.TENTATIVE
    assert alex.responded_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert alex.proposed_start == datetime(2026, 12, 8, 17, tzinfo=UTC)
    assert sam.response is AttendeeResponse.NONE and sam.responded_at is None


def test_a_gone_event_is_not_found() -> None:
    gone = client(lambda _r: httpx.Response(404, json={"error": {"code": "ErrorItemNotFound", "message": "x"}}))
    with pytest.raises(NotFound):
        gone.get_event(TOKEN, MAILBOX, "AAMkEvent1")


def test_find_by_booking_filters_on_our_property() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": [EVENT]})

    event = client(handler).find_event_by_booking(TOKEN, MAILBOX, "bookingid")
    assert event is not None and event.event_id == "AAMkEvent1"
    assert seen[0].url.params["$filter"] == (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{BOOKING_PROPERTY}' and ep/value eq 'bookingid')"
    )
    none = client(lambda _r: httpx.Response(200, json={"value": []}))
    assert none.find_event_by_booking(TOKEN, MAILBOX, "bookingid") is None


def test_cancel_sends_the_comment_and_delete_deletes() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202 if request.method == "POST" else 204)

    graph = client(handler)
    graph.cancel_event(TOKEN, MAILBOX, "AAMkEvent1", "Position filled")
    graph.delete_event(TOKEN, MAILBOX, "AAMkEvent1")
    assert seen[0].url.path.endswith("/events/AAMkEvent1/cancel") and json.loads(seen[0].content) == {
        "Comment": "Position filled"
    }
    assert seen[1].method == "DELETE"


def test_a_patch_sends_only_the_fields_set() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=EVENT)

    client(handler).update_event(TOKEN, MAILBOX, "AAMkEvent1", EventDraft(online_meeting=True))
    assert json.loads(seen[0].content) == {"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}
