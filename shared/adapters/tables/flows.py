"""Used browser-flow states (sign-in and admin consent), kept by hash until they expire, so a state is used once."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from shared.adapters.tables._base import FLOWS, _key, _to_utc
from shared.errors import (
    ConcurrencyConflict,
    InvalidFlowState,
)
from shared.models import FlowKind
from shared.ports import Clock, TokenCipher

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TableFlowStore:
    """``FlowStore``: PK flow kind, RK sha256(state); one small row per accepted callback.

    The row exists only from the callback until the flow's expiry: a second callback with the same
    state finds it and is refused. Rows left by earlier versions (encrypted pending flows) carry an
    ``expires_at`` too, so the same purge removes them.
    """

    def __init__(self, storage: TableStorage, *, cipher: TokenCipher, clock: Clock) -> None:
        self._s = storage
        self._cipher = cipher
        self._clock = clock

    def consume_state(self, kind: FlowKind, state_hash: str, expires_at: datetime) -> None:
        entity = {
            "PartitionKey": kind.value,
            "RowKey": _key(state_hash, name="state_hash"),
            "expires_at": _to_utc(expires_at, name="expires_at"),
            "taken": True,
        }
        try:
            with self._s.translating(f"recording a used {kind.value} state"):
                self._s.table(FLOWS).create_entity(entity)
        except ConcurrencyConflict:
            raise InvalidFlowState("This link was already used; start again.") from None

    def purge_expired_states(self, before: datetime) -> int:
        removed = 0
        with self._s.translating("purging expired flow states"):
            table = self._s.table(FLOWS)
            rows = table.query_entities(
                "expires_at le @before",
                parameters={"before": _to_utc(before, name="before")},
                select=["PartitionKey", "RowKey"],
            )
            for row in list(rows):
                table.delete_entity(str(row["PartitionKey"]), str(row["RowKey"]))
                removed += 1
        return removed
