"""The whole app on the local host, against the session's Azurite and local Microsoft cloud.

Each test gets the cloud back in its fixture state, a fresh table prefix and a
fresh composition root, so tests share nothing but the running processes.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.azurite import Azurite, free_port
from devtools.stack import service_settings
from shared.bootstrap import set_container
from tests.e2e.browser import Browser
from tests.kit import FUNCTION_KEY


@dataclass
class Stack:
    base_url: str
    cloud: Any
    azurite: Azurite
    settings: dict[str, str]

    @property
    def world(self) -> Any:
        return self.cloud.world

    def browser(self) -> Browser:
        return Browser(self.base_url, ca_bundle=str(self.cloud.ca_bundle))


@pytest.fixture(scope="session")
def stack(azurite: Azurite, cloud: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import function_app
    from devtools.host.config import HostOptions
    from devtools.host.runner import start_host

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    key_dir: Path = tmp_path_factory.mktemp("keys")
    key_dir.chmod(0o700)
    settings = service_settings(
        authority_host=cloud.authority_host,
        graph_url=cloud.graph_url,
        ca_bundle=str(cloud.ca_bundle),
        storage=azurite.connection_string,
        public_base_url=base_url,
        key_file=str(key_dir / "token-keys.json"),
        function_key=FUNCTION_KEY,
    )
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    set_container(None)
    function_app.app.functions_bindings = {}  # index afresh (other suites may have indexed this app)
    # host.json's options, as the real host reads them (queue polling every 2 s at most, 5 dequeues).
    options = HostOptions.load(Path(function_app.__file__).resolve().parent)
    host = start_host(function_app.app, settings=settings, port=port, options=options)
    try:
        yield Stack(base_url=base_url, cloud=cloud, azurite=azurite, settings=settings)
    finally:
        host.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        set_container(None)


@pytest.fixture
def e2e(stack: Stack, caplog: pytest.LogCaptureFixture) -> Iterator[Stack]:
    from devtools.cloud import controls
    from shared.subscriptions import forget_worker_memory

    controls.reset_world(stack.world)
    forget_worker_memory()  # which mailboxes this worker saw subscribed: not this test's tables
    os.environ["TABLE_PREFIX"] = "e2e" + uuid.uuid4().hex[:10]
    set_container(None)
    caplog.set_level(logging.DEBUG)
    yield stack
    os.environ.pop("TABLE_PREFIX", None)
    set_container(None)
