"""Composition root: the one place that builds adapters from Settings.

Handlers call ``get_container()``; nothing is built at import time. Each
dependency is built on first use and kept for the life of the worker process.
Tests build a ``Container`` with fakes through keyword overrides (each typed as
its port, so a misspelt or ill-typed override fails under mypy) and install it
with ``set_container``.

Stores built here from storage sit behind the worker's memory (``shared.worker_cache``):
a warm calendar request reads nothing from storage. An override is used as given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from shared import heap
from shared.config import Settings
from shared.errors import NotConfigured

if TYPE_CHECKING:  # only for annotations: importing the ports (and the models) costs cold start
    from azure.core.credentials import TokenCredential

    from shared.ports import (
        BookingStore,
        BusyCacheStore,
        Clock,
        EmailLedger,
        EventGateway,
        FlowStore,
        GraphGateway,
        IdentityProvider,
        KeySource,
        MailGateway,
        NotificationQueue,
        PacingStore,
        ReachabilityProbe,
        SessionStore,
        Storage,
        SubscriptionStore,
        TemplateStore,
        TenantStore,
        TokenCacheStore,
        TokenCipher,
        UserStore,
    )

T = TypeVar("T")


class SystemClock:
    """The wall clock, moved by ``CLOCK_OFFSET_SECONDS`` (0 but in tests that pin a date)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


class _Lazy:
    """Builds each named dependency once, under a lock, unless it was given."""

    def __init__(self, given: dict[str, object | None]) -> None:
        self._built: dict[str, object] = {k: v for k, v in given.items() if v is not None}
        self._lock = threading.RLock()

    def get(self, name: str, factory: Callable[[], T]) -> T:
        value = self._built.get(name)
        if value is None:
            with self._lock:
                value = self._built.get(name)
                if value is None:
                    value = factory()
                    self._built[name] = value
                    heap.settle()  # the dependency and what its import brought live as long as the worker
        return value  # type: ignore[return-value]


class Container:
    """Lazily built dependencies; pass any of them as a keyword override (fakes in tests)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        key_source: KeySource | None = None,
        cipher: TokenCipher | None = None,
        storage: Storage | None = None,
        tenants: TenantStore | None = None,
        users: UserStore | None = None,
        token_caches: TokenCacheStore | None = None,
        flows: FlowStore | None = None,
        sessions: SessionStore | None = None,
        bookings: BookingStore | None = None,
        subscriptions: SubscriptionStore | None = None,
        busy: BusyCacheStore | None = None,
        notification_queue: NotificationQueue | None = None,
        identity: IdentityProvider | None = None,
        graph: GraphGateway | None = None,
        events: EventGateway | None = None,
        email_templates: TemplateStore | None = None,
        emails: EmailLedger | None = None,
        email_pacing: PacingStore | None = None,
        mail: MailGateway | None = None,
        probe: ReachabilityProbe | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        self._settings = settings
        self._settings_lock = threading.Lock()
        self._lazy = _Lazy(
            {
                "clock": clock,
                "key_source": key_source,
                "cipher": cipher,
                "storage": storage,
                "tenants": tenants,
                "users": users,
                "token_caches": token_caches,
                "flows": flows,
                "sessions": sessions,
                "bookings": bookings,
                "subscriptions": subscriptions,
                "busy": busy,
                "notification_queue": notification_queue,
                "identity": identity,
                "graph": graph,
                "events": events,
                "email_templates": email_templates,
                "emails": emails,
                "email_pacing": email_pacing,
                "mail": mail,
                "probe": probe,
                "credential": credential,
            }
        )

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            with self._settings_lock:
                if self._settings is None:
                    self._settings = Settings.from_env()
        return self._settings

    @property
    def credential(self) -> TokenCredential:
        """The app's managed identity (one per worker): identity-based storage and Key Vault."""

        def build() -> TokenCredential:
            from shared.adapters.credentials import build_credential

            return build_credential(self.settings)

        return self._lazy.get("credential", build)

    @property
    def clock(self) -> Clock:
        return self._lazy.get("clock", lambda: SystemClock(self.settings.clock_offset_seconds))

    @property
    def key_source(self) -> KeySource:
        def build() -> KeySource:
            from shared.adapters.keys import build_key_source

            settings = self.settings
            return build_key_source(settings, credential=self.credential if settings.key_vault_url else None)

        return self._lazy.get("key_source", build)

    @property
    def cipher(self) -> TokenCipher:
        def build() -> TokenCipher:
            from shared.adapters.crypto import AesGcmCipher

            return AesGcmCipher(self.key_source)

        return self._lazy.get("cipher", build)

    @property
    def storage(self) -> Storage:
        def build() -> Storage:
            from shared.adapters.tables import TableStorage

            settings = self.settings
            credential = self.credential if settings.storage_by_identity else None
            return TableStorage.from_settings(settings, cipher=self.cipher, clock=self.clock, credential=credential)

        return self._lazy.get("storage", build)

    @property
    def tenants(self) -> TenantStore:
        def build() -> TenantStore:
            from shared.worker_cache import CachedTenants

            return CachedTenants(self.storage.tenants, self.clock)

        return self._lazy.get("tenants", build)

    @property
    def users(self) -> UserStore:
        def build() -> UserStore:
            from shared.worker_cache import CachedUsers

            return CachedUsers(self.storage.users, self.clock)

        return self._lazy.get("users", build)

    @property
    def token_caches(self) -> TokenCacheStore:
        def build() -> TokenCacheStore:
            from shared.worker_cache import CachedTokenCaches

            return CachedTokenCaches(self.storage.token_caches, self.clock)

        return self._lazy.get("token_caches", build)

    @property
    def flows(self) -> FlowStore:
        return self._lazy.get("flows", lambda: self.storage.flows)

    @property
    def sessions(self) -> SessionStore:
        def build() -> SessionStore:
            from shared.worker_cache import CachedSessions

            return CachedSessions(self.storage.sessions, self.clock)

        return self._lazy.get("sessions", build)

    @property
    def bookings(self) -> BookingStore:
        return self._lazy.get("bookings", lambda: self.storage.bookings)

    @property
    def subscriptions(self) -> SubscriptionStore:
        def build() -> SubscriptionStore:
            from shared.worker_cache import CachedSubscriptions

            return CachedSubscriptions(self.storage.subscriptions, self.clock)

        return self._lazy.get("subscriptions", build)

    @property
    def busy(self) -> BusyCacheStore:
        """The busy cache's store; the cache keeps its own per-worker memory (``shared.cache.reader``)."""
        return self._lazy.get("busy", lambda: self.storage.busy)

    @property
    def notification_queue(self) -> NotificationQueue:
        def build() -> NotificationQueue:
            from shared.adapters.queues import StorageQueue

            settings = self.settings
            return StorageQueue(
                settings.storage_connection,
                settings.notification_queue,
                queue_service_uri=settings.storage_queue_uri,
                credential=self.credential if settings.storage_by_identity else None,
            )

        return self._lazy.get("notification_queue", build)

    @property
    def identity(self) -> IdentityProvider:
        def build() -> IdentityProvider:
            from shared.adapters.identity import MsalIdentity

            return MsalIdentity(self.settings)

        return self._lazy.get("identity", build)

    @property
    def graph(self) -> GraphGateway:
        def build() -> GraphGateway:
            from shared.adapters.graph import GraphClient

            return GraphClient(self.settings)

        return self._lazy.get("graph", build)

    @property
    def events(self) -> EventGateway:
        """The Graph client serves events too (one connection pool); a test may give its own."""

        def build() -> EventGateway:
            from shared.adapters.graph import GraphClient

            graph = self.graph
            return graph if isinstance(graph, GraphClient) else GraphClient(self.settings)

        return self._lazy.get("events", build)

    @property
    def email_templates(self) -> TemplateStore:
        return self._lazy.get("email_templates", lambda: self.storage.email_templates)

    @property
    def emails(self) -> EmailLedger:
        return self._lazy.get("emails", lambda: self.storage.emails)

    @property
    def email_pacing(self) -> PacingStore:
        return self._lazy.get("email_pacing", lambda: self.storage.email_pacing)

    @property
    def mail(self) -> MailGateway:
        """The Graph client sends and reads mail too (one connection pool and mailbox limiter)."""

        def build() -> MailGateway:
            from shared.adapters.graph import GraphClient

            graph = self.graph
            return graph if isinstance(graph, GraphClient) else GraphClient(self.settings)

        return self._lazy.get("mail", build)

    @property
    def probe(self) -> ReachabilityProbe:
        def build() -> ReachabilityProbe:
            from shared.adapters.probe import HttpProbe

            return HttpProbe(timeout=min(self.settings.http_timeout_seconds, 5.0))

        return self._lazy.get("probe", build)


_container: Container | None = None
_container_lock = threading.Lock()


def get_container() -> Container:
    """The worker's container, built from the environment on the first invocation.

    That first build is the app's start-up on Functions (importing function_app.py reads no setting, so
    indexing never fails on configuration): it refuses to build while a required setting is missing,
    raising ``NotConfigured`` naming every missing one (HTTP answers 503, triggers fail and log it) on
    each invocation until the settings are fixed; and it configures OpenTelemetry when
    APPLICATIONINSIGHTS_CONNECTION_STRING is set.
    """
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                settings = Settings.from_env()
                missing = settings.missing_required()
                if missing:
                    raise NotConfigured(missing)
                if settings.appinsights_connection_string:
                    from shared.adapters.telemetry import configure_telemetry

                    configure_telemetry(settings)
                _container = Container(settings)
    return _container


def set_container(container: Container | None) -> None:
    """Install a container (tests), or None to build a fresh one from the environment on next use."""
    global _container
    with _container_lock:
        _container = container
