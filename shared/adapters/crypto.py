"""AES-256-GCM TokenCipher: authenticated encryption of stored secrets, bound to the record they belong to.

Ciphertext format (ASCII, safe as a Table property): ``v1.<key-version>.<b64url nonce>.<b64url ciphertext+tag>``.
The associated data is ``["v1", key_version, tenant_id, record_id]`` as JSON, so a
ciphertext copied to another record, tenant or key version fails authentication.
Keys come from a ``KeySource``; this module imports no Azure SDK.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import TokenIntegrityError
from shared.ports import KeySource

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12  # 96 bits: the size GCM is specified for; a fresh random nonce per encryption
TAG_BYTES = 16
# Key versions appear inside the dotted format, so they may not contain dots.
KEY_VERSION_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def generate_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _associated_data(key_version: str, tenant_id: str, record_id: str) -> bytes:
    # JSON keeps the parts unambiguous whatever characters the ids contain.
    return json.dumps([FORMAT_VERSION, key_version, tenant_id, record_id], separators=(",", ":")).encode("utf-8")


def key_version_of(token: str) -> str:
    """The key version a ciphertext is under. Raises TokenIntegrityError when the token is malformed."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != FORMAT_VERSION or not KEY_VERSION_PATTERN.fullmatch(parts[1]):
        raise TokenIntegrityError(
            "Stored token is malformed: expected 'v1.<key-version>.<nonce>.<ciphertext>'.", reason="malformed"
        )
    return parts[1]


class AesGcmCipher:
    """``TokenCipher`` over AES-256-GCM. Always encrypts under the key source's current key."""

    def __init__(self, key_source: KeySource) -> None:
        self._keys = key_source

    def encrypt(self, plaintext: bytes, *, tenant_id: str, record_id: str) -> str:
        version, key = self._keys.current()
        if not KEY_VERSION_PATTERN.fullmatch(version):
            raise ValueError("Key version must be 1-64 characters of [A-Za-z0-9_-].")
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext, _associated_data(version, tenant_id, record_id))
        return ".".join((FORMAT_VERSION, version, _b64encode(nonce), _b64encode(sealed)))

    def decrypt(self, token: str, *, tenant_id: str, record_id: str) -> bytes:
        """Raises TokenIntegrityError: malformed, unknown key version, or authentication failed."""
        version = key_version_of(token)
        _, _, nonce_text, sealed_text = token.split(".")
        try:
            nonce = _b64decode(nonce_text)
            sealed = _b64decode(sealed_text)
        except (binascii.Error, ValueError):
            raise TokenIntegrityError("Stored token is malformed: invalid base64.", reason="malformed") from None
        if len(nonce) != NONCE_BYTES or len(sealed) < TAG_BYTES:
            raise TokenIntegrityError("Stored token is malformed: wrong nonce or tag length.", reason="malformed")
        key = self._keys.get(version)
        try:
            return AESGCM(key).decrypt(nonce, sealed, _associated_data(version, tenant_id, record_id))
        except InvalidTag:
            raise TokenIntegrityError(
                "Stored token failed authentication: it was altered, or moved from another record.",
                reason="authentication_failed",
                tenant_id=tenant_id,
                record_id=record_id,
                key_version=version,
            ) from None

    def is_current(self, token: str) -> bool:
        try:
            version = key_version_of(token)
        except TokenIntegrityError:
            return False
        return version == self._keys.current()[0]
