"""Sessions by hash for a point read per request, with a per-user index so sign-out ends them all."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from shared.adapters.tables._base import SESSIONS, SESSIONS_BY_USER, _Codec, _etag, _key, _require_etag, _to_utc
from shared.errors import NotFound
from shared.models import Session

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TableSessionStore:
    """``SessionStore``: PK session hash; ``sessionsbyuser`` (PK "tenant|user", RK hash) lists a user's sessions."""

    _ROW = "session"

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(Session, partition="session_hash", row=None, row_constant=self._ROW)

    @staticmethod
    def _user_partition(tenant_id: str, user_id: str) -> str:
        if "|" in tenant_id or "|" in user_id:
            raise ValueError("tenant_id and user_id must not contain '|'.")
        return _key(f"{tenant_id}|{user_id}", name="tenant_id|user_id")

    def create_session(self, session: Session) -> Session:
        index = {
            "PartitionKey": self._user_partition(session.tenant_id, session.user_id),
            "RowKey": _key(session.session_hash, name="session_hash"),
        }
        with self._s.translating(f"creating a session for user {session.user_id}"):
            # Index first: a crash in between leaves a dangling index row, never an undeletable session.
            self._s.table(SESSIONS_BY_USER).upsert_entity(index, UpdateMode.REPLACE)
            meta = self._s.table(SESSIONS).create_entity(self._codec.to_entity(session))
        return dataclasses.replace(session, etag=_etag(meta))

    def get_session(self, session_hash: str) -> Session:
        with self._s.translating("reading a session"):
            entity = self._s.table(SESSIONS).get_entity(_key(session_hash, name="session_hash"), self._ROW)
        return self._codec.from_entity(entity)

    def update_session(self, session: Session) -> Session:
        etag = _require_etag(session.etag, "session")
        with self._s.translating("updating a session"):
            meta = self._s.table(SESSIONS).update_entity(
                self._codec.to_entity(session),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(session, etag=_etag(meta))

    def delete_session(self, session_hash: str) -> None:
        try:
            session = self.get_session(session_hash)
        except NotFound:
            return
        with self._s.translating("deleting a session"):
            self._s.table(SESSIONS).delete_entity(session_hash, self._ROW)
            self._s.table(SESSIONS_BY_USER).delete_entity(
                self._user_partition(session.tenant_id, session.user_id), session_hash
            )

    def purge_expired_sessions(self, before: datetime) -> int:
        removed = 0
        with self._s.translating("purging expired sessions"):
            table = self._s.table(SESSIONS)
            rows = table.query_entities(
                "expires_at le @before",
                parameters={"before": _to_utc(before, name="before")},
                select=["PartitionKey", "tenant_id", "user_id"],
            )
            for row in list(rows):
                session_hash = str(row["PartitionKey"])
                table.delete_entity(session_hash, self._ROW)
                # Index rows after the row they point at: a crash leaves a dangling index row only.
                if row.get("tenant_id") and row.get("user_id"):
                    self._s.table(SESSIONS_BY_USER).delete_entity(
                        self._user_partition(str(row["tenant_id"]), str(row["user_id"])), session_hash
                    )
                removed += 1
        return removed

    def delete_user_sessions(self, tenant_id: str, user_id: str) -> None:
        partition = self._user_partition(tenant_id, user_id)
        with self._s.translating(f"deleting the sessions of user {user_id}"):
            index = self._s.table(SESSIONS_BY_USER)
            hashes = [
                str(e["RowKey"]) for e in index.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            ]
            for session_hash in hashes:
                self._s.table(SESSIONS).delete_entity(session_hash, self._ROW)
                index.delete_entity(partition, session_hash)
