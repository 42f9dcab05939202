"""Fixtures shared by every suite: one Azurite and one local Microsoft cloud per test session.

Both start on free loopback ports, so a developer's running stack does not interfere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from devtools.azurite import Azurite, free_port, start_azurite

if TYPE_CHECKING:
    from devtools.cloud.server import RunningCloud

TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite(blob_port=free_port(), queue_port=free_port(), table_port=free_port())
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    """The local cloud over HTTPS; the test process trusts its CA for as long as it runs."""
    from devtools.cloud.server import start_cloud

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
