"""Fixtures for tests of the local Microsoft cloud: the session's cloud (tests/conftest.py), a fresh world
per test, a webhook receiver, and the local Graph in process on a world of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from devtools.cloud import controls
from devtools.cloud.graph.testing import graph_app
from devtools.cloud.seed import load_world
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from tests.cloud.subscriptions_support import Receiver


@pytest.fixture
def world(cloud: RunningCloud) -> World:
    """The running cloud's world, back in its fixture state."""
    controls.reset_world(cloud.world)
    return cloud.world


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver of change notifications, running for this test."""
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def graph_world() -> World:
    """A world in its fixture state, of this test alone (not the session cloud's)."""
    return load_world()


@pytest.fixture
def graph_client(graph_world: World) -> Iterator[TestClient]:
    """The local Graph in process, on ``graph_world``."""
    with TestClient(graph_app(graph_world), base_url="https://graph.local") as test_client:
        yield test_client
