"""Email templates a tenant's admins saved: one row per template (PK tenant id, RK template name)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from azure.data.tables import UpdateMode

from shared.adapters.tables._base import EMAIL_TEMPLATES, _Codec, _etag, _key
from shared.models import EmailTemplate

if TYPE_CHECKING:  # the facade imports every store
    from shared.adapters.tables.storage import TableStorage


class TableTemplateStore:
    """``TemplateStore``: PK tenant id, RK template name; a save replaces the whole row."""

    def __init__(self, storage: TableStorage) -> None:
        self._s = storage
        self._codec = _Codec(EmailTemplate, partition="tenant_id", row="name")

    def get_template(self, tenant_id: str, name: str) -> EmailTemplate:
        with self._s.translating(f"reading email template {name} of tenant {tenant_id}"):
            entity = self._s.table(EMAIL_TEMPLATES).get_entity(
                _key(tenant_id, name="tenant_id"), _key(name, name="name")
            )
        return self._codec.from_entity(entity)

    def save_template(self, template: EmailTemplate) -> EmailTemplate:
        with self._s.translating(f"saving email template {template.name} of tenant {template.tenant_id}"):
            meta = self._s.table(EMAIL_TEMPLATES).upsert_entity(self._codec.to_entity(template), UpdateMode.REPLACE)
        return dataclasses.replace(template, etag=_etag(meta))
