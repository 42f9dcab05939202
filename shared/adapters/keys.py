"""Key sources for the TokenCipher: a Key Vault secret in Azure, a local key file elsewhere.

``build_key_source(settings)`` picks Key Vault when ``KEY_VAULT_URL`` is set and
memoizes the source per process, so keys are fetched once per worker. The Azure SDKs
are imported on first fetch, not at import (cold start). Rotate the local file with
``python -m shared.adapters.keys rotate [--file PATH]``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.adapters.crypto import KEY_BYTES, KEY_VERSION_PATTERN, generate_key
from shared.config import Settings
from shared.errors import ConfigurationError, TokenIntegrityError, UpstreamUnavailable
from shared.ports import KeySource

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import HttpTransport
    from azure.keyvault.secrets import SecretClient

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 3600.0
# After a failed refresh the cached key stays in use; this spaces out the retries.
REFRESH_RETRY_SECONDS = 60.0


def _unknown_version(version: str) -> TokenIntegrityError:
    return TokenIntegrityError(f"Stored token is under unknown key version {version!r}.", reason="unknown_key_version")


def _decode_key(encoded: object, *, where: str) -> bytes:
    if not isinstance(encoded, str):
        raise ConfigurationError(f"{where} does not hold a base64 key.")
    try:
        key = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ConfigurationError(f"{where} is not valid base64.") from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{where} must be base64 of exactly {KEY_BYTES} random bytes.")
    return key


# ---------------------------------------------------------------------------------------------
# Local key file


_warning_lock = threading.Lock()
_warned_local = False


def _warn_local_once(path: Path) -> None:
    global _warned_local
    with _warning_lock:
        if _warned_local:
            return
        _warned_local = True
    logger.warning(
        "KEY_VAULT_URL is not set: token encryption keys come from the local key file %s. "
        "Use Key Vault for any shared or deployed environment.",
        path,
    )


def _new_key_file_body(versions: dict[str, str], current: str) -> bytes:
    return (json.dumps({"current": current, "keys": versions}, indent=2) + "\n").encode("utf-8")


def _write_private_temp(directory: Path, body: bytes) -> Path:
    """Write ``body`` to a new file readable only by its owner; O_EXCL so it is never someone else's file."""
    temp = directory / f".token-keys.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def _check_private(path: Path, st: os.stat_result) -> None:
    # POSIX modes only; on Windows the ACL of the profile folder protects the file.
    if os.name != "nt" and st.st_mode & 0o077:
        raise ConfigurationError(
            f"Key file {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"refusing to use it. Run: chmod 600 {path}",
            setting="LOCAL_KEY_FILE",
        )


def _parse_key_file(path: Path, raw: bytes) -> tuple[str, dict[str, bytes]]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigurationError(f"Key file {path} is not valid JSON.", setting="LOCAL_KEY_FILE") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or not isinstance(doc.get("current"), str):
        raise ConfigurationError(
            f'Key file {path} must look like {{"current": "<version>", "keys": {{"<version>": "<base64>"}}}}.',
            setting="LOCAL_KEY_FILE",
        )
    keys: dict[str, bytes] = {}
    for version, encoded in doc["keys"].items():
        if not KEY_VERSION_PATTERN.fullmatch(version):
            raise ConfigurationError(f"Key file {path} has an invalid key version name.", setting="LOCAL_KEY_FILE")
        keys[version] = _decode_key(encoded, where=f"Key {version!r} in key file {path}")
    current: str = doc["current"]
    if current not in keys:
        raise ConfigurationError(f"Key file {path} names a current version it does not hold.", setting="LOCAL_KEY_FILE")
    return current, keys


def _read_key_file(path: Path) -> tuple[str, dict[str, bytes], tuple[int, int, int]]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)  # check the file we opened, not whatever the path points to later
        _check_private(path, st)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    current, keys = _parse_key_file(path, b"".join(chunks))
    return current, keys, (st.st_ino, st.st_mtime_ns, st.st_size)


def create_local_key_file(path: str | os.PathLike[str]) -> bool:
    """Create the key file with one fresh key, mode 0600, unless it exists. Returns whether it was created."""
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    version = secrets.token_hex(8)
    body = _new_key_file_body({version: base64.b64encode(generate_key()).decode("ascii")}, version)
    temp = _write_private_temp(target.parent, body)
    try:
        # link() fails if the target exists, so two workers starting at once cannot both create a key
        # and a reader never sees a half-written file.
        os.link(temp, target)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    logger.info("Created local token key file %s", target)
    return True


def rotate_local_key(path: str | os.PathLike[str]) -> str:
    """Add a fresh key version to the key file (creating it if missing) and make it current.

    Older versions stay so existing records still decrypt; each is re-encrypted on its next write.
    Returns the new version. Raises ConfigurationError when the file is unreadable or not private.
    """
    target = Path(path)
    if create_local_key_file(target):
        current, _, _ = _read_key_file(target)
        return current
    _, keys, _ = _read_key_file(target)
    version = secrets.token_hex(8)
    encoded = {v: base64.b64encode(k).decode("ascii") for v, k in keys.items()}
    encoded[version] = base64.b64encode(generate_key()).decode("ascii")
    temp = _write_private_temp(target.parent, _new_key_file_body(encoded, version))
    try:
        os.replace(temp, target)  # atomic: readers see the old file or the new one
    finally:
        temp.unlink(missing_ok=True)
    logger.info("Rotated local token key file %s to a new version", target)
    return version


class LocalKeyFileSource:
    """``KeySource`` over a JSON key file outside the repository; created on first use with mode 0600.

    The file is re-read when it changes on disk, so a rotation by the command line is picked up.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._current: str | None = None
        self._keys: dict[str, bytes] = {}
        self._stamp: tuple[int, int, int] | None = None

    @property
    def path(self) -> Path:
        return self._path

    def _refresh(self) -> None:
        with self._lock:
            try:
                st = os.stat(self._path)
            except FileNotFoundError:
                create_local_key_file(self._path)
                st = os.stat(self._path)
            if self._stamp == (st.st_ino, st.st_mtime_ns, st.st_size):
                return
            _warn_local_once(self._path)
            self._current, self._keys, self._stamp = _read_key_file(self._path)

    def current(self) -> tuple[str, bytes]:
        self._refresh()
        current = self._current
        if current is None:  # _refresh reads a current version or raises: never reached
            raise ConfigurationError(f"Key file {self._path} names no current version.", setting="LOCAL_KEY_FILE")
        return current, self._keys[current]

    def get(self, version: str) -> bytes:
        key = self._keys.get(version)
        if key is None:
            self._refresh()
            key = self._keys.get(version)
        if key is None:
            raise _unknown_version(version)
        return key


# ---------------------------------------------------------------------------------------------
# Key Vault


@dataclass
class _Current:
    version: str
    fetched_at: float
    next_refresh: float


def _access_denied(where: str) -> ConfigurationError:
    return ConfigurationError(
        f"Access to the {where} was denied (403): grant this app's identity "
        "'get' on secrets (the 'Key Vault Secrets User' role).",
        setting="KEY_VAULT_URL",
    )


class KeyVaultKeySource:
    """``KeySource`` over a Key Vault secret holding base64 of 32 random bytes; the key version is the secret version.

    The current version is cached for ``refresh_seconds`` (so a rotation is picked up);
    older versions are fetched once by version and cached for the life of the process.
    When a refresh fails the cached current key stays in use and a WARNING is logged.
    """

    def __init__(
        self,
        vault_url: str,
        secret_name: str,
        *,
        credential: TokenCredential | None = None,
        transport: HttpTransport[Any, Any] | None = None,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        retry_total: int | None = None,
    ) -> None:
        self._vault_url = vault_url.rstrip("/")
        self._secret_name = secret_name
        self._credential = credential
        self._transport = transport
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._retry_total = retry_total
        self._lock = threading.Lock()
        self._client: SecretClient | None = None
        self._keys: dict[str, bytes] = {}
        self._current: _Current | None = None

    def _secret_client(self) -> SecretClient:
        if self._client is None:
            # Imported here: azure.identity and the Key Vault SDK are heavy and only needed on first fetch.
            from azure.keyvault.secrets import SecretClient

            credential = self._credential
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            options: dict[str, Any] = {}
            if self._transport is not None:
                options["transport"] = self._transport
            if self._retry_total is not None:
                options["retry_total"] = self._retry_total
            self._client = SecretClient(vault_url=self._vault_url, credential=credential, **options)
        return self._client

    def _fetch(self, version: str | None) -> tuple[str, bytes]:
        """One GET of the secret (latest when ``version`` is None), errors translated. Caller holds the lock."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        where = f"secret {self._secret_name!r} in Key Vault {self._vault_url}"
        try:
            secret = self._secret_client().get_secret(self._secret_name, version)
        except ResourceNotFoundError:
            if version is not None:
                raise _unknown_version(version) from None
            raise ConfigurationError(
                f"The token encryption key {where} does not exist. Create it with the value "
                "base64 of 32 random bytes, or set TOKEN_KEY_SECRET_NAME.",
                setting="TOKEN_KEY_SECRET_NAME",
            ) from None
        except ClientAuthenticationError as err:
            if err.status_code == 403:
                raise _access_denied(where) from None
            raise ConfigurationError(
                f"Could not authenticate to read the {where}: no usable Azure credential ({type(err).__name__}).",
                setting="KEY_VAULT_URL",
            ) from None
        except (ServiceRequestError, ServiceResponseError) as err:
            raise UpstreamUnavailable(
                f"Key Vault {self._vault_url} is unreachable ({type(err).__name__}); cannot read the token key."
            ) from None
        except HttpResponseError as err:
            if err.status_code == 403:  # some 403 bodies arrive as plain HttpResponseError
                raise _access_denied(where) from None
            if err.status_code == 429:
                raise UpstreamUnavailable(
                    f"Key Vault {self._vault_url} is throttling requests (429); try later."
                ) from None
            raise UpstreamUnavailable(
                f"Key Vault {self._vault_url} failed reading the {where} (HTTP {err.status_code})."
            ) from None
        found_version = secret.properties.version
        if not found_version or not KEY_VERSION_PATTERN.fullmatch(found_version):
            raise ConfigurationError(f"The {where} has no usable version id.")
        if secret.properties.enabled is False:
            raise ConfigurationError(f"The {where} (version {found_version}) is disabled.")
        return found_version, _decode_key(secret.value, where=f"The {where}")

    def current(self) -> tuple[str, bytes]:
        with self._lock:
            now = self._clock()
            cached = self._current
            if cached is not None and now < cached.next_refresh:
                return cached.version, self._keys[cached.version]
            try:
                version, key = self._fetch(None)
            except (UpstreamUnavailable, ConfigurationError) as err:
                if cached is None:
                    raise
                # Keep serving with the key we have rather than fail every write during a Key Vault blip.
                logger.warning("Refreshing the token key failed; still using the cached version: %s", err.message)
                cached.next_refresh = now + min(REFRESH_RETRY_SECONDS, self._refresh_seconds)
                return cached.version, self._keys[cached.version]
            if cached is not None and cached.version != version:
                logger.info("Token encryption key rotated in Key Vault; new writes use the new version")
            self._keys[version] = key
            self._current = _Current(version=version, fetched_at=now, next_refresh=now + self._refresh_seconds)
            return version, key

    def get(self, version: str) -> bytes:
        with self._lock:
            key = self._keys.get(version)
            if key is None:
                if not KEY_VERSION_PATTERN.fullmatch(version):
                    raise _unknown_version(version)
                found, key = self._fetch(version)
                self._keys[found] = key
            return key


# ---------------------------------------------------------------------------------------------
# Factory


_sources_lock = threading.Lock()
_sources: dict[tuple[str, str, str], KeySource] = {}


def build_key_source(settings: Settings, *, credential: TokenCredential | None = None) -> KeySource:
    """The key source for these settings, one per process: Key Vault when KEY_VAULT_URL is set, else the local file.

    ``credential`` reaches Key Vault (the app's managed identity); without it, ``DefaultAzureCredential``.
    Does no I/O; keys are fetched (and the local file created) on first use.
    """
    if settings.key_vault_url:
        cache_key = ("keyvault", settings.key_vault_url.rstrip("/"), settings.token_key_secret_name)
    else:
        cache_key = ("file", str(Path(settings.local_key_file).expanduser()), "")
    with _sources_lock:
        source = _sources.get(cache_key)
        if source is None:
            if settings.key_vault_url:
                source = KeyVaultKeySource(
                    settings.key_vault_url, settings.token_key_secret_name, credential=credential
                )
            else:
                source = LocalKeyFileSource(settings.local_key_file)
            _sources[cache_key] = source
        return source


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.adapters.keys", description="Manage the local token key file."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rotate = sub.add_parser("rotate", help="add a new key version and make it current")
    rotate.add_argument(
        "--file", help="key file (default: LOCAL_KEY_FILE or ~/.config/interview-calendar/token-keys.json)"
    )
    args = parser.parse_args(argv)
    path = args.file or Settings.from_env().local_key_file
    try:
        version = rotate_local_key(path)
    except ConfigurationError as err:
        print(err.message, file=sys.stderr)
        return 1
    print(f"Key file {path}: current version is now {version}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
