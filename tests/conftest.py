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
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pytest

from devtools.azurite import Azurite, free_port, start_azurite

if TYPE_CHECKING:
    from devtools.cloud.server import RunningCloud

TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
TODAY_VARIABLE = "CALENDAR_TEST_TODAY"
CLOCK_OFFSET_VARIABLE = "CLOCK_OFFSET_SECONDS"  # read by shared/config.py and devtools/cloud/state.py


def pytest_addoption(parser: pytest.Parser) -> None:
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
