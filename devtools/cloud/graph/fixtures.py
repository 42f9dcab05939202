"""Load ``fixtures/calendars.json``: events placed relative to the current week.

Days are offsets from Monday of the current week *in the mailbox owner's time zone* (0 = Monday,
-7 = last Monday, 7 = next Monday); times are wall-clock times in the event's ``timeZone`` (default:
the owner's mailboxSettings.timeZone). So the demo calendars are always about "this week" and
"next week", whenever the cloud starts.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from devtools.cloud.graph import controls, store
from devtools.cloud.graph.timezones import require_zone
from devtools.cloud.state import World, utcnow

# A March window in which the US and Europe change to daylight time on different dates: in 2030 the US
# changes on Sunday 10 March (second Sunday) and the EU on Sunday 31 March (last Sunday), so from 10 to
# 31 March New York is 4 hours behind London instead of 5 (and Berlin 5 instead of 6). Fixture users:
# megan.bowen and nestor.wilke (Eastern Standard Time), lidia.holloway (GMT Standard Time),
# diego.siciliani and johanna.lorenz (W. Europe Standard Time).
US_DAYLIGHT_2030 = date(2030, 3, 10)
EU_DAYLIGHT_2030 = date(2030, 3, 31)
MARCH_DST_WINDOW = (date(2030, 3, 4), date(2030, 4, 6))  # Monday 4 March to Saturday 6 April 2030


def current_monday(tz_name: str, *, now: datetime | None = None) -> date:
    today = (now or utcnow()).astimezone(require_zone(tz_name)).date()
    return today - timedelta(days=today.weekday())


def _local(day: date, clock: str, tz_name: str) -> dict[str, str]:
    return {"dateTime": datetime.combine(day, time.fromisoformat(clock)).isoformat(), "timeZone": tz_name}


def event_body(raw: dict[str, Any], owner_tz: str, *, now: datetime | None = None) -> dict[str, Any]:
    """A Graph event JSON body for one fixture entry."""
    tz_name = raw.get("timeZone") or owner_tz
    monday = current_monday(tz_name, now=now)
    first_day = monday + timedelta(days=int(raw["day"]))
    body: dict[str, Any] = {
        "subject": raw["subject"],
        "showAs": raw.get("showAs", "busy"),
        "sensitivity": raw.get("sensitivity", "normal"),
        "isAllDay": bool(raw.get("isAllDay", False)),
    }
    if body["isAllDay"]:
        last_day = monday + timedelta(days=int(raw.get("endDay", raw["day"])))
        body["start"] = _local(first_day, "00:00", tz_name)
        body["end"] = _local(last_day + timedelta(days=1), "00:00", tz_name)
    else:
        body["start"] = _local(first_day, raw["start"], tz_name)
        body["end"] = _local(first_day, raw["end"], tz_name)
    if raw.get("location"):
        body["location"] = {"displayName": raw["location"]}
    if raw.get("body"):
        body["body"] = {"contentType": "text", "content": raw["body"]}
    if raw.get("attendees"):
        body["attendees"] = [
            {"emailAddress": {"address": a}, "type": "required"} if isinstance(a, str) else a for a in raw["attendees"]
        ]
    if raw.get("isOnlineMeeting"):
        body["isOnlineMeeting"] = True
        body["onlineMeetingProvider"] = "teamsForBusiness"
    if raw.get("recurrence"):
        recurrence = json.loads(json.dumps(raw["recurrence"]))
        rng = recurrence.setdefault("range", {"type": "noEnd"})
        rng["startDate"] = first_day.isoformat()
        if rng.get("type") == "endDay":
            # Fixture shorthand: an endDate given as a day offset like the event's own day.
            rng["type"] = "endDate"
            rng["endDate"] = (monday + timedelta(days=int(rng.pop("endDay")))).isoformat()
        rng.setdefault("recurrenceTimeZone", tz_name)
        body["recurrence"] = recurrence
    if raw.get("categories"):
        body["categories"] = raw["categories"]
    return body


def load_calendars(world: World, path: Path | str) -> None:
    """Add the fixture's events (with attendee copies and responses) to ``world``."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    now = utcnow()
    for raw in doc.get("events", []):
        owner = controls.resolve_user(world, raw["mailbox"])
        owner_tz = str(owner.mailbox_settings.get("timeZone") or "UTC")
        event = controls.add_event(world, owner.id, event_body(raw, owner_tz, now=now))
        # Fixture events look as if they had been there a while.
        event.created = event.last_modified = now.astimezone(UTC) - timedelta(days=14)
        for attendee, response in (raw.get("responses") or {}).items():
            store.respond(world, event, attendee, response)
