"""AES-GCM TokenCipher: format, binding to the record, and the three kinds of integrity failure."""

from __future__ import annotations

import base64

import pytest

from shared.adapters.crypto import AesGcmCipher, generate_key, key_version_of
from shared.errors import TokenIntegrityError
from tests.kit import StaticKeySource

PLAINTEXT = b'{"refresh_token": "rt-plaintext-marker"}'


def fresh_keys(version: str = "k1") -> StaticKeySource:
    """A key source holding one newly generated key under ``version``."""
    return StaticKeySource({version: generate_key()}, current=version)


@pytest.fixture
def keys() -> StaticKeySource:
    return fresh_keys()


@pytest.fixture
def cipher(keys: StaticKeySource) -> AesGcmCipher:
    return AesGcmCipher(keys)


def test_round_trip_with_a_fresh_nonce_per_encryption(cipher: AesGcmCipher) -> None:
    first = cipher.encrypt(PLAINTEXT, tenant_id="t1", record_id="tokencache/u1")
    second = cipher.encrypt(PLAINTEXT, tenant_id="t1", record_id="tokencache/u1")
    assert first != second
    assert first.split(".")[2] != second.split(".")[2]
    for token in (first, second):
        assert cipher.decrypt(token, tenant_id="t1", record_id="tokencache/u1") == PLAINTEXT


def test_format_is_versioned_and_self_describing(cipher: AesGcmCipher) -> None:
    token = cipher.encrypt(PLAINTEXT, tenant_id="t1", record_id="r")
    version, key_version, nonce, sealed = token.split(".")
    assert (version, key_version) == ("v1", "k1")
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 12
    assert len(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))) == len(PLAINTEXT) + 16
    assert key_version_of(token) == "k1"
    assert token.isascii() and "=" not in token


@pytest.mark.parametrize(("tenant_id", "record_id"), [("t2", "tokencache/u1"), ("t1", "tokencache/u2"), ("", "")])
def test_ciphertext_moved_to_another_record_fails_authentication(
    cipher: AesGcmCipher, tenant_id: str, record_id: str
) -> None:
    token = cipher.encrypt(PLAINTEXT, tenant_id="t1", record_id="tokencache/u1")
    with pytest.raises(TokenIntegrityError, match="altered, or moved") as caught:
        cipher.decrypt(token, tenant_id=tenant_id, record_id=record_id)
    assert caught.value.details["reason"] == "authentication_failed"


def test_tampered_ciphertext_fails_authentication_without_revealing_anything(
    cipher: AesGcmCipher, keys: StaticKeySource
) -> None:
    token = cipher.encrypt(PLAINTEXT, tenant_id="t1", record_id="r")
    head, sealed = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)))
    raw[0] ^= 1
    tampered = head + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenIntegrityError) as caught:
        cipher.decrypt(tampered, tenant_id="t1", record_id="r")
    text = str(caught.value) + repr(caught.value.details)
    assert "rt-plaintext-marker" not in text
    assert base64.b64encode(keys.current()[1]).decode() not in text
    assert sealed not in text


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v2.k1.AAAA.BBBB",
        "v1.k1.AAAA",
        "v1.k.1.AAAA.BBBB",
        "v1.k1.!!!!.BBBB",
        "v1.k1.AAAA.BBBB",
        "v1..AAAA.BBBB",
    ],
)
def test_malformed_tokens_are_reported_as_malformed(cipher: AesGcmCipher, token: str) -> None:
    with pytest.raises(TokenIntegrityError, match="malformed") as caught:
        cipher.decrypt(token, tenant_id="t1", record_id="r")
    assert caught.value.details["reason"] == "malformed"


def test_unknown_key_version_is_reported_as_such(cipher: AesGcmCipher) -> None:
    token = AesGcmCipher(fresh_keys("k7")).encrypt(PLAINTEXT, tenant_id="t1", record_id="r")
    with pytest.raises(TokenIntegrityError, match="unknown key version 'k7'") as caught:
        cipher.decrypt(token, tenant_id="t1", record_id="r")
    assert caught.value.details["reason"] == "unknown_key_version"


def test_same_version_name_with_a_different_key_fails_authentication(cipher: AesGcmCipher) -> None:
    token = AesGcmCipher(fresh_keys("k1")).encrypt(PLAINTEXT, tenant_id="t1", record_id="r")
    with pytest.raises(TokenIntegrityError, match="failed authentication"):
        cipher.decrypt(token, tenant_id="t1", record_id="r")


def test_rotation_old_tokens_decrypt_and_are_no_longer_current(cipher: AesGcmCipher, keys: StaticKeySource) -> None:
    old = cipher.encrypt(PLAINTEXT, tenant_id="t1", record_id="r")
    assert cipher.is_current(old)
    keys.add("k2", generate_key())
    assert not cipher.is_current(old)
    assert cipher.decrypt(old, tenant_id="t1", record_id="r") == PLAINTEXT
    new = cipher.encrypt(PLAINTEXT, tenant_id="t1", record_id="r")
    assert key_version_of(new) == "k2" and cipher.is_current(new)
    assert not cipher.is_current("garbage")


def test_static_key_source_rejects_bad_keys() -> None:
    with pytest.raises(ValueError):
        StaticKeySource({"k1": b"short"}, current="k1")
    with pytest.raises(ValueError):
        StaticKeySource({"bad.version": generate_key()}, current="bad.version")
    with pytest.raises(ValueError):
        StaticKeySource({"k1": generate_key()}, current="k2")
