from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.bootstrap import Container, set_container
from tests.unit.fakes import FakeDeps


@pytest.fixture
def deps() -> Iterator[FakeDeps]:
    """Fakes installed as the handlers' container."""
    fakes = FakeDeps()
    container = Container(
        fakes.settings,
        **{
            name: getattr(fakes, name)
            for name in (
                "clock",
                "cipher",
                "tenants",
                "users",
                "sessions",
                "bookings",
                "token_caches",
                "flows",
                "identity",
                "graph",
            )
        },
    )
    set_container(container)
    yield fakes
    set_container(None)
