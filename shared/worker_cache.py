"""Per-worker memory of the records every calendar request reads: sessions, users, tenants, token caches,
and the subscription secrets every change notification is checked against.

The guard reads a session, its user, the tenant and the user's token cache on every calendar
request. These stores keep what this worker read or wrote for at most ``WORKER_CACHE_TTL``,
so a warm request reads nothing from storage. Writes go through to storage and replace the
remembered record; a delete forgets it first. What another instance changes is seen here within
the TTL: a logout or a revoked session takes effect at once on the instance that handled it and
within ``MAX_STALENESS`` everywhere.

A write whose ETag lost a race forgets the record, so the caller's retry reads it afresh.
Absence is never remembered: a record another instance just created is read on first use.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from cachetools import TTLCache

from shared.errors import ConcurrencyConflict
from shared.models import MailboxSync, Session, Subscription, SubscriptionSecret, Tenant, User
from shared.ports import Clock, SessionStore, SubscriptionStore, TenantStore, TokenCacheStore, UserStore

MAX_STALENESS = timedelta(seconds=30)
WORKER_CACHE_TTL = timedelta(seconds=20)
MAX_ENTRIES = 10_000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A thread-safe map whose entries live ``ttl`` by the injected clock: ``cachetools.TTLCache`` (least
    recently used first out when full) behind one lock, since cachetools' caches are not thread-safe."""

    def __init__(self, clock: Clock, *, ttl: timedelta = WORKER_CACHE_TTL, max_entries: int = MAX_ENTRIES) -> None:
        if ttl > MAX_STALENESS:
            raise ValueError(f"A worker cache may keep records at most {MAX_STALENESS.total_seconds():.0f} seconds.")
        self._items: TTLCache[K, V] = TTLCache(
            maxsize=max_entries, ttl=ttl.total_seconds(), timer=lambda: clock.now().timestamp()
        )
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return cast("V | None", self._items.get(key))

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value

    def claim(self, key: K, value: V) -> bool:
        """Put ``value`` unless a live entry holds ``key``; True when this call put it."""
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = value
            return True

    def forget(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def forget_where(self, predicate: Callable[[K, V], bool]) -> None:
        with self._lock:
            for key in [k for k, v in self._items.items() if predicate(k, v)]:
                self._items.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            self._items.expire()
            return len(self._items)


class Pacer(Generic[K]):
    """Lets one caller per key through at most once per ``interval`` on this worker (by the injected
    clock): the first caller after the interval is told it is due, concurrent ones are not."""

    def __init__(self, clock: Clock, interval: timedelta) -> None:
        self._passed: TtlCache[K, bool] = TtlCache(clock, ttl=interval)

    def due(self, key: K) -> bool:
        return self._passed.claim(key, True)


_pacers: weakref.WeakKeyDictionary[object, dict[str, Pacer[Any]]] = weakref.WeakKeyDictionary()
_pacers_lock = threading.Lock()


def pacer_of(owner: object, name: str, clock: Clock, interval: timedelta) -> Pacer[Any]:
    """The worker's pacer ``name`` of ``owner`` (a composition root): it lives as long as the owner, so
    a new composition root (a test's) starts with none due-later."""
    with _pacers_lock:
        pacers = _pacers.setdefault(owner, {})
        pacer = pacers.get(name)
        if pacer is None:
            pacer = pacers[name] = Pacer(clock, interval)
        return pacer


def _read_through(cache: TtlCache[K, V], key: K, read: Callable[[], V]) -> V:
    """The remembered record, or the one ``read`` from storage (then remembered)."""
    value = cache.get(key)
    if value is None:
        value = read()
        cache.put(key, value)
    return value


def _write_through(cache: TtlCache[K, V], key: K, write: Callable[[], V]) -> V:
    """Write to storage and remember what was stored; a lost ETag race forgets the record instead."""
    try:
        stored = write()
    except ConcurrencyConflict:
        cache.forget(key)  # the caller's retry must read the record afresh
        raise
    cache.put(key, stored)
    return stored


class CachedTenants:
    """``TenantStore`` that remembers tenants read or written by this worker."""

    def __init__(self, inner: TenantStore, clock: Clock, *, ttl: timedelta = WORKER_CACHE_TTL) -> None:
        self._inner = inner
        self._cache: TtlCache[str, Tenant] = TtlCache(clock, ttl=ttl)

    def get_tenant(self, tenant_id: str) -> Tenant:
        return _read_through(self._cache, tenant_id, lambda: self._inner.get_tenant(tenant_id))

    def create_tenant(self, tenant: Tenant) -> Tenant:
        return _write_through(self._cache, tenant.tenant_id, lambda: self._inner.create_tenant(tenant))

    def update_tenant(self, tenant: Tenant) -> Tenant:
        return _write_through(self._cache, tenant.tenant_id, lambda: self._inner.update_tenant(tenant))

    def delete_tenant(self, tenant_id: str) -> None:
        self._cache.forget(tenant_id)
        self._inner.delete_tenant(tenant_id)

    def list_tenants(self) -> list[Tenant]:
        return self._inner.list_tenants()


class CachedUsers:
    """``UserStore`` that remembers users read or written by this worker."""

    def __init__(self, inner: UserStore, clock: Clock, *, ttl: timedelta = WORKER_CACHE_TTL) -> None:
        self._inner = inner
        self._cache: TtlCache[tuple[str, str], User] = TtlCache(clock, ttl=ttl)

    def get_user(self, tenant_id: str, user_id: str) -> User:
        return _read_through(self._cache, (tenant_id, user_id), lambda: self._inner.get_user(tenant_id, user_id))

    def create_user(self, user: User) -> User:
        key = (user.tenant_id, user.user_id)
        return _write_through(self._cache, key, lambda: self._inner.create_user(user))

    def update_user(self, user: User) -> User:
        key = (user.tenant_id, user.user_id)
        return _write_through(self._cache, key, lambda: self._inner.update_user(user))

    def delete_user(self, tenant_id: str, user_id: str) -> None:
        self._cache.forget((tenant_id, user_id))
        self._inner.delete_user(tenant_id, user_id)

    def list_users(self, tenant_id: str) -> list[User]:
        return self._inner.list_users(tenant_id)


class CachedSessions:
    """``SessionStore`` that remembers sessions by hash; a delete or revocation here is seen at once."""

    def __init__(self, inner: SessionStore, clock: Clock, *, ttl: timedelta = WORKER_CACHE_TTL) -> None:
        self._inner = inner
        self._cache: TtlCache[str, Session] = TtlCache(clock, ttl=ttl)

    def create_session(self, session: Session) -> Session:
        stored = self._inner.create_session(session)
        self._cache.put(session.session_hash, stored)
        return stored

    def get_session(self, session_hash: str) -> Session:
        return _read_through(self._cache, session_hash, lambda: self._inner.get_session(session_hash))

    def update_session(self, session: Session) -> Session:
        return _write_through(self._cache, session.session_hash, lambda: self._inner.update_session(session))

    def delete_session(self, session_hash: str) -> None:
        self._cache.forget(session_hash)
        self._inner.delete_session(session_hash)

    def delete_user_sessions(self, tenant_id: str, user_id: str) -> None:
        self._cache.forget_where(lambda _, s: (s.tenant_id, s.user_id) == (tenant_id, user_id))
        self._inner.delete_user_sessions(tenant_id, user_id)

    def purge_expired_sessions(self, before: datetime) -> int:
        self._cache.forget_where(lambda _, s: s.expires_at < before)
        return self._inner.purge_expired_sessions(before)


class CachedTokenCaches:
    """``TokenCacheStore`` that keeps the decrypted caches this worker read or wrote."""

    def __init__(self, inner: TokenCacheStore, clock: Clock, *, ttl: timedelta = WORKER_CACHE_TTL) -> None:
        self._inner = inner
        self._cache: TtlCache[tuple[str, str], str] = TtlCache(clock, ttl=ttl)

    def load_cache(self, tenant_id: str, owner: str) -> str | None:
        key = (tenant_id, owner)
        serialized = self._cache.get(key)
        if serialized is None:
            serialized = self._inner.load_cache(tenant_id, owner)
            if serialized is not None:
                self._cache.put(key, serialized)
        return serialized

    def save_cache(self, tenant_id: str, owner: str, serialized: str) -> None:
        # Remember it before the write: a write lost to another writer still leaves a working cache here.
        self._cache.put((tenant_id, owner), serialized)
        self._inner.save_cache(tenant_id, owner, serialized)

    def delete_cache(self, tenant_id: str, owner: str) -> None:
        self._cache.forget((tenant_id, owner))
        self._inner.delete_cache(tenant_id, owner)


class CachedSubscriptions:
    """``SubscriptionStore`` that remembers subscription secrets (tenant and clientState hash) for the
    webhook: a burst of notifications for one subscription costs one point read per worker per TTL.
    Everything else passes through; deleting a subscription forgets its secret here at once."""

    def __init__(self, inner: SubscriptionStore, clock: Clock, *, ttl: timedelta = WORKER_CACHE_TTL) -> None:
        self._inner = inner
        self._secrets: TtlCache[str, SubscriptionSecret] = TtlCache(clock, ttl=ttl)

    def find_secret(self, subscription_id: str) -> SubscriptionSecret:
        return _read_through(self._secrets, subscription_id, lambda: self._inner.find_secret(subscription_id))

    def get_subscription(self, tenant_id: str, subscription_id: str) -> Subscription:
        return self._inner.get_subscription(tenant_id, subscription_id)

    def create_subscription(self, subscription: Subscription) -> Subscription:
        return self._inner.create_subscription(subscription)

    def update_subscription(self, subscription: Subscription) -> Subscription:
        return self._inner.update_subscription(subscription)

    def delete_subscription(self, tenant_id: str, subscription_id: str) -> None:
        self._secrets.forget(subscription_id)
        self._inner.delete_subscription(tenant_id, subscription_id)

    def list_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        return self._inner.list_subscriptions(tenant_id)

    def find_subscription(self, subscription_id: str) -> Subscription:
        return self._inner.find_subscription(subscription_id)

    def get_mailbox_sync(self, tenant_id: str, mailbox: str) -> MailboxSync:
        return self._inner.get_mailbox_sync(tenant_id, mailbox)

    def create_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        return self._inner.create_mailbox_sync(sync)

    def update_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        return self._inner.update_mailbox_sync(sync)

    def list_mailbox_syncs(self, tenant_id: str | None = None) -> list[MailboxSync]:
        return self._inner.list_mailbox_syncs(tenant_id)

    def add_dropped(self, scope: str, counts: Mapping[str, int]) -> None:
        self._inner.add_dropped(scope, counts)

    def get_dropped(self, scope: str) -> dict[str, int]:
        return self._inner.get_dropped(scope)
