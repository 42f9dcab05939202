"""MSAL token caches, encrypted with ``TokenCipher`` and bound to (tenant, owner), in chunks of one entity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.data.tables import UpdateMode

from shared.adapters.tables._base import CHUNK_CHARS, MAX_CHUNKS, TOKEN_CACHES, RecordTooLarge, _key
from shared.errors import NotFound
from shared.ports import TokenCipher

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TableTokenCacheStore:
    """``TokenCacheStore``: PK tenant id, RK owner; the encrypted cache split across string properties.

    Every save encrypts afresh under the current key, which is how rotation re-encrypts.
    Concurrent saves of one cache are last-writer-wins: an MSAL cache cannot be merged.
    """

    def __init__(self, storage: TableStorage, *, cipher: TokenCipher) -> None:
        self._s = storage
        self._cipher = cipher

    @staticmethod
    def record_id(owner: str) -> str:
        return f"tokencache/{owner}"

    def load_cache(self, tenant_id: str, owner: str) -> str | None:
        try:
            with self._s.translating(f"reading the token cache of {owner} in tenant {tenant_id}"):
                entity = self._s.table(TOKEN_CACHES).get_entity(
                    _key(tenant_id, name="tenant_id"), _key(owner, name="owner")
                )
        except NotFound:
            return None
        count = int(entity.get("chunks", 0))
        ciphertext = "".join(str(entity[f"c{i}"]) for i in range(count) if f"c{i}" in entity)
        plaintext = self._cipher.decrypt(ciphertext, tenant_id=tenant_id, record_id=self.record_id(owner))
        return plaintext.decode("utf-8")

    def save_cache(self, tenant_id: str, owner: str, serialized: str) -> None:
        plaintext = serialized.encode("utf-8")
        ciphertext = self._cipher.encrypt(plaintext, tenant_id=tenant_id, record_id=self.record_id(owner))
        chunks = [ciphertext[i : i + CHUNK_CHARS] for i in range(0, len(ciphertext), CHUNK_CHARS)]
        if len(chunks) > MAX_CHUNKS:
            raise RecordTooLarge(
                f"The token cache of {owner} in tenant {tenant_id} is {len(plaintext)} bytes; "
                f"a Table Storage record holds at most about {MAX_CHUNKS * CHUNK_CHARS * 3 // 4} bytes of it."
            )
        entity: dict[str, Any] = {
            "PartitionKey": _key(tenant_id, name="tenant_id"),
            "RowKey": _key(owner, name="owner"),
            "chunks": len(chunks),
        }
        entity.update({f"c{i}": chunk for i, chunk in enumerate(chunks)})
        with self._s.translating(f"saving the token cache of {owner} in tenant {tenant_id}"):
            # REPLACE drops chunks left over from a larger earlier cache.
            self._s.table(TOKEN_CACHES).upsert_entity(entity, UpdateMode.REPLACE)

    def delete_cache(self, tenant_id: str, owner: str) -> None:
        with self._s.translating(f"deleting the token cache of {owner} in tenant {tenant_id}"):
            self._s.table(TOKEN_CACHES).delete_entity(_key(tenant_id, name="tenant_id"), _key(owner, name="owner"))
