"""Fixtures for the local host tests: queue helpers over the session's Azurite (tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def queue_name() -> str:
    """A fresh queue name per test, so tests never see each other's messages."""
    return f"host-test-{uuid.uuid4().hex[:12]}"
