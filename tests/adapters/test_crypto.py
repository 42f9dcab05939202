"""Local key file source, the key-source factory and cold-start imports."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shared.adapters import keys as keys_module
from shared.adapters.crypto import AesGcmCipher
from shared.adapters.keys import (
    KeyVaultKeySource,
    LocalKeyFileSource,
    build_key_source,
    create_local_key_file,
    rotate_local_key,
)
from shared.config import Settings
from shared.errors import ConfigurationError, TokenIntegrityError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # The warning is once per process; each test here acts as a fresh process.
    monkeypatch.setattr(keys_module, "_warned_local", False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_created_on_first_use_private_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config" / "interview-calendar" / "token-keys.json"
    source = LocalKeyFileSource(path)
    assert not path.exists()  # nothing happens at construction

    with caplog.at_level(logging.WARNING, logger="shared.adapters.keys"):
        version, key = source.current()
        source.current()
        LocalKeyFileSource(path).current()
        cipher = AesGcmCipher(source)
        cipher.decrypt(cipher.encrypt(b"x", tenant_id="t", record_id="r"), tenant_id="t", record_id="r")

    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    doc = json.loads(path.read_text())
    assert doc["current"] == version and set(doc["keys"]) == {version}
    assert len(key) == 32
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "KEY_VAULT_URL is not set" in warnings[0].getMessage() and str(path) in warnings[0].getMessage()
    assert doc["keys"][version] not in caplog.text


@pytest.mark.parametrize("loose_mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_group_or_others_is_refused(tmp_path: Path, loose_mode: int) -> None:
    path = tmp_path / "token-keys.json"
    create_local_key_file(path)
    os.chmod(path, loose_mode)
    with pytest.raises(ConfigurationError, match="chmod 600") as caught:
        LocalKeyFileSource(path).current()
    assert json.loads(path.read_text())["keys"].popitem()[1] not in caught.value.message


def test_malformed_key_file_is_a_configuration_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "token-keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b'{"current": "a", "keys": {"a": "c2hvcnQ="}}')
    os.close(fd)
    with pytest.raises(ConfigurationError, match="32 random bytes") as caught:
        LocalKeyFileSource(path).current()
    assert str(path) in caught.value.message


def test_concurrent_first_use_creates_exactly_one_key(tmp_path: Path) -> None:
    path = tmp_path / "token-keys.json"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        results.append(LocalKeyFileSource(path).current()[0])

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["token-keys.json"]  # no temp files left


def test_rotation_adds_a_current_version_and_old_records_still_decrypt(tmp_path: Path) -> None:
    path = tmp_path / "token-keys.json"
    source = LocalKeyFileSource(path)
    cipher = AesGcmCipher(source)
    old = cipher.encrypt(b"secret", tenant_id="t", record_id="r")
    old_version = source.current()[0]

    new_version = rotate_local_key(path)

    assert new_version != old_version
    assert mode(path) == 0o600
    assert source.current()[0] == new_version  # the running source sees the rotated file
    assert not cipher.is_current(old)
    assert cipher.decrypt(old, tenant_id="t", record_id="r") == b"secret"
    assert cipher.encrypt(b"secret", tenant_id="t", record_id="r").startswith(f"v1.{new_version}.")
    assert set(json.loads(path.read_text())["keys"]) == {old_version, new_version}


def test_rotation_done_by_another_process_is_picked_up_for_decryption(tmp_path: Path) -> None:
    path = tmp_path / "token-keys.json"
    writer, reader = LocalKeyFileSource(path), LocalKeyFileSource(path)
    reader.current()
    rotate_local_key(path)
    token = AesGcmCipher(writer).encrypt(b"v", tenant_id="t", record_id="r")
    assert AesGcmCipher(reader).decrypt(token, tenant_id="t", record_id="r") == b"v"
    with pytest.raises(TokenIntegrityError, match="unknown key version"):
        reader.get("not-a-version")


def test_rotate_command_line(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token-keys.json"
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "shared.adapters.keys", "rotate", "--file", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "current version is now" in done.stdout
    doc = json.loads(path.read_text())
    assert len(doc["keys"]) == 2 and doc["current"] in doc["keys"]
    for encoded in doc["keys"].values():
        assert encoded not in done.stdout + done.stderr


def test_rotate_command_refuses_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "token-keys.json"
    create_local_key_file(path)
    os.chmod(path, 0o644)
    done = subprocess.run(
        [sys.executable, "-m", "shared.adapters.keys", "rotate", "--file", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "chmod 600" in done.stderr


def test_factory_picks_key_vault_only_when_its_url_is_set_and_memoizes_per_process(tmp_path: Path) -> None:
    local = Settings(local_key_file=str(tmp_path / "k.json"))
    vault = Settings(key_vault_url="https://myvault.vault.azure.net/", token_key_secret_name="token-key")
    assert isinstance(build_key_source(local), LocalKeyFileSource)
    assert build_key_source(local) is build_key_source(Settings(local_key_file=str(tmp_path / "k.json")))
    assert isinstance(build_key_source(vault), KeyVaultKeySource)
    assert build_key_source(vault) is build_key_source(vault)
    assert not (tmp_path / "k.json").exists()  # building does no I/O


def test_importing_the_crypto_adapters_does_not_import_azure_identity_or_key_vault() -> None:
    code = (
        "import sys, shared.adapters.crypto, shared.adapters.keys;"
        "bad = [m for m in sys.modules if m.startswith(('azure.identity', 'azure.keyvault', 'msal'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
