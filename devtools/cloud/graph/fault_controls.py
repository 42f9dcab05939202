"""Failure switches of the Graph side (throttling, faults, lost answers, dropped meetings, latency, access
policies, on-premises mailboxes, the per-mailbox concurrency limit) and the request counters."""

from __future__ import annotations

from devtools.cloud.graph import store, switches
from devtools.cloud.graph.outlook_controls import mailbox_id, resolve_user
from devtools.cloud.state import World


# The failure switches of graph/switches.py, with mailboxes named as in the other controls.
def throttle(world: World, *, count: int, retry_after: float = 2.0, mailbox: str | None = None) -> None:
    switches.set_throttle(world, count=count, retry_after=retry_after, mailbox_id=mailbox_id(world, mailbox))


def fail(world: World, *, count: int, status: int = 503, mailbox: str | None = None) -> None:
    switches.set_fault(world, count=count, status=status, mailbox_id=mailbox_id(world, mailbox))


def lose_answers(world: World, *, count: int, status: int = 504) -> None:
    """The next ``count`` POSTs that succeed are carried out but answered ``status``, as when a gateway
    times out after Graph wrote: a client that retries must not write twice."""
    switches.set_lost_answers(world, count=count, status=status)


def drop_online_meetings(world: World, *, count: int, mailbox: str | None = None, delete: bool = False) -> None:
    """The next ``count`` Graph PATCHes that move an online meeting drop it, as users report Graph doing.

    See ``meetings.apply_meeting``: ``delete=False`` keeps the Teams meeting, so restoring it (PATCH
    ``isOnlineMeeting: true``) brings back the same join URL; ``delete=True`` makes the restore a new one.
    """
    switches.set_meeting_drop(world, count=count, delete=delete, mailbox_id=mailbox_id(world, mailbox))


def set_latency(world: World, seconds: float) -> None:
    switches.set_latency(world, seconds)


def block_mailbox(world: World, mailbox: str, blocked: bool = True) -> None:
    """An application access policy keeps apps out of (or lets them back into) this mailbox."""
    switches.set_access_policy_block(world, resolve_user(world, mailbox).id, blocked)


def set_on_premises(world: World, mailbox: str, on_premises: bool = True) -> None:
    switches.set_mailbox_on_premises(world, resolve_user(world, mailbox).id, on_premises)


def enforce_mailbox_concurrency(world: World, enforce: bool = True) -> None:
    switches.set_mailbox_concurrency(world, enforce)


def clear_switches(world: World) -> None:
    switches.clear(world)


def request_counts(world: World) -> dict[str, float]:
    """Graph requests answered since the cloud started (or its world was reset), the 429s among them,
    and the seconds mailbox slots were held (summed over requests: divided by the time elapsed, how
    many of a mailbox's four slots were in use on average)."""
    state = store.graph_state(world)
    with world.lock:
        return {"answered": state.answered, "throttled": state.throttled, "slot_seconds": state.slot_seconds}
