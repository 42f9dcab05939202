"""The ``.ics`` that goes with a confirmation when Outlook did not invite the candidate (built with icalendar)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.models import Booking, MailAttachment

ICS_NAME = "interview.ics"
ICS_TYPE = "text/calendar; charset=utf-8; method=PUBLISH"
PRODUCT = "-//Interview Calendar Service//EN"


def needs_ics(booking: Booking) -> bool:
    """Whether the candidate gets no Outlook invitation for the event (not among its attendees)."""
    candidate = (booking.candidate_email or "").lower()
    return bool(candidate) and candidate not in {a.lower() for a in booking.attendees}


def build_ics(booking: Booking, *, organizer: str, organizer_name: str, now: datetime) -> MailAttachment:
    """A one-event calendar (METHOD:PUBLISH: an event to add, not a meeting request to answer)."""
    from icalendar import Calendar, Event, vCalAddress, vText

    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", booking.ical_uid or f"{booking.booking_id}@interview-calendar")
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", booking.start.astimezone(UTC))
    event.add("dtend", booking.end.astimezone(UTC))
    event.add("summary", booking.subject)
    if booking.location:
        event.add("location", booking.location)
    if booking.join_url:
        event.add("description", f"Join on Microsoft Teams: {booking.join_url}")
        event.add("url", booking.join_url)
    person = vCalAddress(f"mailto:{organizer}")
    person.params["cn"] = vText(organizer_name or organizer)
    event.add("organizer", person)
    calendar.add_component(event)
    return MailAttachment(name=ICS_NAME, content_type=ICS_TYPE, content=calendar.to_ical())
