"""Teams meetings on events: a new meeting with dial-in details, and the meeting an event has after a change."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from devtools.cloud.state import Event, OnlineMeeting


def join_url() -> str:
    thread = uuid.uuid4().hex
    return f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0"


# The demo tenants' audio-conferencing bridge (fictional 555 numbers). The onlineMeetingInfo fields are
# documented (v1.0 resources/onlinemeetinginfo.md: conferenceId, joinUrl, phones, quickDial,
# tollFreeNumbers, tollNumber) but not their formats or phone types; these follow what Teams prints in
# an invitation ("Conference ID: 123 456 789#").
TOLL_NUMBER = "+1 323-555-0166"
TOLL_FREE_NUMBER = "+1 800-555-0199"


def new_meeting() -> OnlineMeeting:
    """A new Teams meeting with dial-in details."""
    conference_id = str(secrets.randbelow(900_000_000) + 100_000_000)
    digits = re.sub(r"\D", "", TOLL_NUMBER)
    return OnlineMeeting(
        join_url=join_url(),
        conference_id=conference_id,
        toll_number=TOLL_NUMBER,
        toll_free_numbers=(TOLL_FREE_NUMBER,),
        quick_dial=f"+{digits},,{conference_id}#",
        phones=((TOLL_NUMBER, "business"), (TOLL_FREE_NUMBER, "business")),
    )


def apply_meeting(existing: Event | None, changes: dict[str, Any], *, drop: str | None = None) -> None:
    """Complete ``changes`` with the online meeting the event has after them.

    Documented (v1.0 resources/event.md): after **isOnlineMeeting** is set to true (or
    **onlineMeetingProvider** is set), "Microsoft Graph initializes **onlineMeeting**. Subsequently Outlook
    ignores any further changes to **isOnlineMeeting**, and the meeting remains available online", and
    the provider "cannot" change again. So a PATCH of ``isOnlineMeeting: false`` or of another provider
    is ignored while a meeting is attached.

    Not documented, but reported by users of Graph: a PATCH that moves an event sometimes comes back
    with ``isOnlineMeeting: false`` and ``onlineMeeting: null``. ``drop`` models it (the meeting-drop
    switch): ``"detach"`` keeps the Teams meeting alive, so turning the event online again brings back
    the same join URL; ``"delete"`` loses it, so the next meeting is a new one.
    """
    current = existing.online_meeting if existing is not None else None
    if current is not None:
        if changes.get("is_online_meeting") is False:
            changes.pop("is_online_meeting")
        if "online_meeting_provider" in changes and existing is not None:
            changes["online_meeting_provider"] = existing.online_meeting_provider
    if drop is not None and current is not None:
        changes.update(
            is_online_meeting=False,
            online_meeting=None,
            detached_meeting=current if drop == "detach" else None,
        )
        return

    def value(name: str, default: Any) -> Any:
        return changes.get(name, getattr(existing, name) if existing is not None else default)

    online = bool(value("is_online_meeting", False))
    provider = value("online_meeting_provider", "unknown")
    if online and provider == "unknown":
        provider = changes["online_meeting_provider"] = "teamsForBusiness"
    if online and provider == "teamsForBusiness" and current is None:
        detached = existing.detached_meeting if existing is not None else None
        changes["online_meeting"] = detached or new_meeting()
        changes["detached_meeting"] = None
