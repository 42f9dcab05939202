"""Pacing each recruiter's sends under Exchange Online's limits, shared by every instance through storage.

Exchange Online allows a mailbox 30 messages a minute and 10,000 recipients a day; the service stays under
its own, lower settings (``EMAIL_PER_MINUTE``, default 25, and ``EMAIL_RECIPIENTS_PER_DAY``, default 9,000).
The minute is a sliding window over the send times themselves; the day is counted in hour buckets, a bucket
counting for as long as any of its hour lies within the last 24 hours, so the count never falls short of the
true sliding count. A send that does not fit gets the time it will fit at, and waits in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.conflicts import retry_on_conflict
from shared.errors import ConcurrencyConflict
from shared.models import Pace
from shared.ports import PacingStore

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CONTENDED_WAIT = timedelta(seconds=2)  # another instance kept winning the row: try again shortly


@dataclass(frozen=True)
class Limits:
    per_minute: int
    recipients_per_day: int


def decide(pace: Pace, now: datetime, recipients: int, limits: Limits) -> tuple[Pace | None, datetime | None]:
    """The pace with this send taken (and None), or None and the earliest time the send fits."""
    recent = tuple(sorted(t for t in pace.recent if t > now - MINUTE))
    hourly = tuple(sorted((start, n) for start, n in pace.hourly if start + HOUR > now - DAY))
    if len(recent) >= limits.per_minute:
        return None, recent[len(recent) - limits.per_minute] + MINUTE
    used = sum(n for _start, n in hourly)
    if used + recipients > limits.recipients_per_day:
        freed = used
        for start, n in hourly:
            freed -= n
            if freed + recipients <= limits.recipients_per_day:
                return None, start + HOUR + DAY
        return None, now + DAY + HOUR  # more recipients than a whole day allows: never, in practice
    bucket = now.replace(minute=0, second=0, microsecond=0)
    counts = dict(hourly)
    counts[bucket] = counts.get(bucket, 0) + recipients
    return replace(pace, recent=(*recent, now), hourly=tuple(sorted(counts.items()))), None


def take_send(
    store: PacingStore, tenant_id: str, sender_id: str, *, now: datetime, recipients: int, limits: Limits
) -> datetime | None:
    """Take one send for the recruiter now (None), or say when it would fit (nothing is taken)."""

    def attempt() -> datetime | None:
        pace = store.get_pace(tenant_id, sender_id)
        taken, wait = decide(pace, now, recipients, limits)
        if taken is None:
            return wait
        store.save_pace(taken)
        return None

    try:
        return retry_on_conflict(attempt, attempts=8)
    except ConcurrencyConflict:
        return now + CONTENDED_WAIT
