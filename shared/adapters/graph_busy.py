"""Graph reads for the warm busy cache: ``/users/{id}/calendarView/delta`` with the app's token, each
entry reduced at once to what getSchedule would report of it (start, end, free/busy status) plus the
all-day and private flags. Subjects, bodies, locations and attendees are read (delta has no
``$select``: "``$select`` is not supported in this case") and dropped here; they never leave this module.

What getSchedule counts, and so what a block is: every event of the primary calendar that is not
cancelled, with its ``showAs``; a ``free`` one changes no slot and is not kept. Entries Graph names
``@removed`` (deleted, declined, moved out of the window: "can name events outside the range") and the
same change delivered twice are both harmless removals or rewrites of a key.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from shared.adapters.graph_subscriptions import GraphSubscriptionsMixin
from shared.errors import UpstreamUnavailable
from shared.models import AccessToken, BusyChange, BusyDelta, CachedBlock, FreeBusyStatus
from shared.timezones import resolve_time_zone

logger = logging.getLogger(__name__)

PRIVATE_SENSITIVITY = frozenset({"private", "confidential"})


def event_key(event_id: str) -> str:
    """What the cache keeps instead of a Graph event id."""
    return hashlib.sha256(event_id.encode("utf-8")).hexdigest()


def _instant(value: Any) -> datetime:
    if not isinstance(value, dict):
        raise ValueError("a dateTimeTimeZone is not an object")
    moment = datetime.fromisoformat(_trim_fraction(str(value["dateTime"])))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=resolve_time_zone(str(value.get("timeZone") or "UTC")))
    return moment.astimezone(UTC)


def _trim_fraction(text: str) -> str:
    # Graph writes seven fractional digits; Python reads at most six.
    head, sep, tail = text.partition(".")
    if not sep:
        return text
    digits = "".join(ch for ch in tail if ch.isdigit())
    return f"{head}.{digits[:6]}{tail[len(digits) :]}"


def busy_change(item: dict[str, Any]) -> BusyChange | None:
    """One delta entry as a change of the cache; None for an entry that is no view item (a series master).
    Raises ValueError for an entry that cannot be read (the round then fails: never a silent gap)."""
    key = event_key(str(item["id"]))
    if "@removed" in item:
        return BusyChange(key, None)
    if item.get("type") == "seriesMaster":
        return None
    if item.get("isCancelled") is True:
        return BusyChange(key, None)
    raw_status = str(item.get("showAs") or "unknown")
    if raw_status == "free":
        return BusyChange(key, None)
    try:
        status = FreeBusyStatus(raw_status)
    except ValueError:
        status = FreeBusyStatus.UNKNOWN  # as the getSchedule parser reads a status it does not know
    start, end = _instant(item.get("start")), _instant(item.get("end"))
    if end < start:
        raise ValueError("an event ends before it starts")
    return BusyChange(
        key,
        CachedBlock(
            key=key,
            start=start,
            end=end,
            status=status,
            all_day=item.get("isAllDay") is True,
            private=str(item.get("sensitivity") or "").lower() in PRIVATE_SENSITIVITY,
        ),
    )


class GraphBusyMixin(GraphSubscriptionsMixin):
    """``GraphGateway.busy_delta``; paging, 410 and retries are ``delta_pages``' and the client's."""

    def busy_delta(
        self, token: AccessToken, mailbox: str, *, delta_link: str | None, start: datetime, end: datetime
    ) -> BusyDelta:
        items, final = self.delta_pages(token, mailbox, delta_link=delta_link, start=start, end=end)
        changes: dict[str, BusyChange] = {}
        for item in items:
            try:
                change = busy_change(item)
            except (KeyError, TypeError, ValueError) as err:  # UnknownTimeZone is a ValueError
                logger.warning("A delta entry of a mailbox could not be read: %s", type(err).__name__)
                raise UpstreamUnavailable("Microsoft Graph answered an event that could not be read.") from err
            if change is not None:
                changes.pop(change.key, None)  # the last state of an item wins, in page order
                changes[change.key] = change
        return BusyDelta(changes=tuple(changes.values()), delta_link=final)
