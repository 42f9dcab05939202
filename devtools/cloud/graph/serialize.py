"""Events as Graph JSON, in the property order and shapes of the v1.0 reference examples."""

from __future__ import annotations

import base64
import html
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from devtools.cloud.graph.store import Instance, own_attendee
from devtools.cloud.graph.timezones import format_local
from devtools.cloud.state import Attendee, Event, World

NEVER = "0001-01-01T00:00:00Z"


def iso_z(value: datetime | None) -> str:
    if value is None:
        return NEVER
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"


def etag(event: Event) -> str:
    return f'W/"{change_key(event)}"'


def change_key(event: Event) -> str:
    # Exchange change keys are base64 strings; derive one from our opaque key so they look alike.
    return base64.b64encode(event.change_key.replace("-", "").encode()[:24]).decode("ascii")


def _body_content(event: Event) -> dict[str, str]:
    if event.body_content_type.lower() == "html":
        content = (
            event.body
            if event.body.lstrip().lower().startswith("<html")
            else (f"<html><head></head><body>{event.body}</body></html>")
        )
        return {"contentType": "html", "content": content}
    return {"contentType": "text", "content": event.body}


def _preview(event: Event) -> str:
    text = re.sub(r"<[^>]+>", " ", event.body) if event.body_content_type.lower() == "html" else event.body
    return " ".join(html.unescape(text).split())[:255]


def location_json(name: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Graph's location resource (v1.0 resources/location.md): the name, and what else the client sent.

    ``address`` (physicalAddress: street, city, state, countryOrRegion, postalCode) and ``coordinates``
    (outlookGeoCoordinates: latitude, longitude, accuracy, altitude, altitudeAccuracy) come back as
    stored; they are never dropped.
    """
    details = details or {}
    if not name and not details:
        return {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        }
    body: dict[str, Any] = {
        "displayName": name,
        "locationType": details.get("locationType", "default"),
        "uniqueId": details.get("uniqueId", name),
        "uniqueIdType": details.get("uniqueIdType", "private"),
    }
    for key in ("locationUri", "locationEmailAddress", "address", "coordinates"):
        if key in details:
            body[key] = details[key]
    return body


def online_meeting_json(event: Event) -> dict[str, Any] | None:
    """onlineMeetingInfo (v1.0 resources/onlinemeetinginfo.md), or null when no meeting is attached."""
    meeting = event.online_meeting
    if meeting is None or not event.is_online_meeting:
        return None
    return {
        "joinUrl": meeting.join_url,
        "conferenceId": meeting.conference_id,
        "tollNumber": meeting.toll_number,
        "tollFreeNumbers": list(meeting.toll_free_numbers),
        "quickDial": meeting.quick_dial,
        "phones": [{"number": number, "type": kind} for number, kind in meeting.phones],
    }


def attendee_json(attendee: Attendee, tz_name: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": attendee.type,
        "status": {"response": attendee.response, "time": iso_z(attendee.response_time)},
        "emailAddress": {"name": attendee.name or attendee.address, "address": attendee.address},
    }
    if attendee.proposed_start is not None and attendee.proposed_end is not None:
        body["proposedNewTime"] = {
            "start": format_local(attendee.proposed_start, tz_name),
            "end": format_local(attendee.proposed_end, tz_name),
        }
    return body


def _kind(inst: Instance) -> str:
    if inst.occurrence_id is not None:
        return "occurrence"
    if inst.event.recurrence is not None:
        return "seriesMaster"
    return "singleInstance"


def _response_status(world: World, event: Event) -> dict[str, Any]:
    if event.organizer_event_id is None:
        return {"response": "organizer", "time": NEVER}
    mine = own_attendee(world, event)
    return {
        "response": mine.response if mine else "none",
        "time": iso_z(mine.response_time if mine else None),
    }


def _identity_fields(inst: Instance) -> dict[str, Any]:
    """The etag, ids and timestamps that open the resource."""
    event = inst.event
    body: dict[str, Any] = {
        "@odata.etag": etag(event),
        "id": inst.id,
        "createdDateTime": iso_z(event.created),
        "lastModifiedDateTime": iso_z(event.last_modified),
        "changeKey": change_key(event),
        "categories": list(event.categories),
    }
    if event.transaction_id is not None:
        # "This property is only returned in a response payload if an app has set it."
        body["transactionId"] = event.transaction_id
    return body


def _flag_fields(world: World, inst: Instance, base_url: str) -> dict[str, Any]:
    """Time zones, reminders, the instance's type and link, the online meeting flags, the response status."""
    event = inst.event
    return {
        "originalStartTimeZone": event.original_start_time_zone,
        "originalEndTimeZone": event.original_end_time_zone,
        "iCalUId": event.ical_uid,
        "reminderMinutesBeforeStart": event.reminder_minutes_before_start,
        "isReminderOn": event.is_reminder_on,
        "hasAttachments": False,
        "subject": event.subject,
        "bodyPreview": _preview(event),
        "importance": "normal",
        "sensitivity": event.sensitivity,
        "isAllDay": event.is_all_day,
        "isCancelled": event.is_cancelled,
        "isOrganizer": event.organizer_event_id is None,
        "responseRequested": event.response_requested,
        "seriesMasterId": event.id if inst.occurrence_id is not None else None,
        "showAs": event.show_as,
        "type": _kind(inst),
        "webLink": f"{base_url}/owa/?itemid={quote(inst.id, safe='')}&exvsurl=1&path=/calendar/item",
        # Null for Teams meetings: the property "will be deprecated", clients read onlineMeeting.joinUrl
        # (v1.0 resources/event.md).
        "onlineMeetingUrl": None,
        "isOnlineMeeting": event.is_online_meeting,
        "onlineMeetingProvider": event.online_meeting_provider,
        "allowNewTimeProposals": event.allow_new_time_proposals,
        "isDraft": False,
        "hideAttendees": event.hide_attendees,
        "responseStatus": _response_status(world, event),
    }


def _content_fields(inst: Instance, tz_name: str | None) -> dict[str, Any]:
    """Body, times, location, recurrence, attendees, organizer and the online meeting."""
    event = inst.event
    return {
        "body": _body_content(event),
        "start": format_local(inst.start, tz_name),
        "end": format_local(inst.end, tz_name),
        "location": location_json(event.location, event.location_details),
        "locations": (
            [location_json(event.location, event.location_details)] if event.location or event.location_details else []
        ),
        "recurrence": None if inst.occurrence_id is not None else event.recurrence,
        "attendees": [attendee_json(a, tz_name) for a in event.attendees],
        "organizer": {"emailAddress": {"name": event.organizer_name, "address": event.organizer_address}},
        "onlineMeeting": online_meeting_json(event),
    }


def event_json(world: World, inst: Instance, *, base_url: str, tz_name: str | None) -> dict[str, Any]:
    """Graph's event resource for one instance (a single event, a series master, or an occurrence)."""
    body = _identity_fields(inst)
    body.update(_flag_fields(world, inst, base_url))
    body.update(_content_fields(inst, tz_name))
    return body


def extended_properties_json(properties: dict[str, str], wanted: set[str] | None) -> list[dict[str, str]]:
    """singleValueExtendedProperties, optionally only those whose id is in ``wanted`` (case-insensitive)."""
    chosen = []
    for prop_id, value in properties.items():
        if wanted is None or prop_id.lower() in wanted:
            chosen.append({"id": prop_id, "value": value})
    return chosen
