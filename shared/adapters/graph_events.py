"""Graph event calls for booking and sync, as a mixin of ``GraphClient`` (which supplies ``request``).

Every event the service creates carries a single-value extended property in the service's own
namespace holding the booking id (v1.0 singlevaluelegacyextendedproperty-post: id format
``"String {GUID} Name <name>"``). The create answer does not include it; reads ask for it with
``$expand=singleValueExtendedProperties($filter=id eq '...')``, and an event is found by it with
``$filter=singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')``. Reads select only
the fields booking and sync need, with start and end in UTC (``Prefer: outlook.timezone="UTC"``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from shared.adapters.graph_requests import GraphRequests, unreadable_answer
from shared.models import AccessToken, AttendeeResponse, EventDraft, ObservedAttendee, ObservedEvent

# Our own namespace: a GUID that belongs to this service alone, never reused for anything else.
BOOKING_NAMESPACE = "{6b1f3c2e-8d4a-4f7b-9c55-2e7a1d0b9f43}"
BOOKING_PROPERTY = f"String {BOOKING_NAMESPACE} Name InterviewBookingId"
EVENT_SELECT = (
    "id,iCalUId,subject,start,end,isCancelled,isOnlineMeeting,onlineMeeting,location,organizer,"
    "attendees,lastModifiedDateTime,changeKey"
)
EXPAND = f"singleValueExtendedProperties($filter=id eq '{BOOKING_PROPERTY}')"
UTC_PREFER = {"Prefer": 'outlook.timezone="UTC"'}
NEVER = "0001-01-01"  # Graph's "no time" in responseStatus.time


def _mailbox_path(mailbox: str, calendar_id: str | None = None) -> str:
    base = f"users/{quote(mailbox, safe='@')}"
    return base if calendar_id is None else f"{base}/calendars/{quote(calendar_id, safe='')}"


def _event_path(mailbox: str, event_id: str) -> str:
    return f"{_mailbox_path(mailbox)}/events/{quote(event_id, safe='')}"


def _graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": "UTC"}


def draft_body(draft: EventDraft) -> dict[str, Any]:
    """The Graph JSON for the fields the draft sets."""
    body: dict[str, Any] = {}
    if draft.subject is not None:
        body["subject"] = draft.subject
    if draft.body is not None:
        body["body"] = {"contentType": "text", "content": draft.body}
    if draft.start is not None:
        body["start"] = _graph_time(draft.start)
    if draft.end is not None:
        body["end"] = _graph_time(draft.end)
    if draft.attendees is not None:
        names = dict(draft.names)
        body["attendees"] = [
            {"emailAddress": {"address": a.email, "name": names.get(a.email, a.email)}, "type": a.type}
            for a in draft.attendees
        ]
    if draft.location is not None:
        body["location"] = {"displayName": draft.location}
    if draft.online_meeting is not None:
        body["isOnlineMeeting"] = draft.online_meeting
        if draft.online_meeting:
            body["onlineMeetingProvider"] = "teamsForBusiness"
    if draft.transaction_id is not None:
        body["transactionId"] = draft.transaction_id
    if draft.booking_id is not None:
        body["singleValueExtendedProperties"] = [{"id": BOOKING_PROPERTY, "value": draft.booking_id}]
    return body


def _instant(value: Any) -> datetime:
    if not isinstance(value, dict):
        raise ValueError("a dateTimeTimeZone is not an object")
    moment = datetime.fromisoformat(str(value["dateTime"]).rstrip("Z"))
    zone = str(value.get("timeZone") or "UTC")
    if moment.tzinfo is None:
        if zone.upper() not in ("UTC", "ETC/UTC"):
            from shared.timezones import resolve_time_zone

            return moment.replace(tzinfo=resolve_time_zone(zone)).astimezone(UTC)
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _stamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith(NEVER):
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _address(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    email = raw.get("emailAddress")
    address = email.get("address") if isinstance(email, dict) else None
    return str(address).lower() if isinstance(address, str) and address else None


def _attendee(raw: dict[str, Any]) -> ObservedAttendee | None:
    address = _address(raw)
    if address is None:
        return None
    status_raw = raw.get("status")
    status: dict[str, Any] = status_raw if isinstance(status_raw, dict) else {}
    try:
        response = AttendeeResponse(str(status.get("response") or "none"))
    except ValueError:
        response = AttendeeResponse.NONE
    proposed = raw.get("proposedNewTime")
    start = end = None
    if isinstance(proposed, dict):
        start, end = _instant(proposed.get("start")), _instant(proposed.get("end"))
    return ObservedAttendee(
        email=address,
        type=str(raw.get("type") or "required"),
        response=response,
        responded_at=_stamp(status.get("time")),
        proposed_start=start,
        proposed_end=end,
    )


def parse_event(mailbox: str, raw: dict[str, Any]) -> ObservedEvent:
    """An event's JSON as an ObservedEvent; raises GraphRequestFailed when it cannot be read."""
    try:
        booking_id = None
        for prop in raw.get("singleValueExtendedProperties") or []:
            if isinstance(prop, dict) and str(prop.get("id", "")).lower() == BOOKING_PROPERTY.lower():
                booking_id = str(prop.get("value") or "") or None
        meeting = raw.get("onlineMeeting")
        join_url = meeting.get("joinUrl") if isinstance(meeting, dict) else None
        location = raw.get("location")
        attendees = tuple(
            a for a in (_attendee(item) for item in raw.get("attendees") or [] if isinstance(item, dict)) if a
        )
        return ObservedEvent(
            event_id=str(raw["id"]),
            mailbox=mailbox.lower(),
            start=_instant(raw.get("start")),
            end=_instant(raw.get("end")),
            subject=str(raw.get("subject") or ""),
            booking_id=booking_id,
            ical_uid=raw.get("iCalUId") if isinstance(raw.get("iCalUId"), str) else None,
            is_cancelled=bool(raw.get("isCancelled")),
            is_online_meeting=bool(raw.get("isOnlineMeeting")),
            join_url=str(join_url) if join_url else None,
            location=(str(location.get("displayName") or "") or None) if isinstance(location, dict) else None,
            organizer=_address(raw.get("organizer")),
            attendees=attendees,
            last_modified=_stamp(raw.get("lastModifiedDateTime")),
            change_key=raw.get("changeKey") if isinstance(raw.get("changeKey"), str) else None,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise unreadable_answer("an event", err) from err


class GraphEventsMixin(GraphRequests):
    """``EventGateway`` over ``GraphClient.request``."""

    def create_event(
        self, token: AccessToken, mailbox: str, draft: EventDraft, *, calendar_id: str | None = None
    ) -> ObservedEvent:
        # A POST that creates retries only with a transactionId (GraphClient.may_retry decides).
        raw = self.request(
            "POST",
            f"{_mailbox_path(mailbox, calendar_id)}/events",
            token,
            json=draft_body(draft),
            headers=UTC_PREFER,
        )
        return parse_event(mailbox, raw)

    def get_event(self, token: AccessToken, mailbox: str, event_id: str) -> ObservedEvent:
        raw = self.request(
            "GET",
            _event_path(mailbox, event_id),
            token,
            params={"$select": EVENT_SELECT, "$expand": EXPAND},
            headers=UTC_PREFER,
        )
        return parse_event(mailbox, raw)

    def find_event_by_booking(
        self, token: AccessToken, mailbox: str, booking_id: str, *, calendar_id: str | None = None
    ) -> ObservedEvent | None:
        value = booking_id.replace("'", "''")
        raw = self.request(
            "GET",
            f"{_mailbox_path(mailbox, calendar_id)}/events",
            token,
            params={
                "$filter": (
                    f"singleValueExtendedProperties/Any(ep: ep/id eq '{BOOKING_PROPERTY}' and ep/value eq '{value}')"
                ),
                "$select": EVENT_SELECT,
                "$expand": EXPAND,
                "$top": "1",
            },
            headers=UTC_PREFER,
        )
        items = [item for item in raw.get("value") or [] if isinstance(item, dict)]
        return parse_event(mailbox, items[0]) if items else None

    def update_event(self, token: AccessToken, mailbox: str, event_id: str, draft: EventDraft) -> None:
        self.request("PATCH", _event_path(mailbox, event_id), token, json=draft_body(draft))

    def cancel_event(self, token: AccessToken, mailbox: str, event_id: str, comment: str) -> None:
        # Cancelling twice leaves the same state: safe to retry.
        self.request(
            "POST", f"{_event_path(mailbox, event_id)}/cancel", token, json={"Comment": comment}, retry_safe=True
        )

    def delete_event(self, token: AccessToken, mailbox: str, event_id: str) -> None:
        self.request("DELETE", _event_path(mailbox, event_id), token)
