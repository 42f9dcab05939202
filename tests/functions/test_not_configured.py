"""The app refuses to start without its required settings: at the first invocation (importing
function_app.py reads no setting), every function answers 503 naming all the missing settings."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from functions import health, oauth_callback
from shared.bootstrap import get_container, set_container
from shared.config import APP_SETTINGS, HOST_SETTINGS
from shared.errors import NotConfigured
from tests.kit import error_of, request


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*APP_SETTINGS, *HOST_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLIENT_ID", "00000000-0000-0000-0000-000000000001")
    set_container(None)
    yield
    set_container(None)


def test_missing_settings_answer_503_naming_each_one(
    bare_environment: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = health.health(request("GET", "http://localhost/api/health"))
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "not_configured"
    assert error["missing_settings"] == ["CLIENT_SECRET", "RENEWAL_SCHEDULE"]
    assert "CLIENT_SECRET, RENEWAL_SCHEDULE" in error["message"]
    assert "CLIENT_SECRET, RENEWAL_SCHEDULE" in caplog.text  # the operator's log names them too
    me = oauth_callback.me(request("GET", "http://localhost/api/me"))
    assert me.status_code == 503 and error_of(me)["code"] == "not_configured"


def test_triggers_fail_with_the_same_message_until_the_settings_are_set(
    bare_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NotConfigured, match="CLIENT_SECRET, RENEWAL_SCHEDULE"):
        get_container()
    monkeypatch.setenv("CLIENT_SECRET", "value")
    monkeypatch.setenv("RENEWAL_SCHEDULE", "0 0 */6 * * *")
    assert get_container().settings.client_secret == "value"  # checked again at the next invocation


def test_importing_the_app_reads_no_setting_and_imports_no_telemetry() -> None:
    code = (
        "import sys\n"
        "import function_app\n"
        "assert 'azure.monitor.opentelemetry' not in sys.modules\n"
        "assert 'opentelemetry.sdk' not in sys.modules\n"
        "print(len(function_app.app.get_functions()))\n"
    )
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout.strip()) > 10
