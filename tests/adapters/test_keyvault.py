"""Key Vault key source through the real SecretClient pipeline, answered by an azure-core transport double.

The double speaks Key Vault's REST shapes: the 401 bearer challenge on an unauthenticated
request (so the SDK's challenge policy runs), secret bundles for the latest and a given
version, and the documented error bodies for 404, 403 and 429.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._requests_basic import RestRequestsTransportResponse
from requests.structures import CaseInsensitiveDict

from devtools.azurite import Azurite
from shared.adapters.crypto import AesGcmCipher, generate_key
from shared.adapters.keys import KeyVaultKeySource
from shared.adapters.tables import TOKEN_CACHES, TableStorage
from shared.errors import ConfigurationError, TokenIntegrityError, UpstreamUnavailable

SECRET = "token-encryption-key"
TENANT_OF_VAULT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ACCESS_TOKEN = "kv-access-token-for-tests"


class FakeCredential:
    """A TokenCredential double: hands out one fixed token and records what was asked for."""

    def __init__(self) -> None:
        self.requests: list[tuple[tuple[str, ...], str | None]] = []

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.requests.append((scopes, tenant_id))
        return AccessToken(ACCESS_TOKEN, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> AccessTokenInfo:
        self.requests.append((scopes, (options or {}).get("tenant_id")))
        return AccessTokenInfo(ACCESS_TOKEN, int(time.time()) + 3600)


@dataclass
class FakeVault:
    """One vault's secrets, newest version last, and the requests it has seen."""

    url: str
    versions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    fail_with: int | None = None
    unreachable: bool = False
    challenges: int = 0
    reads: list[str] = field(default_factory=list)  # authorized secret GETs, as "name/version"

    def add_version(self, name: str, value: str | None = None) -> str:
        version = uuid.uuid4().hex
        value = value if value is not None else base64.b64encode(generate_key()).decode()
        self.versions.setdefault(name, []).append((version, value))
        return version


def _json_response(
    request: Any, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
) -> Any:
    raw = requests.Response()
    raw.status_code = status
    raw.reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}[status]
    raw._content = json.dumps(body).encode() if body is not None else b""
    raw._content_consumed = True  # the body is in memory; there is no socket behind it
    raw.headers = CaseInsensitiveDict({"Content-Type": "application/json; charset=utf-8", **(headers or {})})
    raw.url = request.url
    response = RestRequestsTransportResponse(request=request, internal_response=raw)
    response.read()
    return response


class KeyVaultTransport(HttpTransport[Any, Any]):
    """Answers SecretClient requests the way Key Vault does, without a network."""

    def __init__(self, vault: FakeVault) -> None:
        self.vault = vault

    def __enter__(self) -> KeyVaultTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        vault = self.vault
        if vault.unreachable:
            raise ServiceRequestError("Failed to establish a new connection: [Errno 111] Connection refused")
        url = urlparse(request.url)
        assert f"{url.scheme}://{url.netloc}" == vault.url
        assert "api-version=" in url.query
        auth = request.headers.get("Authorization")
        if auth is None:
            vault.challenges += 1
            return _json_response(
                request,
                401,
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                {
                    "WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{TENANT_OF_VAULT}", '
                    'resource="https://vault.azure.net"'
                },
            )
        assert auth == f"Bearer {ACCESS_TOKEN}"
        parts = [p for p in url.path.split("/") if p]
        assert parts[0] == "secrets" and request.method == "GET"
        name = parts[1]
        wanted = parts[2] if len(parts) > 2 else None
        vault.reads.append(f"{name}/{wanted or ''}")
        if vault.fail_with == 403:
            return _json_response(
                request,
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Caller is not authorized to perform action on resource.\r\n"
                        "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
                        "innererror": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        if vault.fail_with == 429:
            return _json_response(
                request,
                429,
                {
                    "error": {
                        "code": "Throttled",
                        "message": "Request was not processed because too many requests were received.",
                    }
                },
                {"Retry-After": "1"},
            )
        history = vault.versions.get(name, [])
        found = history[-1] if history and wanted is None else next((v for v in history if v[0] == wanted), None)
        if found is None:
            return _json_response(
                request,
                404,
                {
                    "error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) {name}{'/' + wanted if wanted else ''} was not found in "
                        "this key vault. If you recently deleted this secret you may be able to recover it using "
                        "the correct recovery command. For help resolving this issue, please see "
                        "https://go.microsoft.com/fwlink/?linkid=2125182",
                    }
                },
            )
        version, value = found
        now = int(time.time())
        return _json_response(
            request,
            200,
            {
                "value": value,
                "id": f"{vault.url}/secrets/{name}/{version}",
                "attributes": {
                    "enabled": True,
                    "created": now,
                    "updated": now,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
                "tags": {},
            },
        )


class ManualClock:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def vault() -> FakeVault:
    # A vault name of its own per test: the SDK caches challenges per vault for the whole process.
    return FakeVault(url=f"https://kv{secrets.token_hex(6)}.vault.azure.net")


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def source(vault: FakeVault, credential: FakeCredential, clock: ManualClock) -> KeyVaultKeySource:
    return KeyVaultKeySource(
        vault.url + "/",
        SECRET,
        credential=credential,
        transport=KeyVaultTransport(vault),
        refresh_seconds=3600,
        clock=clock,
        retry_total=0,
    )


def test_current_key_is_read_through_the_challenge_and_cached(
    source: KeyVaultKeySource, vault: FakeVault, credential: FakeCredential
) -> None:
    version = vault.add_version(SECRET)
    expected = base64.b64decode(vault.versions[SECRET][0][1])

    for _ in range(5):
        assert source.current() == (version, expected)
    assert source.get(version) == expected

    assert vault.reads == [f"{SECRET}/"]  # one GET for the whole process
    assert vault.challenges == 1
    assert credential.requests[0] == (("https://vault.azure.net/.default",), TENANT_OF_VAULT)


def test_older_versions_are_fetched_once_by_version(source: KeyVaultKeySource, vault: FakeVault) -> None:
    old = vault.add_version(SECRET)
    vault.add_version(SECRET)
    source.current()
    old_key = base64.b64decode(vault.versions[SECRET][0][1])
    for _ in range(3):
        assert source.get(old) == old_key
    assert vault.reads == [f"{SECRET}/", f"{SECRET}/{old}"]


def test_unknown_version_is_a_token_integrity_error(source: KeyVaultKeySource, vault: FakeVault) -> None:
    vault.add_version(SECRET)
    with pytest.raises(TokenIntegrityError, match="unknown key version") as caught:
        source.get("0123456789abcdef0123456789abcdef")
    assert caught.value.details["reason"] == "unknown_key_version"


def test_missing_secret_is_a_configuration_error_naming_vault_and_secret(
    source: KeyVaultKeySource, vault: FakeVault
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        source.current()
    assert "does not exist" in caught.value.message
    assert vault.url in caught.value.message and SECRET in caught.value.message


def test_forbidden_is_a_configuration_error_about_access(source: KeyVaultKeySource, vault: FakeVault) -> None:
    vault.add_version(SECRET)
    vault.fail_with = 403
    with pytest.raises(ConfigurationError, match="denied") as caught:
        source.current()
    assert vault.url in caught.value.message and SECRET in caught.value.message
    assert vault.versions[SECRET][0][1] not in caught.value.message


def test_throttling_is_upstream_unavailable(source: KeyVaultKeySource, vault: FakeVault) -> None:
    vault.add_version(SECRET)
    vault.fail_with = 429
    with pytest.raises(UpstreamUnavailable, match="throttling"):
        source.current()


def test_unreachable_vault_is_upstream_unavailable(source: KeyVaultKeySource, vault: FakeVault) -> None:
    vault.unreachable = True
    with pytest.raises(UpstreamUnavailable, match="unreachable") as caught:
        source.current()
    assert vault.url in caught.value.message


def test_secret_that_is_not_a_32_byte_key_is_refused_without_echoing_it(
    source: KeyVaultKeySource, vault: FakeVault
) -> None:
    vault.add_version(SECRET, value="not-a-key-but-a-password-marker")
    with pytest.raises(ConfigurationError) as caught:
        source.current()
    assert "not-a-key-but-a-password-marker" not in caught.value.message
    assert SECRET in caught.value.message


def test_rotation_is_picked_up_after_the_refresh_interval(
    source: KeyVaultKeySource, vault: FakeVault, clock: ManualClock
) -> None:
    first = vault.add_version(SECRET)
    cipher = AesGcmCipher(source)
    old_token = cipher.encrypt(b"refresh-token", tenant_id="t", record_id="tokencache/u")

    second = vault.add_version(SECRET)
    clock.value += 3599
    assert source.current()[0] == first  # still cached
    clock.value += 1
    assert source.current()[0] == second
    assert not cipher.is_current(old_token)
    assert cipher.decrypt(old_token, tenant_id="t", record_id="tokencache/u") == b"refresh-token"
    assert cipher.encrypt(b"x", tenant_id="t", record_id="r").startswith(f"v1.{second}.")
    assert vault.reads == [f"{SECRET}/", f"{SECRET}/"]  # old version still cached: no versioned GET


def test_failed_refresh_keeps_the_cached_key_and_warns(
    source: KeyVaultKeySource, vault: FakeVault, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    version = vault.add_version(SECRET)
    source.current()
    vault.unreachable = True
    clock.value += 3600
    with caplog.at_level(logging.WARNING, logger="shared.adapters.keys"):
        assert source.current()[0] == version
    assert "still using the cached version" in caplog.text
    assert vault.versions[SECRET][0][1] not in caplog.text


def test_rotation_through_storage_reencrypts_records_on_write(
    azurite: Azurite, vault: FakeVault, source: KeyVaultKeySource, clock: ManualClock
) -> None:
    first = vault.add_version(SECRET)
    prefix = "kv" + secrets.token_hex(6)
    storage = TableStorage(azurite.connection_string, cipher=AesGcmCipher(source), table_prefix=prefix)
    raw = storage.table(TOKEN_CACHES)
    storage.token_caches.save_cache("t1", "u1", '{"rt": "one"}')
    assert raw.get_entity("t1", "u1")["c0"].startswith(f"v1.{first}.")

    second = vault.add_version(SECRET)
    clock.value += 3600

    assert storage.token_caches.load_cache("t1", "u1") == '{"rt": "one"}'
    storage.token_caches.save_cache("t1", "u1", '{"rt": "two"}')
    assert raw.get_entity("t1", "u1")["c0"].startswith(f"v1.{second}.")
    assert storage.token_caches.load_cache("t1", "u1") == '{"rt": "two"}'
