"""Settings: every key documented, clear errors for missing or malformed values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.config import Settings
from shared.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def keys_read_by_settings() -> set[str]:
    source = (ROOT / "shared" / "config.py").read_text()
    return set(re.findall(r'(?:opt|num|env\.get)\("([A-Za-z_]+)"', source))


def test_every_setting_is_in_the_sample_and_the_operations_guide() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    guide = (ROOT / "docs" / "operations.md").read_text()
    keys = keys_read_by_settings()
    assert {"AUTHORITY_HOST", "GRAPH_BASE_URL", "AzureWebJobsStorage", "KEY_VAULT_URL"} <= keys
    for key in keys:
        assert key in sample["Values"], key
        assert key in sample["Comments"], key
        assert f"`{key}`" in guide, key


def test_defaults_point_at_microsoft_and_azurite() -> None:
    settings = Settings.from_env({})
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.storage_connection == "UseDevelopmentStorage=true"
    assert settings.key_vault_url is None


def test_missing_required_setting_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match="CLIENT_ID"):
        Settings.from_env({}).require("CLIENT_ID")


def test_malformed_number_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match="SESSION_TTL_SECONDS"):
        Settings.from_env({"SESSION_TTL_SECONDS": "eight hours"})


def test_secret_is_not_in_the_repr() -> None:
    assert "s3cr3t-value" not in repr(Settings.from_env({"CLIENT_SECRET": "s3cr3t-value"}))


class _Recording(dict[str, str]):
    """An environment that records every name read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)


def test_settings_read_exactly_the_one_list_of_settings() -> None:
    from shared.config import APP_SETTINGS

    env = _Recording()
    Settings.from_env(env)
    assert env.read == set(APP_SETTINGS)
    assert keys_read_by_settings() == set(APP_SETTINGS)


def test_storage_by_identity_when_only_service_uris_are_given() -> None:
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
            "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net/",
            "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net/",
        }
    )
    assert settings.storage_by_identity
    assert settings.storage_connection == ""
    assert settings.storage_table_uri == "https://st.table.core.windows.net/"
    # A connection string, when given, wins (local runs against Azurite).
    assert not Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).storage_by_identity


def test_identity_storage_needs_both_service_uris() -> None:
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage__tableServiceUri"):
        Settings.from_env({"AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net/"})


def test_missing_required_settings_are_all_named() -> None:
    assert Settings.from_env({}).missing_required() == ("CLIENT_ID", "CLIENT_SECRET", "RENEWAL_SCHEDULE")
    assert Settings.from_env({"CLIENT_ID": "x", "CLIENT_SECRET": "y"}).missing_required() == ("RENEWAL_SCHEDULE",)


def test_the_app_insights_connection_string_is_not_in_the_repr() -> None:
    settings = Settings.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=abc-123"})
    assert "abc-123" not in repr(settings)


def test_the_clock_offset_moves_the_service_s_clock_and_a_malformed_one_names_the_key() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.bootstrap import Container

    assert Settings.from_env({}).clock_offset_seconds == 0.0
    back = Container(Settings.from_env({"CLOCK_OFFSET_SECONDS": "-86400"})).clock.now()
    assert abs(back - (datetime.now(UTC) - timedelta(days=1))) < timedelta(minutes=1)
    for bad in ("tomorrow", "inf", "nan"):
        with pytest.raises(ConfigurationError, match="CLOCK_OFFSET_SECONDS"):
            Settings.from_env({"CLOCK_OFFSET_SECONDS": bad})
