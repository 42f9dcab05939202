"""Fixtures for tests of the local Microsoft cloud: one HTTPS cloud per test session, a fresh world per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools.cloud import controls
from devtools.cloud.server import RunningCloud, start_cloud
from devtools.cloud.state import World

TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """The cloud on a free loopback port; the test process trusts its CA for as long as it runs."""
    running = start_cloud(data_dir=tmp_path_factory.mktemp("cloud"))
    saved = {name: os.environ.get(name) for name in TRUST_VARIABLES}
    for name in TRUST_VARIABLES:
        os.environ[name] = str(running.ca_bundle)
    try:
        yield running
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        running.stop()


@pytest.fixture
def world(cloud: RunningCloud) -> World:
    """The running cloud's world, back in its fixture state."""
    controls.reset_world(cloud.world)
    return cloud.world
