"""Signed-in recruiters: one row per user (PK tenant id, RK the user's object id)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from shared.adapters.tables._base import USERS, _Codec, _etag, _key, _require_etag
from shared.models import User

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TableUserStore:
    """``UserStore``: PK tenant id, RK user object id."""

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(User, partition="tenant_id", row="user_id")

    def get_user(self, tenant_id: str, user_id: str) -> User:
        with self._s.translating(f"reading user {user_id} of tenant {tenant_id}"):
            entity = self._s.table(USERS).get_entity(_key(tenant_id, name="tenant_id"), _key(user_id, name="user_id"))
        return self._codec.from_entity(entity)

    def create_user(self, user: User) -> User:
        with self._s.translating(f"creating user {user.user_id} of tenant {user.tenant_id}"):
            meta = self._s.table(USERS).create_entity(self._codec.to_entity(user))
        return dataclasses.replace(user, etag=_etag(meta))

    def update_user(self, user: User) -> User:
        etag = _require_etag(user.etag, "user")
        with self._s.translating(f"updating user {user.user_id} of tenant {user.tenant_id}"):
            meta = self._s.table(USERS).update_entity(
                self._codec.to_entity(user),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(user, etag=_etag(meta))

    def delete_user(self, tenant_id: str, user_id: str) -> None:
        with self._s.translating(f"deleting user {user_id} of tenant {tenant_id}"):
            self._s.table(USERS).delete_entity(_key(tenant_id, name="tenant_id"), _key(user_id, name="user_id"))

    def list_users(self, tenant_id: str) -> list[User]:
        with self._s.translating(f"listing users of tenant {tenant_id}"):
            rows = self._s.table(USERS).query_entities(
                "PartitionKey eq @pk", parameters={"pk": _key(tenant_id, name="tenant_id")}
            )
            return [self._codec.from_entity(e) for e in rows]
