"""Each recruiter's recent sends, for pacing under Exchange's limits: one row per recruiter (PK tenant id, RK user
id) holding the send times of the last minute and the recipients per hour of the last day (JSON)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from shared.adapters.tables._base import EMAIL_PACING, _etag, _key, _to_utc
from shared.errors import NotFound
from shared.models import Pace

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TablePacingStore:
    """``PacingStore``: PK tenant id, RK the recruiter's user id; written under its ETag."""

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage

    def get_pace(self, tenant_id: str, sender_id: str) -> Pace:
        try:
            with self._s.translating(f"reading the pace of {sender_id} in tenant {tenant_id}"):
                entity = self._s.table(EMAIL_PACING).get_entity(
                    _key(tenant_id, name="tenant_id"), _key(sender_id, name="sender_id")
                )
        except NotFound:
            return Pace(tenant_id=tenant_id, sender_id=sender_id)
        recent = tuple(datetime.fromisoformat(t) for t in json.loads(entity.get("recent") or "[]"))
        hourly = tuple((datetime.fromisoformat(t), int(n)) for t, n in json.loads(entity.get("hourly") or "[]"))
        return Pace(tenant_id, sender_id, recent=recent, hourly=hourly, etag=_etag(entity.metadata))

    def save_pace(self, pace: Pace) -> Pace:
        entity: dict[str, Any] = {
            "PartitionKey": _key(pace.tenant_id, name="tenant_id"),
            "RowKey": _key(pace.sender_id, name="sender_id"),
            "recent": json.dumps([_to_utc(t, name="recent").isoformat() for t in pace.recent]),
            "hourly": json.dumps([[_to_utc(t, name="hourly").isoformat(), n] for t, n in pace.hourly]),
        }
        table = self._s.table(EMAIL_PACING)
        with self._s.translating(f"saving the pace of {pace.sender_id} in tenant {pace.tenant_id}"):
            if pace.etag is None:
                meta = table.create_entity(entity)
            else:
                meta = table.update_entity(
                    entity, UpdateMode.REPLACE, etag=pace.etag, match_condition=MatchConditions.IfNotModified
                )
        return dataclasses.replace(pace, etag=_etag(meta))
