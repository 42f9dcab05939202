"""Failure switches for Graph requests: throttling, faults, latency, access policies, on-premises mailboxes.

The switches live in ``world.switches`` (shared with the rest of the cloud); these functions are the
only writers and readers on the Graph side, so their shapes stay in one place:

- ``throttle``: ``{mailbox user id or "*": {"remaining": N, "retry_after": seconds}}``
- ``faults``: ``{mailbox user id or "*": {"remaining": N, "status": 5xx}}``
- ``lost_answers``: ``{"*": {"remaining": N, "status": 5xx}}``, counted only by POSTs that succeeded: the
  write happens, the caller gets the 5xx (a gateway timeout after the write, as clients see it)
- ``send_as_denied``: ``{mailbox user id or "*": {"remaining": N}}``, counted by sendMail requests that
  reach that mailbox: they answer 403 ``ErrorSendAsDenied`` (graph/mail.py)
- ``mail_limits``: ``{"per_minute": N, "recipients_per_day": N}`` (graph/mail_store.py), empty: off
- ``meeting_drops``: ``{mailbox user id or "*": {"remaining": N, "delete": 0 | 1}}``, counted only by
  PATCHes that move an event (change its start or end) that has an online meeting

A ``"*"`` entry counts down on every Graph request; a mailbox entry only on requests that reach that
mailbox. Every read-modify-write happens under ``world.lock`` because uvicorn may serve requests
from several threads (``$batch``, sync test clients) as well as the event loop.
"""

from __future__ import annotations

from devtools.cloud.state import World

ANY_MAILBOX = "*"


def set_throttle(world: World, *, count: int, retry_after: float = 2.0, mailbox_id: str | None = None) -> None:
    """The next ``count`` requests (to ``mailbox_id``, or to anything) answer 429 with ``Retry-After``."""
    if count < 0 or retry_after < 0:
        raise ValueError("count and retry_after must not be negative")
    with world.lock:
        _arm(world.switches.throttle, mailbox_id, count, {"retry_after": retry_after})


def set_fault(world: World, *, count: int, status: int = 503, mailbox_id: str | None = None) -> None:
    """The next ``count`` requests (to ``mailbox_id``, or to anything) answer ``status`` (a 5xx)."""
    if not 500 <= status <= 599:
        raise ValueError("fault status must be a 5xx code")
    if count < 0:
        raise ValueError("count must not be negative")
    with world.lock:
        _arm(world.switches.faults, mailbox_id, count, {"status": status})


def set_meeting_drop(world: World, *, count: int, mailbox_id: str | None = None, delete: bool = False) -> None:
    """The next ``count`` PATCHes that move an online meeting (in ``mailbox_id``, or anywhere) drop the meeting.

    The event comes back with ``isOnlineMeeting: false`` and ``onlineMeeting: null``. With ``delete``
    the Teams meeting is gone too, so a later ``isOnlineMeeting: true`` creates a new join URL;
    otherwise it brings back the same one.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    with world.lock:
        _arm(world.switches.meeting_drops, mailbox_id, count, {"delete": 1.0 if delete else 0.0})


def take_meeting_drop(world: World, mailbox_id: str) -> str | None:
    """Consume one meeting drop for a PATCH moving an event of this mailbox: "detach", "delete" or None."""
    with world.lock:
        entry = _take(world.switches.meeting_drops, mailbox_id) or _take(world.switches.meeting_drops, ANY_MAILBOX)
    if entry is None:
        return None
    return "delete" if entry.get("delete") else "detach"


def set_latency(world: World, seconds: float) -> None:
    """Every Graph request takes at least this much longer (held while the mailbox slot is taken)."""
    if seconds < 0:
        raise ValueError("latency must not be negative")
    with world.lock:
        world.switches.latency_seconds = float(seconds)


def set_access_policy_block(world: World, mailbox_id: str, blocked: bool = True) -> None:
    """An application access policy denies (or no longer denies) apps access to this mailbox."""
    with world.lock:
        if blocked:
            world.switches.access_policy_blocked.add(mailbox_id)
        else:
            world.switches.access_policy_blocked.discard(mailbox_id)


def set_mailbox_on_premises(world: World, mailbox_id: str, on_premises: bool = True) -> None:
    """Move a mailbox on premises (Graph cannot reach it) or back to Exchange Online."""
    with world.lock:
        user = world.users.get(mailbox_id)
        if user is None:
            raise KeyError(mailbox_id)
        user.mailbox_on_premises = on_premises


def set_mailbox_concurrency(world: World, enforce: bool) -> None:
    with world.lock:
        world.switches.enforce_mailbox_concurrency = enforce


def clear(world: World) -> None:
    """Throttling, faults, meeting drops, latency, access policies, send-as denials and mail limits off; the
    concurrency limit back on."""
    with world.lock:
        world.switches.throttle.clear()
        world.switches.faults.clear()
        world.switches.meeting_drops.clear()
        world.switches.lost_answers.clear()
        world.switches.latency_seconds = 0.0
        world.switches.access_policy_blocked.clear()
        world.switches.enforce_mailbox_concurrency = True
        world.switches.send_as_denied.clear()
        world.switches.mail_limits = {}


def _arm(table: dict[str, dict[str, float]], mailbox_id: str | None, count: int, entry: dict[str, float]) -> None:
    """The next ``count`` requests to ``mailbox_id`` (or to anything) take ``entry``; none for a count of 0."""
    key = mailbox_id or ANY_MAILBOX
    if count == 0:
        table.pop(key, None)
    else:
        table[key] = {"remaining": count, **entry}


def _take(table: dict[str, dict[str, float]], key: str) -> dict[str, float] | None:
    entry = table.get(key)
    if not entry or entry.get("remaining", 0) <= 0:
        return None
    entry["remaining"] = entry["remaining"] - 1
    if entry["remaining"] <= 0:
        table.pop(key, None)
    return entry


def take_throttle(world: World, mailbox_id: str | None) -> float | None:
    """Consume one throttled request for this request's scope; the Retry-After seconds, or None."""
    with world.lock:
        entry = _take(world.switches.throttle, mailbox_id or ANY_MAILBOX)
    return None if entry is None else float(entry["retry_after"])


def set_lost_answers(world: World, *, count: int, status: int = 504) -> None:
    """The next ``count`` POSTs that succeed are carried out, then answered ``status`` (a 5xx)."""
    if not 500 <= status <= 599:
        raise ValueError("fault status must be a 5xx code")
    if count < 0:
        raise ValueError("count must not be negative")
    with world.lock:
        _arm(world.switches.lost_answers, None, count, {"status": status})


def take_lost_answer(world: World) -> int | None:
    with world.lock:
        entry = _take(world.switches.lost_answers, ANY_MAILBOX)
    return None if entry is None else int(entry["status"])


def take_fault(world: World, mailbox_id: str | None) -> int | None:
    with world.lock:
        entry = _take(world.switches.faults, mailbox_id or ANY_MAILBOX)
    return None if entry is None else int(entry["status"])


def set_send_as_denied(world: World, *, count: int, mailbox_id: str | None = None) -> None:
    """The next ``count`` sendMail requests (from ``mailbox_id``, or from any mailbox) answer 403 ErrorSendAsDenied."""
    if count < 0:
        raise ValueError("count must not be negative")
    with world.lock:
        _arm(world.switches.send_as_denied, mailbox_id, count, {})


def take_send_as_denied(world: World, mailbox_id: str) -> bool:
    with world.lock:
        entry = _take(world.switches.send_as_denied, mailbox_id) or _take(world.switches.send_as_denied, ANY_MAILBOX)
    return entry is not None
