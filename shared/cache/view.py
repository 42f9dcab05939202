"""The busy cache's part of ``GET /api/subscriptions/health``: how many of the tenant's interviewers are
warm and cold, the last delta round and full resync, and how many full resyncs Graph's 410 or a
``missed``/``subscriptionRemoved`` lifecycle event caused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import ServiceError
from shared.models import CachedPerson
from shared.ports import Dependencies


def is_warm(record: CachedPerson, now: datetime, freshness: timedelta) -> bool:
    """Warm by the record alone (the reader also needs the asked window inside the synced one)."""
    if record.synced_at is None or record.hours is None or record.delta_link is None:
        return False
    if record.notified_at is not None and record.notified_at >= record.synced_at:
        return False
    return now - record.synced_at <= freshness


@dataclass(frozen=True)
class BusyCacheHealth:
    """The tenant's busy cache at a glance. ``enabled`` False: the setting is off and nothing else is
    known; ``available`` False: storage did not answer, so the figures are unknown (None)."""

    enabled: bool
    available: bool = False
    interviewers: int | None = None
    warm: int | None = None
    cold: int | None = None
    failing: int | None = None
    last_delta_round_at: datetime | None = None
    last_full_resync_at: datetime | None = None
    resyncs_after_gone: int | None = None
    resyncs_after_missed: int | None = None
    freshness_seconds: int | None = None
    max_interviewers: int | None = None


def cache_health(deps: Dependencies, tenant_id: str) -> BusyCacheHealth:
    settings = deps.settings
    if not settings.busy_cache_enabled:
        return BusyCacheHealth(enabled=False)
    try:
        people = deps.busy.list_people(tenant_id)
    except ServiceError:
        return BusyCacheHealth(enabled=True, available=False)
    now = deps.clock.now()
    freshness = timedelta(seconds=settings.busy_cache_freshness_seconds)
    warm = sum(is_warm(p, now, freshness) for p in people)
    rounds = [p.synced_at for p in people if p.synced_at is not None]
    resyncs = [p.full_sync_at for p in people if p.full_sync_at is not None]
    return BusyCacheHealth(
        enabled=True,
        available=True,
        interviewers=len(people),
        warm=warm,
        cold=len(people) - warm,
        failing=sum(1 for p in people if p.last_error),
        last_delta_round_at=max(rounds) if rounds else None,
        last_full_resync_at=max(resyncs) if resyncs else None,
        resyncs_after_gone=sum(p.resyncs_gone for p in people),
        resyncs_after_missed=sum(p.resyncs_missed for p in people),
        freshness_seconds=int(settings.busy_cache_freshness_seconds),
        max_interviewers=settings.busy_cache_max_people,
    )
