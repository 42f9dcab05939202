from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.bootstrap import set_container
from tests.kit import FakeDeps, install


@pytest.fixture
def deps() -> Iterator[FakeDeps]:
    """Fakes installed as the handlers' container."""
    fakes = FakeDeps()
    install(fakes)
    yield fakes
    set_container(None)
