"""The per-worker memory in front of storage: a warm request reads nothing, a sign-out is seen at once
here and within 30 seconds on every other instance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.errors import ConcurrencyConflict, SigninRequired
from shared.identity.guard import hash_secret, require_calendar_access
from shared.worker_cache import (
    MAX_STALENESS,
    WORKER_CACHE_TTL,
    CachedSessions,
    CachedTenants,
    CachedTokenCaches,
    CachedUsers,
    TtlCache,
)
from tests.kit import TENANT_A, FakeClock, FakeDeps, consented, sign_in


class Counting:
    """Counts the reads that reach the wrapped store."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name.startswith(("get_", "load_", "list_")):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.reads += 1
                return attr(*args, **kwargs)

            return counted
        return attr


def _worker(deps: FakeDeps) -> tuple[FakeDeps, list[Counting]]:
    """The same fakes seen through this worker's memory, as the composition root builds it."""
    stores = [Counting(deps.sessions), Counting(deps.users), Counting(deps.tenants), Counting(deps.token_caches)]
    worker = FakeDeps()
    worker.__dict__.update(deps.__dict__)
    worker.sessions = CachedSessions(stores[0], deps.clock)  # type: ignore[assignment]
    worker.users = CachedUsers(stores[1], deps.clock)  # type: ignore[assignment]
    worker.tenants = CachedTenants(stores[2], deps.clock)  # type: ignore[assignment]
    worker.token_caches = CachedTokenCaches(stores[3], deps.clock)  # type: ignore[assignment]
    return worker, stores


def test_a_warm_calendar_request_reads_nothing_from_storage() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    worker, stores = _worker(deps)
    require_calendar_access(worker, credential)  # cold: reads session, user, tenant and token cache
    assert sum(s.reads for s in stores) == 4
    for s in stores:
        s.reads = 0
    for _ in range(5):
        require_calendar_access(worker, credential)
    assert sum(s.reads for s in stores) == 0


def test_a_sign_out_on_this_instance_takes_effect_at_once() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    worker, _ = _worker(deps)
    require_calendar_access(worker, credential)
    worker.sessions.delete_session(hash_secret(credential))
    with pytest.raises(SigninRequired):
        require_calendar_access(worker, credential)


def test_a_sign_out_on_another_instance_takes_effect_within_30_seconds() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    worker, _ = _worker(deps)
    require_calendar_access(worker, credential)
    deps.sessions.delete_session(hash_secret(credential))  # another instance, straight to storage
    deps.clock.advance(seconds=MAX_STALENESS.total_seconds())
    with pytest.raises(SigninRequired):
        require_calendar_access(worker, credential)


def test_worker_memory_cannot_be_kept_longer_than_30_seconds() -> None:
    assert WORKER_CACHE_TTL <= MAX_STALENESS == timedelta(seconds=30)
    with pytest.raises(ValueError):
        TtlCache(FakeClock(), ttl=MAX_STALENESS + timedelta(seconds=1))


def test_a_write_that_lost_its_race_is_read_afresh_next_time() -> None:
    deps = FakeDeps()
    tenant = consented(deps)
    tenants = CachedTenants(deps.tenants, deps.clock)
    assert tenants.get_tenant(TENANT_A) == tenant
    winner = deps.tenants.update_tenant(tenant)  # another instance wrote it
    with pytest.raises(ConcurrencyConflict):
        tenants.update_tenant(tenant)
    assert tenants.get_tenant(TENANT_A).etag == winner.etag


def test_absence_is_not_remembered() -> None:
    deps = FakeDeps()
    caches = CachedTokenCaches(deps.token_caches, deps.clock)
    assert caches.load_cache(TENANT_A, "u1") is None
    deps.token_caches.save_cache(TENANT_A, "u1", "{}")  # signed in on another instance
    assert caches.load_cache(TENANT_A, "u1") == "{}"
