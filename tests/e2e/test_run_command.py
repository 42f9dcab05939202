"""The README's run command serves /api/health (and the keyed details, storage healthy), logs one line per
request, and stops cleanly on Ctrl+C, saying so, within 3 seconds when idle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from devtools.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


STOP_SECONDS = 3


def test_run_command_serves_health_with_storage_healthy_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, cloud_port, console_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)  # the local key file goes here, not into the developer's home
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "devtools.stack", "--port", str(port)),
            *("--cloud-port", str(cloud_port), "--console-port", str(console_port)),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    banner = threading.Event()

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl+C stops everything."):
                banner.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        response = None
        while time.monotonic() < deadline:
            assert process.poll() is None, "".join(lines)
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None, "the run command did not serve in time"
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok"}  # anonymous: liveness only
        key = (ROOT / ".devdata" / "function-key").read_text().strip()
        details = httpx.get(f"http://127.0.0.1:{port}/api/health/details", headers={"x-functions-key": key}, timeout=10)
        assert details.status_code == 200, details.text
        body = details.json()
        assert body["status"] == "healthy"
        assert body["checks"]["storage"]["ok"] is True
        assert body["checks"]["key_source"]["ok"] is True
        # Everything is up once the banner is out (the console starts after the host answers).
        assert banner.wait(timeout=max(1.0, deadline - time.monotonic())), "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            reader.join(timeout=10)
            pytest.fail(f"the run command did not stop within {STOP_SECONDS} s of Ctrl+C:\n{''.join(lines)}")
        reader.join(timeout=10)
    output = "".join(lines)
    assert process.returncode == 0, output
    assert "stopping..." in output
    assert "GET /api/health/details 200 " in output  # the access line, without the key
    assert key not in output
    assert "http_logging_policy" not in output  # the Azure SDK's header dumps stay below WARNING
    # host.json's queue options, as `func start` reads them (not the platform's one-minute default).
    assert "polls 'graph-notifications' (when idle at least every 2 s, maxPollingInterval)" in output
    # The banner in one piece, after start-up's log lines: nothing between its first and last line.
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Azurite (storage)"))
    last = lines.index("Ctrl+C stops everything.")
    assert all(" INFO " not in line and " WARNING " not in line for line in lines[first : last + 1]), lines[first:last]
