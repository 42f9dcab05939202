"""Graph subscriptions (with the clientState only as a hash and encrypted), their by-id index for
notifications, each mailbox's sync state (claim, delta link encrypted), and dropped-notification counters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import typing
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from shared.adapters.tables._base import (
    MAILBOX_SYNC,
    SUBSCRIPTIONS,
    SUBSCRIPTIONS_BY_ID,
    WEBHOOK_DROPS,
    _Codec,
    _etag,
    _key,
    _require_etag,
)
from shared.errors import (
    ConcurrencyConflict,
    NotFound,
)
from shared.models import (
    MailboxSync,
    Subscription,
    SubscriptionSecret,
)
from shared.ports import TokenCipher

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TableSubscriptionStore:
    """``SubscriptionStore``: subscriptions (PK tenant id, RK subscription id), the ``subscriptionsbyid``
    index (PK subscription id) that also carries the tenant and the clientState hash so the webhook
    checks a notification with one point read, and ``mailboxsync`` (PK tenant id, RK sha256 of the
    lower-cased mailbox): one row per subscribed mailbox, whose conditional insert and ETag updates
    settle which writer creates that mailbox's subscription; its delta link is stored encrypted."""

    _INDEX_ROW = "subscription"

    def __init__(self, storage: TableStorage, *, cipher: TokenCipher) -> None:
        self._s = storage
        self._cipher = cipher
        self._codec = _Codec(Subscription, partition="tenant_id", row="subscription_id")
        self._sync_codec = _Codec(MailboxSync, partition="tenant_id", row=None)

    @staticmethod
    def mailbox_key(mailbox: str) -> str:
        return hashlib.sha256(mailbox.strip().lower().encode("utf-8")).hexdigest()

    @staticmethod
    def record_id(mailbox_key: str, field_name: str) -> str:
        # The field is part of the binding, so a ciphertext cannot be moved to another row or field.
        return f"mailboxsync/{mailbox_key}/{field_name}"

    # ---- subscriptions -------------------------------------------------------------------------
    def get_subscription(self, tenant_id: str, subscription_id: str) -> Subscription:
        with self._s.translating(f"reading subscription {subscription_id} of tenant {tenant_id}"):
            entity = self._s.table(SUBSCRIPTIONS).get_entity(
                _key(tenant_id, name="tenant_id"), _key(subscription_id, name="subscription_id")
            )
        return self._codec.from_entity(entity)

    def create_subscription(self, subscription: Subscription) -> Subscription:
        entity = self._codec.to_entity(subscription)
        index = {
            "PartitionKey": entity["RowKey"],
            "RowKey": self._INDEX_ROW,
            "tenant_id": entity["PartitionKey"],
            "client_state_hash": subscription.client_state_hash,
            "mailbox": subscription.mailbox,
            "mailbox_id": subscription.mailbox_id or "",
        }
        with self._s.translating(f"creating subscription {subscription.subscription_id}"):
            # Index first, so a stored subscription is always findable by id.
            self._s.table(SUBSCRIPTIONS_BY_ID).upsert_entity(index, UpdateMode.REPLACE)
            meta = self._s.table(SUBSCRIPTIONS).create_entity(entity)
        return dataclasses.replace(subscription, etag=_etag(meta))

    def update_subscription(self, subscription: Subscription) -> Subscription:
        etag = _require_etag(subscription.etag, "subscription")
        with self._s.translating(f"updating subscription {subscription.subscription_id}"):
            meta = self._s.table(SUBSCRIPTIONS).update_entity(
                self._codec.to_entity(subscription),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(subscription, etag=_etag(meta))

    def delete_subscription(self, tenant_id: str, subscription_id: str) -> None:
        with self._s.translating(f"deleting subscription {subscription_id}"):
            self._s.table(SUBSCRIPTIONS).delete_entity(
                _key(tenant_id, name="tenant_id"), _key(subscription_id, name="subscription_id")
            )
            index = self._s.table(SUBSCRIPTIONS_BY_ID)
            try:
                row = index.get_entity(subscription_id, self._INDEX_ROW)
            except ResourceNotFoundError:
                return
            # Leave the index alone if it names another tenant: that row is not ours to remove.
            if row.get("tenant_id") == tenant_id:
                index.delete_entity(subscription_id, self._INDEX_ROW)

    def list_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        with self._s.translating("listing subscriptions"):
            table = self._s.table(SUBSCRIPTIONS)
            if tenant_id is None:
                rows = table.list_entities()
            else:
                rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": _key(tenant_id, name="tenant_id")})
            return [self._codec.from_entity(e) for e in rows]

    def find_subscription(self, subscription_id: str) -> Subscription:
        secret = self.find_secret(subscription_id)
        return self.get_subscription(secret.tenant_id, subscription_id)

    def find_secret(self, subscription_id: str) -> SubscriptionSecret:
        with self._s.translating(f"looking up subscription {subscription_id}"):
            row = self._s.table(SUBSCRIPTIONS_BY_ID).get_entity(
                _key(subscription_id, name="subscription_id"), self._INDEX_ROW
            )
        if not row.get("client_state_hash"):
            raise NotFound(f"Subscription {subscription_id} has no clientState on record.")
        return SubscriptionSecret(
            tenant_id=str(row["tenant_id"]),
            subscription_id=subscription_id,
            client_state_hash=str(row["client_state_hash"]),
            mailbox=str(row.get("mailbox") or ""),
            mailbox_id=str(row["mailbox_id"]) if row.get("mailbox_id") else None,
        )

    # ---- mailbox sync records ------------------------------------------------------------------
    def _sync_entity(self, sync: MailboxSync) -> dict[str, Any]:
        key = self.mailbox_key(sync.mailbox)
        entity = self._sync_codec.to_entity(dataclasses.replace(sync, delta_link=None))
        entity["RowKey"] = key
        if sync.delta_link is not None:
            entity["delta_link"] = self._cipher.encrypt(
                sync.delta_link.encode("utf-8"), tenant_id=sync.tenant_id, record_id=self.record_id(key, "delta_link")
            )
        return entity

    def _sync_from_entity(self, entity: TableEntity) -> MailboxSync:
        tenant_id, key = str(entity["PartitionKey"]), str(entity["RowKey"])
        delta_link: str | None = None
        if entity.get("delta_link"):
            delta_link = self._cipher.decrypt(
                str(entity["delta_link"]), tenant_id=tenant_id, record_id=self.record_id(key, "delta_link")
            ).decode("utf-8")
        return self._sync_codec.from_entity(entity, delta_link=delta_link)

    def get_mailbox_sync(self, tenant_id: str, mailbox: str) -> MailboxSync:
        with self._s.translating(f"reading the sync record of a mailbox of tenant {tenant_id}"):
            entity = self._s.table(MAILBOX_SYNC).get_entity(
                _key(tenant_id, name="tenant_id"), self.mailbox_key(mailbox)
            )
        return self._sync_from_entity(entity)

    def create_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        with self._s.translating(f"creating the sync record of a mailbox of tenant {sync.tenant_id}"):
            meta = self._s.table(MAILBOX_SYNC).create_entity(self._sync_entity(sync))
        return dataclasses.replace(sync, etag=_etag(meta))

    def update_mailbox_sync(self, sync: MailboxSync) -> MailboxSync:
        etag = _require_etag(sync.etag, "mailbox sync record")
        with self._s.translating(f"updating the sync record of a mailbox of tenant {sync.tenant_id}"):
            meta = self._s.table(MAILBOX_SYNC).update_entity(
                self._sync_entity(sync), UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        return dataclasses.replace(sync, etag=_etag(meta))

    def list_mailbox_syncs(self, tenant_id: str | None = None) -> list[MailboxSync]:
        with self._s.translating("listing mailbox sync records"):
            table = self._s.table(MAILBOX_SYNC)
            if tenant_id is None:
                rows = table.list_entities()
            else:
                rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": _key(tenant_id, name="tenant_id")})
            return [self._sync_from_entity(e) for e in rows]

    # ---- dropped-notification counters -----------------------------------------------------------
    _DROPS_PARTITION = "drops"
    _DROP_REASON = re.compile(r"[a-z_]{1,64}")
    _DROP_ATTEMPTS = 5

    def add_dropped(self, scope: str, counts: typing.Mapping[str, int]) -> None:
        adds = {k: int(v) for k, v in counts.items() if v and self._DROP_REASON.fullmatch(k)}
        if not adds:
            return
        table_name = WEBHOOK_DROPS
        row_key = _key(scope, name="scope")
        for _ in range(self._DROP_ATTEMPTS):
            with self._s.translating("reading the dropped-notification counters"):
                try:
                    entity: TableEntity | None = self._s.table(table_name).get_entity(self._DROPS_PARTITION, row_key)
                except ResourceNotFoundError:
                    entity = None
            merged = {k: int(v) for k, v in (entity or {}).items() if self._DROP_REASON.fullmatch(k)}
            for reason, n in adds.items():
                merged[reason] = merged.get(reason, 0) + n
            row = {"PartitionKey": self._DROPS_PARTITION, "RowKey": row_key, **merged}
            try:
                with self._s.translating("writing the dropped-notification counters"):
                    if entity is None:
                        self._s.table(table_name).create_entity(row)
                    else:
                        self._s.table(table_name).update_entity(
                            row,
                            UpdateMode.REPLACE,
                            etag=_etag(entity.metadata),
                            match_condition=MatchConditions.IfNotModified,
                        )
                return
            except ConcurrencyConflict:
                continue  # another worker flushed at the same moment: read again and add
        raise ConcurrencyConflict("Other writers kept updating the dropped-notification counters.")

    def get_dropped(self, scope: str) -> dict[str, int]:
        with self._s.translating("reading the dropped-notification counters"):
            try:
                entity = self._s.table(WEBHOOK_DROPS).get_entity(self._DROPS_PARTITION, _key(scope, name="scope"))
            except ResourceNotFoundError:
                return {}
        return {k: int(v) for k, v in entity.items() if self._DROP_REASON.fullmatch(k)}
