"""Tenants: one row per consented tenant (PK tenant id, RK "tenant")."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from shared.adapters.tables._base import TENANTS, _Codec, _etag, _key, _require_etag
from shared.models import Tenant

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TableTenantStore:
    """``TenantStore``: PK tenant id, one row per tenant."""

    _ROW = "tenant"

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(Tenant, partition="tenant_id", row=None, row_constant=self._ROW)

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self._s.translating(f"reading tenant {tenant_id}"):
            entity = self._s.table(TENANTS).get_entity(_key(tenant_id, name="tenant_id"), self._ROW)
        return self._codec.from_entity(entity)

    def create_tenant(self, tenant: Tenant) -> Tenant:
        with self._s.translating(f"creating tenant {tenant.tenant_id}"):
            meta = self._s.table(TENANTS).create_entity(self._codec.to_entity(tenant))
        return dataclasses.replace(tenant, etag=_etag(meta))

    def update_tenant(self, tenant: Tenant) -> Tenant:
        etag = _require_etag(tenant.etag, "tenant")
        with self._s.translating(f"updating tenant {tenant.tenant_id}"):
            meta = self._s.table(TENANTS).update_entity(
                self._codec.to_entity(tenant),
                UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return dataclasses.replace(tenant, etag=_etag(meta))

    def delete_tenant(self, tenant_id: str) -> None:
        with self._s.translating(f"deleting tenant {tenant_id}"):
            self._s.table(TENANTS).delete_entity(_key(tenant_id, name="tenant_id"), self._ROW)

    def list_tenants(self) -> list[Tenant]:
        with self._s.translating("listing tenants"):
            return [self._codec.from_entity(e) for e in self._s.table(TENANTS).list_entities()]
