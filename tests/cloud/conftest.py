"""Fixtures for tests of the local Microsoft cloud: the session's cloud (tests/conftest.py), a fresh world per test."""

from __future__ import annotations

import pytest

from devtools.cloud import controls
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World


@pytest.fixture
def world(cloud: RunningCloud) -> World:
    """The running cloud's world, back in its fixture state."""
    controls.reset_world(cloud.world)
    return cloud.world
