"""``python -m devtools.host`` end to end: project folder, settings precedence, clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devtools.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]

APP_SOURCE = """
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="setting/{name}")
def setting(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(os.environ.get(req.route_params["name"], "<unset>"))
"""


def start(project: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.host", "--project-dir", str(project), "--port", str(port)],
        cwd=ROOT,
        # Only the machine's basics: settings other suites put in this process's environment must not
        # override the project's local.settings.json (the environment wins, as under Core Tools).
        env={
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
            **env,
            "PYTHONPATH": str(ROOT),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until_serving(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the host did not start")


def test_cli_serves_the_project_app_with_local_settings_and_stops_cleanly(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(APP_SOURCE)
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}}))
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"FUNCTION_KEY": "cli-key", "COLOUR": "blue", "SIZE": "small"}})
    )
    port = free_port()
    process = start(tmp_path, port, {"SIZE": "large"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/v1/setting/COLOUR", process)
        key = {"x-functions-key": "cli-key"}
        assert httpx.get(f"{base}/v1/setting/COLOUR", headers=key).text == "blue"
        assert httpx.get(f"{base}/v1/setting/SIZE", headers=key).text == "large"  # the environment wins
        assert httpx.get(f"{base}/v1/setting/COLOUR").status_code == 401
        assert httpx.get(f"{base}/api/setting/COLOUR", headers=key).status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "Stopped." in output
    assert "cli-key" not in output


def test_cli_refuses_an_app_it_cannot_serve_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.timer_trigger(arg_name='t', schedule='%MISSING%')\n"
        "def t(t: func.TimerRequest) -> None:\n"
        "    return None\n"
    )
    process = start(tmp_path, free_port(), {})
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "refers to the app setting 'MISSING', which is not set" in output
