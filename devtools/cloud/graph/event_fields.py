"""Event fields from a Graph event JSON body: what each property accepts and the attribute changes it makes."""

from __future__ import annotations

from typing import Any

from devtools.cloud.common import GraphError
from devtools.cloud.graph.timezones import parse_datetime_timezone, require_zone
from devtools.cloud.state import Attendee, Event

SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
SENSITIVITY = {"normal", "personal", "private", "confidential"}
ATTENDEE_TYPES = {"required", "optional", "resource"}
PROVIDERS = {"unknown", "teamsForBusiness", "skypeForBusiness", "skypeForConsumer"}


def _enum(value: Any, allowed: set[str], name: str) -> str:
    for option in allowed:
        if isinstance(value, str) and value.lower() == option.lower():
            return option
    raise GraphError(400, "ErrorInvalidRequest", f"The value '{value}' is not valid for {name}.")


def _attendees(raw: Any) -> list[Attendee]:
    if not isinstance(raw, list):
        raise GraphError(400, "ErrorInvalidRequest", "attendees must be a collection.")
    result = []
    for item in raw:
        email = (item or {}).get("emailAddress") or {}
        address = email.get("address")
        if not isinstance(address, str) or "@" not in address:
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        result.append(
            Attendee(
                address=address,
                name=email.get("name") or "",
                type=_enum(item.get("type") or "required", ATTENDEE_TYPES, "type"),
            )
        )
    return result


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise GraphError(400, "ErrorInvalidRequest", f"The value '{value}' is not valid for {name}.")
    return value


ADDRESS_FIELDS = ("street", "city", "state", "countryOrRegion", "postalCode")  # physicalAddress
COORDINATE_FIELDS = ("latitude", "longitude", "accuracy", "altitude", "altitudeAccuracy")  # outlookGeoCoordinates
LOCATION_TYPES = {
    "default",
    "conferenceRoom",
    "homeAddress",
    "businessAddress",
    "geoCoordinates",
    "streetAddress",
    "hotel",
    "restaurant",
    "localBusiness",
    "postalAddress",
}


def _location(raw: Any) -> tuple[str, dict[str, Any]]:
    """displayName and the other location fields (v1.0 resources/location.md, physicaladdress.md,
    outlookgeocoordinates.md). Unknown members of address or coordinates are refused, as Graph refuses
    properties its model does not have."""
    if raw is None:
        return "", {}
    if not isinstance(raw, dict):
        raise GraphError(400, "ErrorInvalidRequest", "location must be an object.")
    details: dict[str, Any] = {}
    address = raw.get("address")
    if address:
        if not isinstance(address, dict) or set(address) - set(ADDRESS_FIELDS) - {"@odata.type"}:
            raise GraphError(400, "RequestBodyRead", "The address of a location has an unknown property.")
        if any(not isinstance(address.get(k), str | None) for k in ADDRESS_FIELDS):
            raise GraphError(400, "RequestBodyRead", "The fields of a location's address are strings.")
        details["address"] = {k: address[k] for k in ADDRESS_FIELDS if address.get(k) is not None}
    coordinates = raw.get("coordinates")
    if coordinates:
        if not isinstance(coordinates, dict) or set(coordinates) - set(COORDINATE_FIELDS) - {"@odata.type"}:
            raise GraphError(400, "RequestBodyRead", "The coordinates of a location have an unknown property.")
        for key in COORDINATE_FIELDS:
            number = coordinates.get(key)
            if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
                raise GraphError(400, "RequestBodyRead", f"The coordinate {key} must be a number.")
        details["coordinates"] = {k: coordinates[k] for k in COORDINATE_FIELDS if coordinates.get(k) is not None}
    if raw.get("locationType") is not None:
        details["locationType"] = _enum(raw["locationType"], LOCATION_TYPES, "locationType")
    for key in ("locationUri", "locationEmailAddress", "uniqueId"):
        if isinstance(raw.get(key), str) and raw[key]:
            details[key] = raw[key]
    if raw.get("uniqueIdType") is not None:
        details["uniqueIdType"] = _enum(
            raw["uniqueIdType"], {"unknown", "locationStore", "directory", "private", "bing"}, "uniqueIdType"
        )
    return str(raw.get("displayName") or ""), details


def _content_changes(body: dict[str, Any], existing: Event | None) -> dict[str, Any]:
    """Subject, body, start and end, location and attendees."""
    changes: dict[str, Any] = {}
    if "subject" in body:
        changes["subject"] = str(body["subject"] or "")
    if "body" in body:
        content = body["body"] or {}
        changes["body"] = str(content.get("content") or "")
        changes["body_content_type"] = "text" if str(content.get("contentType", "html")).lower() == "text" else "html"
    for side in ("start", "end"):
        if side in body:
            value = body[side]
            changes[side] = parse_datetime_timezone(value, field_name=side)
            tz_name = (value or {}).get("timeZone") or "UTC"
            require_zone(tz_name)
            changes[f"original_{side}_time_zone"] = tz_name
    if "location" in body:
        changes["location"], changes["location_details"] = _location(body["location"])
    if "attendees" in body:
        new = _attendees(body["attendees"])
        if existing is not None:
            # Keep the answers of attendees who stay in the meeting.
            known = {a.address.lower(): a for a in existing.attendees}
            for attendee in new:
                old = known.get(attendee.address.lower())
                if old is not None:
                    attendee.response, attendee.response_time = old.response, old.response_time
        changes["attendees"] = new
    return changes


def _display_changes(body: dict[str, Any]) -> dict[str, Any]:
    """How the event shows: all day, free/busy, sensitivity, categories, reminders and the like."""
    changes: dict[str, Any] = {}
    if "isAllDay" in body:
        changes["is_all_day"] = bool(body["isAllDay"])
    if "showAs" in body:
        changes["show_as"] = _enum(body["showAs"], SHOW_AS, "showAs")
    if "sensitivity" in body:
        changes["sensitivity"] = _enum(body["sensitivity"], SENSITIVITY, "sensitivity")
    if "categories" in body:
        changes["categories"] = [str(c) for c in body["categories"] or []]
    if "responseRequested" in body:
        changes["response_requested"] = bool(body["responseRequested"])
    # Stored as sent (v1.0 resources/event.md: "Set to true if an alert is set ...", "The number of minutes
    # before the event start time that the reminder alert occurs", "true if the meeting organizer allows
    # invitees to propose a new time ... Optional. The default is true", "When set to true, each attendee
    # only sees themselves in the meeting request and meeting Tracking list").
    for prop, name in (
        ("isReminderOn", "is_reminder_on"),
        ("allowNewTimeProposals", "allow_new_time_proposals"),
        ("hideAttendees", "hide_attendees"),
    ):
        if prop in body:
            changes[name] = _boolean(body[prop], prop)
    if "reminderMinutesBeforeStart" in body:
        minutes = body["reminderMinutesBeforeStart"]
        # Int32 in the reference; the range Outlook accepts is not documented: negatives are refused here.
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= 2**31 - 1:
            raise GraphError(
                400, "ErrorInvalidRequest", f"The value '{minutes}' is not valid for reminderMinutesBeforeStart."
            )
        changes["reminder_minutes_before_start"] = minutes
    return changes


def _series_and_identity_changes(body: dict[str, Any], existing: Event | None) -> dict[str, Any]:
    """Recurrence, the online meeting asked for, transactionId and the extended properties."""
    changes: dict[str, Any] = {}
    if "recurrence" in body:
        changes["recurrence"] = body["recurrence"]
    if "isOnlineMeeting" in body:
        changes["is_online_meeting"] = bool(body["isOnlineMeeting"])
    if "onlineMeetingProvider" in body:
        changes["online_meeting_provider"] = _enum(body["onlineMeetingProvider"], PROVIDERS, "onlineMeetingProvider")
    if "transactionId" in body:
        if existing is not None and body["transactionId"] != existing.transaction_id:
            raise GraphError(400, "ErrorInvalidRequest", "The transactionId of an event cannot be changed.")
        changes["transaction_id"] = body["transactionId"]
    if "singleValueExtendedProperties" in body:
        props = dict(existing.extended_properties) if existing is not None else {}
        for prop in body["singleValueExtendedProperties"] or []:
            if not isinstance(prop, dict) or not isinstance(prop.get("id"), str):
                raise GraphError(400, "ErrorInvalidRequest", "An extended property needs an id.")
            props[prop["id"]] = str(prop.get("value", ""))
        changes["extended_properties"] = props
    return changes


def parse_changes(body: dict[str, Any], *, existing: Event | None) -> dict[str, Any]:
    """Event attribute changes from a Graph event JSON body; only what the body sends."""
    return {
        **_content_changes(body, existing),
        **_display_changes(body),
        **_series_and_identity_changes(body, existing),
    }
