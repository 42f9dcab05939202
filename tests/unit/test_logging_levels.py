"""Deployed logging: one request line per invocation from the host, the Azure SDKs at WARNING."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_app_puts_the_azure_sdks_and_httpx_at_warning_but_not_the_app() -> None:
    # The Python worker sets its root logger to DEBUG and lets host.json filter; host.json only sees
    # "Function.<name>.User" for everything a Python invocation logs, so the SDKs' levels are the app's job.
    probe = (
        "import json, logging; logging.getLogger().setLevel(logging.DEBUG); import function_app; "
        "names = ['azure.core.pipeline.policies.http_logging_policy', 'azure.data.tables', 'azure.identity', "
        "'httpx', 'shared.scheduling.availability', 'functions.booking']; "
        "print(json.dumps({n: logging.getLogger(n).isEnabledFor(logging.INFO) for n in names}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    enabled = json.loads(out.stdout.strip().splitlines()[-1])
    assert enabled == {
        "azure.core.pipeline.policies.http_logging_policy": False,
        "azure.data.tables": False,
        "azure.identity": False,
        "httpx": False,
        "shared.scheduling.availability": True,
        "functions.booking": True,
    }


def test_host_json_keeps_one_request_row_per_invocation_and_drops_the_host_s_chatter() -> None:
    levels = json.loads((ROOT / "host.json").read_text())["logging"]["logLevel"]
    # One requests row per invocation and the aggregated counts; no "Executing"/"Executed" pair
    # ("Function" at Warning). The app's own lines reach Application Insights through the worker's
    # OpenTelemetry exporter (telemetryMode OpenTelemetry), where the Python loggers' levels decide.
    assert levels["Host.Results"] == levels["Host.Aggregator"] == "Information"
    assert levels["default"] == levels["Function"] == "Warning"
    # The host's internals, the language worker's per-invocation lines and the .NET Azure SDKs' event-source
    # logs (categories "Azure.Core", "Azure.Storage..." in the host process) stay at Warning.
    assert levels["Host"] == levels["Worker"] == levels["Microsoft"] == levels["Azure"] == "Warning"
