"""openapi.yaml against the running app: schemathesis over every operation, with every check but one.

The app runs on the local host over the session's Azurite and local Microsoft cloud (the ``stack``
fixture), for a consented tenant with an Interviews mailbox and a signed-in recruiter. The run is
deterministic (a fixed seed, deterministic generation) and bounded: CONTRACT_MAX_EXAMPLES examples per
operation (25 by default; raise it for a deeper run). Its configuration, with the reason for every check
turned off for an operation, is tests/contract/schemathesis.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.kit import FUNCTION_KEY

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Every check schemathesis has; what is relaxed for an operation says why in schemathesis.toml.
CHECKS = ("all",)
# The API's one DELETE cancels the interview (attendees are told) and the booking stays readable as
# `cancelled`, its history the record of what happened: a read after it is 200 by design, not a use after
# free. A stateful check, so it cannot be relaxed for one operation.
EXCLUDED = ("use_after_free",)


def test_every_operation_keeps_the_contract(stack: Stack, signed_in: str, tmp_path: Path) -> None:
    examples = os.environ.get("CONTRACT_MAX_EXAMPLES", "25")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        str(ROOT / "openapi.yaml"),
        "--url",
        f"{stack.base_url}/api",
        "--checks",
        ",".join(CHECKS),
        "--exclude-checks",
        ",".join(EXCLUDED),
        "--max-examples",
        examples,
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    environment = {**os.environ, "CONTRACT_FUNCTION_KEY": FUNCTION_KEY, "CONTRACT_SESSION": signed_in}
    run = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1800)
    output = tmp_path / "schemathesis.txt"
    output.write_text(run.stdout + run.stderr)
    assert run.returncode == 0, f"{output} holds the whole report; its end:\n{(run.stdout + run.stderr)[-20000:]}"
