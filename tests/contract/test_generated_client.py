"""A client generated from openapi.yaml (openapi-python-client) works unchanged against the running app.

The client is generated once per module into a temporary directory and imported from there; the test then
books, reads, moves and cancels an interview through nothing but the generated API functions and models.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import Stack
from tests.kit import KEY, interview_slot

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "client"
ALEX = "alex.wilber@contoso.example"
INTERVIEWS = "interviews@contoso.example"
# openapi-python-client 0.29.1 cannot name the inline item schemas of Explanation, a nullable object
# (`type: [object, "null"]`) holding an array of inline objects: it tries to build the same model twice
# and drops the schema (openapi-generators/openapi-python-client#1375). The document is valid OpenAPI 3.1;
# the availability answer's `explanation` is left out of the generated models. Any other schema the
# generator drops fails the test.
KNOWN_DROPPED = {"reasons_item", "/components/schemas/Explanation_type_0"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable as ``client`` for the module's tests."""
    target = tmp_path_factory.mktemp("generated")
    executable = Path(sys.executable).with_name("openapi-python-client")
    command = [
        str(executable),
        "generate",
        "--path",
        str(ROOT / "openapi.yaml"),
        "--output-path",
        str(target / PACKAGE),
        "--meta",
        "none",
    ]
    # The generator's post hooks run ruff from PATH: the virtual environment's own.
    environment = {**os.environ, "PATH": f"{executable.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(command, cwd=target, env=environment, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    dropped = set(re.findall(r"Unable to process schema (\S+):", output))
    assert dropped <= KNOWN_DROPPED, output
    assert "Cannot parse" not in output and "WARNING parsing" not in output, output
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(target))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


_slot = interview_slot


def _api(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.default.{name}")


def test_a_generated_client_books_reads_moves_and_cancels(stack: Stack, signed_in: str, generated: ModuleType) -> None:
    from client import AuthenticatedClient  # type: ignore[import-not-found]
    from client.models import (  # type: ignore[import-not-found]
        Booking,
        BookingChange,
        BookingRequest,
        BookingRequestCandidateType0,
        BookingStatus,
    )

    assert generated.AuthenticatedClient is AuthenticatedClient
    # A copy: the generated client writes its Authorization header into the dict it is given.
    api = AuthenticatedClient(base_url=f"{stack.base_url}/api", token=signed_in, headers=dict(KEY))
    start, end = _slot()
    request = BookingRequest(
        start=start,
        end=end,
        interviewers=[ALEX],
        candidate=BookingRequestCandidateType0(name="Sam Candidate", email="sam@example.org"),
        subject="Interview: Sam Candidate",
        online_meeting=True,
        calendar="interviews",
    )
    with api:
        created = _api("booking_create").sync_detailed(client=api, body=request, idempotency_key=str(uuid.uuid4()))
        assert created.status_code == 201, created.content
        booked = created.parsed
        assert isinstance(booked, Booking)
        assert booked.status == BookingStatus.BOOKED
        assert (booked.start, booked.end) == (start, end)
        assert booked.organizer == INTERVIEWS and booked.calendar == "interviews"
        assert booked.subject == "Interview: Sam Candidate"
        assert booked.join_url and booked.etag and booked.event_id
        assert {a.email for a in booked.attendees} == {ALEX, "sam@example.org"}

        read = _api("booking_get").sync_detailed(booked.id, client=api)
        assert read.status_code == 200, read.content
        assert isinstance(read.parsed, Booking)
        assert (read.parsed.id, read.parsed.etag, read.parsed.start) == (booked.id, booked.etag, start)
        assert read.parsed.status == BookingStatus.BOOKED

        new_start, new_end = _slot(days=22, hour=22)
        change = BookingChange(start=new_start, end=new_end)
        moved = _api("booking_update").sync_detailed(booked.id, client=api, body=change, if_match=booked.etag)
        assert moved.status_code == 200, moved.content
        assert isinstance(moved.parsed, Booking)
        assert moved.parsed.status == BookingStatus.BOOKED
        assert (moved.parsed.start, moved.parsed.end) == (new_start, new_end)
        assert moved.parsed.etag and moved.parsed.etag != booked.etag
        assert moved.parsed.join_url == booked.join_url
        assert [h.action for h in moved.parsed.history] == ["created", "moved"]

        cancelled = _api("booking_cancel").sync_detailed(booked.id, client=api)
        assert cancelled.status_code == 200, cancelled.content
        assert isinstance(cancelled.parsed, Booking)
        assert cancelled.parsed.status == BookingStatus.CANCELLED
        assert cancelled.parsed.id == booked.id and cancelled.parsed.start == new_start

        again = _api("booking_get").sync(booked.id, client=api)
        assert isinstance(again, Booking) and again.status == BookingStatus.CANCELLED
