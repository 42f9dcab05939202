"""Composition root: the one place that builds adapters from Settings.

Handlers call ``get_container()``; nothing is built at import time. Each
dependency is built on first use and kept for the life of the worker process.
Tests build a ``Container`` with fakes through keyword overrides and install it
with ``set_container``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.config import Settings

T = TypeVar("T")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Container:
    """Lazily built dependencies. Pass any of them as keyword overrides (fakes in tests)."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self._settings = settings
        self._built: dict[str, Any] = dict(overrides)
        self._lock = threading.RLock()

    def _get(self, name: str, factory: Callable[[], T]) -> T:
        if name in self._built:
            return self._built[name]  # type: ignore[no-any-return]
        with self._lock:
            if name not in self._built:
                self._built[name] = factory()
            return self._built[name]  # type: ignore[no-any-return]

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = Settings.from_env()
        return self._settings

    @property
    def clock(self) -> Any:
        return self._get("clock", SystemClock)

    @property
    def key_source(self) -> Any:
        def build() -> Any:
            from shared.adapters.keys import build_key_source

            return build_key_source(self.settings)

        return self._get("key_source", build)

    @property
    def cipher(self) -> Any:
        def build() -> Any:
            from shared.adapters.crypto import AesGcmCipher

            return AesGcmCipher(self.key_source)

        return self._get("cipher", build)

    @property
    def storage(self) -> Any:
        def build() -> Any:
            from shared.adapters.tables import TableStorage

            return TableStorage.from_settings(self.settings, cipher=self.cipher, clock=self.clock)

        return self._get("storage", build)

    def _store(self, name: str) -> Any:
        return self._get(name, lambda: getattr(self.storage, name))

    @property
    def tenants(self) -> Any:
        return self._store("tenants")

    @property
    def users(self) -> Any:
        return self._store("users")

    @property
    def token_caches(self) -> Any:
        return self._store("token_caches")

    @property
    def flows(self) -> Any:
        return self._store("flows")

    @property
    def sessions(self) -> Any:
        return self._store("sessions")

    @property
    def bookings(self) -> Any:
        return self._store("bookings")

    @property
    def subscriptions(self) -> Any:
        return self._store("subscriptions")

    @property
    def identity(self) -> Any:
        def build() -> Any:
            from shared.adapters.identity import MsalIdentity

            return MsalIdentity(self.settings)

        return self._get("identity", build)

    @property
    def graph(self) -> Any:
        def build() -> Any:
            from shared.adapters.graph import GraphClient

            return GraphClient(self.settings)

        return self._get("graph", build)

    @property
    def probe(self) -> Any:
        def build() -> Any:
            from shared.adapters.probe import HttpProbe

            return HttpProbe(timeout=min(self.settings.http_timeout_seconds, 5.0))

        return self._get("probe", build)


_container: Container | None = None
_container_lock = threading.Lock()


def get_container() -> Container:
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                _container = Container()
    return _container


def set_container(container: Container | None) -> None:
    """Install a container (tests), or None to build a fresh one from the environment on next use."""
    global _container
    with _container_lock:
        _container = container
