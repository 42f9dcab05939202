"""Tests of the local Graph in process: here ``world`` and ``client`` are the in-process Graph's own."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from devtools.cloud.state import World


@pytest.fixture
def world(graph_world: World) -> World:
    return graph_world


@pytest.fixture
def client(graph_client: TestClient) -> TestClient:
    return graph_client
