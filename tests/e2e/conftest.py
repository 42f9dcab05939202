"""The whole app on the local host, against the session's Azurite and local Microsoft cloud.

Each test gets the cloud back in its fixture state, a fresh table prefix and a
fresh composition root, so tests share nothing but the running processes (the ``stack`` fixture, in
tests/conftest.py, shared with the contract test).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

from shared.bootstrap import set_container
from tests.conftest import Stack

__all__ = ["Stack"]


@pytest.fixture
def e2e(stack: Stack, caplog: pytest.LogCaptureFixture) -> Iterator[Stack]:
    from devtools.cloud import controls
    from shared.sync.subscriptions import forget_worker_memory

    controls.reset_world(stack.world)
    forget_worker_memory()  # which mailboxes this worker saw subscribed: not this test's tables
    os.environ["TABLE_PREFIX"] = "e2e" + uuid.uuid4().hex[:10]
    set_container(None)
    caplog.set_level(logging.DEBUG)
    yield stack
    os.environ.pop("TABLE_PREFIX", None)
    set_container(None)
