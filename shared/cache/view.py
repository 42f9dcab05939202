"""The busy cache's part of ``GET /api/subscriptions/health``: how many of the tenant's interviewers are
warm and cold, the last delta round and full resync, and how many full resyncs Graph's 410 or a
``missed``/``subscriptionRemoved`` lifecycle event caused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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


def cache_health(deps: Dependencies, tenant_id: str) -> dict[str, Any]:
    settings = deps.settings
    if not settings.busy_cache_enabled:
        return {"enabled": False}
    try:
        people = deps.busy.list_people(tenant_id)
    except ServiceError:
        return {"enabled": True, "available": False}
    now = deps.clock.now()
    freshness = timedelta(seconds=settings.busy_cache_freshness_seconds)
    warm = sum(is_warm(p, now, freshness) for p in people)
    rounds = [p.synced_at for p in people if p.synced_at is not None]
    resyncs = [p.full_sync_at for p in people if p.full_sync_at is not None]
    return {
        "enabled": True,
        "available": True,
        "interviewers": len(people),
        "warm": warm,
        "cold": len(people) - warm,
        "failing": sum(1 for p in people if p.last_error),
        "last_delta_round_at": max(rounds).isoformat() if rounds else None,
        "last_full_resync_at": max(resyncs).isoformat() if resyncs else None,
        "resyncs_after_gone": sum(p.resyncs_gone for p in people),
        "resyncs_after_missed": sum(p.resyncs_missed for p in people),
        "freshness_seconds": int(settings.busy_cache_freshness_seconds),
        "max_interviewers": settings.busy_cache_max_people,
    }
