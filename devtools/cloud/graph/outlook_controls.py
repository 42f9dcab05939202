"""Controls for what people do in Outlook: events made, changed, moved, deleted and answered; group membership;
delta tokens that expire; and the log of the Graph requests answered. Mailboxes are named by user id, UPN or
mail address; events by id (the organizer's event or an attendee's copy, whichever is handy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devtools.cloud.graph import delegation, store
from devtools.cloud.graph.event_fields import parse_changes
from devtools.cloud.graph.meetings import apply_meeting
from devtools.cloud.state import Attendee, Event, Group, User, World, new_id

RESPONSES = {"accepted", "tentativelyAccepted", "declined"}


def resolve_user(world: World, key: str) -> User:
    """A user of any tenant by id, UPN or mail."""
    with world.lock:
        user = world.users.get(key.lower()) or world.users.get(key)
        if user is not None:
            return user
        for user in world.users.values():
            if key.lower() in (user.user_principal_name.lower(), user.mail.lower()):
                return user
    raise KeyError(f"no such user: {key}")


def mailbox_id(world: World, mailbox: str | None) -> str | None:
    """The user id of a mailbox name; None (every mailbox) for no name."""
    return resolve_user(world, mailbox).id if mailbox else None


def _event(world: World, event_id: str) -> Event:
    with world.lock:
        event = world.events.get(event_id)
    if event is None:
        raise KeyError(f"no such event: {event_id}")
    return event


def organizer_event(world: World, event_id: str) -> Event:
    event = store.organizer_of(world, _event(world, event_id))
    if event is None:
        raise KeyError(f"the organizer's event of {event_id} is gone")
    return event


def add_event(world: World, mailbox: str, event: dict[str, Any]) -> Event:
    """Create an event in a mailbox as its owner would in Outlook (attendees get their copies)."""
    owner = resolve_user(world, mailbox)
    changes = parse_changes(event, existing=None)
    if "start" not in changes or "end" not in changes:
        raise ValueError("an event needs start and end")
    created = Event(id=new_id(), mailbox_id=owner.id, subject="", start=changes["start"], end=changes["end"])
    apply_meeting(None, changes)
    for name, value in changes.items():
        setattr(created, name, value)
    return store.add_event(world, created)


def edit_event(world: World, event_id: str, patch: dict[str, Any]) -> Event:
    """Change an event as its owner would (Graph JSON ``patch``); organizer edits reach attendees."""
    event = _event(world, event_id)
    changes = parse_changes(patch, existing=event)
    apply_meeting(event, changes)
    return store.update_event(world, event, changes)


def move_event(world: World, event_id: str, start: datetime, end: datetime) -> Event:
    """Drag an event to a new time in Outlook (aware datetimes)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    return store.update_event(world, _event(world, event_id), {"start": start, "end": end})


def delete_event(world: World, event_id: str) -> None:
    """Delete an event in Outlook; the organizer deleting a meeting cancels it for attendees."""
    store.delete_event(world, _event(world, event_id))


def respond(
    world: World,
    event_id: str,
    attendee: str,
    response: str,
    *,
    proposed_start: datetime | None = None,
    proposed_end: datetime | None = None,
) -> Attendee:
    """An attendee accepts, tentatively accepts or declines (optionally proposing a new time)."""
    if response not in RESPONSES:
        raise ValueError(f"response must be one of {sorted(RESPONSES)}")
    organizer = organizer_event(world, event_id)
    return store.respond(world, organizer, attendee, response, proposed_start=proposed_start, proposed_end=proposed_end)


def accept(world: World, event_id: str, attendee: str) -> Attendee:
    return respond(world, event_id, attendee, "accepted")


def tentatively_accept(world: World, event_id: str, attendee: str) -> Attendee:
    return respond(world, event_id, attendee, "tentativelyAccepted")


def decline(world: World, event_id: str, attendee: str) -> Attendee:
    return respond(world, event_id, attendee, "declined")


def propose_new_time(
    world: World, event_id: str, attendee: str, start: datetime, end: datetime, *, response: str = "tentativelyAccepted"
) -> Attendee:
    """Outlook's "Propose new time": a tentative (or declined) answer carrying proposedNewTime."""
    if response not in ("tentativelyAccepted", "declined"):
        raise ValueError("a proposal goes with tentativelyAccepted or declined")
    return respond(world, event_id, attendee, response, proposed_start=start, proposed_end=end)


def resolve_group(world: World, key: str) -> Group:
    """A group of any tenant by id or mail, or by display name when only one group has it."""
    with world.lock:
        group = world.groups.get(key.lower())
        if group is not None:
            return group
        found = [g for g in world.groups.values() if key.lower() in ((g.mail or "").lower(), g.display_name.lower())]
    if len(found) == 1:
        return found[0]
    raise KeyError(f"no such group (or more than one): {key}")


def set_group_member(world: World, group: str, user: str, member: bool = True) -> None:
    """An admin adds a user to a group or removes them; mailbox access through the group follows at once."""
    delegation.set_group_member(world, resolve_group(world, group), resolve_user(world, user), member)


def invalidate_delta_tokens(world: World, mailbox: str | None = None, *, code: str = "resyncRequired") -> None:
    """Delta tokens issued so far (for one mailbox, or all) expire: from now on they answer 410 Gone with
    ``code`` (``resyncRequired`` or ``syncStateNotFound``) and a Location that starts a full sync."""
    store.invalidate_delta_tokens(world, mailbox_id(world, mailbox), code)


expire_delta_tokens = invalidate_delta_tokens


def graph_requests(world: World, *, path: str | None = None, caller: str | None = None) -> dict[str, Any]:
    """Graph requests answered since the last reset, one row per method, path, caller and whether the
    request came inside a ``$batch``. ``path`` keeps rows whose path contains it (case-insensitive);
    ``caller`` those whose client id or user id equals it. ``total`` counts every row's requests,
    ``roundTrips`` only those that were HTTP requests of their own (a ``$batch`` counts once there)."""
    rows = []
    for (method, where, tenant, client, user, batched), count in store.request_log(world):
        if path is not None and path.lower() not in where.lower():
            continue
        if caller is not None and caller not in (client, user):
            continue
        rows.append(
            {
                "method": method,
                "path": where,
                "tenantId": tenant or None,
                "clientId": client or None,
                "userId": user or None,
                "batched": batched,
                "count": count,
            }
        )
    return {
        "total": sum(r["count"] for r in rows),
        "roundTrips": sum(r["count"] for r in rows if not r["batched"]),
        "requests": rows,
    }


def reset_graph_requests(world: World) -> None:
    """Forget the Graph requests counted so far (``graph_requests`` starts again from zero)."""
    store.reset_request_log(world)
