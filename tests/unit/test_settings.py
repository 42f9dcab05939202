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


def test_every_setting_is_in_the_sample_and_the_readme() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    readme = (ROOT / "README.md").read_text()
    keys = keys_read_by_settings()
    assert {"AUTHORITY_HOST", "GRAPH_BASE_URL", "AzureWebJobsStorage", "KEY_VAULT_URL"} <= keys
    for key in keys:
        assert key in sample["Values"], key
        assert key in sample["Comments"], key
        assert f"`{key}`" in readme, key


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


def test_the_clock_offset_moves_the_service_s_clock_and_a_malformed_one_names_the_key() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.bootstrap import Container

    assert Settings.from_env({}).clock_offset_seconds == 0.0
    back = Container(Settings.from_env({"CLOCK_OFFSET_SECONDS": "-86400"})).clock.now()
    assert abs(back - (datetime.now(UTC) - timedelta(days=1))) < timedelta(minutes=1)
    for bad in ("tomorrow", "inf", "nan"):
        with pytest.raises(ConfigurationError, match="CLOCK_OFFSET_SECONDS"):
            Settings.from_env({"CLOCK_OFFSET_SECONDS": bad})
