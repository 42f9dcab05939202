"""Fixtures for the local host tests: an Azurite of their own on free ports, and queue helpers."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests import the host from the project root whichever way pytest is started.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.azurite import Azurite, free_port, start_azurite  # noqa: E402


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite(blob_port=free_port(), queue_port=free_port(), table_port=free_port())
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def queue_name() -> str:
    """A fresh queue name per test, so tests never see each other's messages."""
    return f"host-test-{uuid.uuid4().hex[:12]}"
