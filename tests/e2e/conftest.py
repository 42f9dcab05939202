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
from typing import Any

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


@pytest.fixture
def console(e2e: Stack, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """The console in front of the test stack, and the service configured with it as its public origin
    (the local cloud's controls offered, as on the local stack)."""
    from devtools.console.app import ConsoleConfig
    from devtools.console.server import start_console
    from shared.sync.subscriptions import forget_worker_memory
    from tests.kit import FUNCTION_KEY

    for name in ("selenium", "urllib3"):  # the driver's wire protocol, not the app's log
        caplog.set_level(logging.INFO, logger=name)
    running = start_console(
        ConsoleConfig(
            service_url=e2e.base_url,
            function_key=FUNCTION_KEY,
            tenant_hint="contoso.example",
            poll_seconds=1,
            local_cloud_url=e2e.cloud.base_url,
            local_ca_bundle=str(e2e.cloud.ca_bundle),
        ),
        public_host="127.0.0.1",
    )
    changed = {
        "PUBLIC_BASE_URL": running.base_url,
        "ALLOWED_RETURN_URLS": ",".join(f"{running.base_url}{p}" for p in ("/", "/availability", "/bookings")),
    }
    saved = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    set_container(None)
    # Each test starts from fresh tables: this worker must not remember an earlier test's subscriptions.
    forget_worker_memory()
    try:
        yield running
    finally:
        running.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        set_container(None)
