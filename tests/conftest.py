"""Fixtures shared by every suite: one Azurite and one local Microsoft cloud per test session.

Both start on free loopback ports, so a developer's running stack does not interfere.

``--today DATE`` (or ``CALENDAR_TEST_TODAY=DATE``) runs the whole session as if the machine's clock
said that date: it sets ``CLOCK_OFFSET_SECONDS``, which the service's clock (``shared.bootstrap``)
and the local cloud's (``devtools.cloud.state.utcnow``) both honour, once for the whole run. A date
keeps the machine's time of day; a full ISO 8601 instant with its offset pins the moment as well.
Tests read that clock through ``tests.kit.stack_now``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devtools.azurite import Azurite, free_port, start_azurite

if TYPE_CHECKING:
    from devtools.cloud.server import RunningCloud
    from tests.e2e.browser import Browser

TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
TODAY_VARIABLE = "CALENDAR_TEST_TODAY"
CLOCK_OFFSET_VARIABLE = "CLOCK_OFFSET_SECONDS"  # read by shared/config.py and devtools/cloud/state.py


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--busy-cache-queries",
        type=int,
        default=40,
        help="random queries of the busy cache differential test (tests/e2e/test_busy_cache.py); 1000: the full run",
    )
    parser.addoption(
        "--today",
        default=os.environ.get(TODAY_VARIABLE) or None,
        help=f"run as if today were this date (YYYY-MM-DD, or an ISO 8601 instant); default ${TODAY_VARIABLE}",
    )


def _pinned_moment(value: str, now: datetime) -> datetime:
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), now.timetz())
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise pytest.UsageError(f"--today {value!r}: expected YYYY-MM-DD or an ISO 8601 instant") from None
    if moment.tzinfo is None:
        raise pytest.UsageError(f"--today {value!r}: an instant needs its UTC offset (Z or +hh:mm)")
    return moment


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--today")
    if not value:
        return
    now = datetime.now(UTC)
    offset = (_pinned_moment(value, now) - now).total_seconds()
    # Set once, before any service or cloud starts, so every clock of the run agrees.
    os.environ[CLOCK_OFFSET_VARIABLE] = repr(round(offset, 3))


def pytest_report_header(config: pytest.Config) -> str | None:
    offset = os.environ.get(CLOCK_OFFSET_VARIABLE)
    if not offset:
        return None
    from tests.kit import stack_now

    return f"clock: {stack_now().isoformat(timespec='seconds')} ({CLOCK_OFFSET_VARIABLE}={offset})"


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
        from tests.e2e.browser import Browser

        return Browser(self.base_url, ca_bundle=str(self.cloud.ca_bundle))


@pytest.fixture(scope="session")
def stack(azurite: Azurite, cloud: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole app on the local host, over the session's Azurite and local cloud (tests/e2e, tests/contract)."""
    import function_app
    from devtools.host.config import HostOptions
    from devtools.host.runner import start_host
    from devtools.stack import service_settings
    from shared.bootstrap import set_container
    from tests.kit import FUNCTION_KEY

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
