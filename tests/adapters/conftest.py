"""Adapter test fixtures: a fresh table prefix per test over the session's Azurite (tests/conftest.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devtools.azurite import Azurite
from shared.adapters.crypto import AesGcmCipher, generate_key
from shared.adapters.tables import TableStorage
from tests.kit import FakeClock, StaticKeySource


@pytest.fixture
def keys() -> StaticKeySource:
    return StaticKeySource({"k1": generate_key()}, current="k1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def table_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def storage(azurite: Azurite, keys: StaticKeySource, clock: FakeClock, table_prefix: str) -> TableStorage:
    return TableStorage(
        azurite.connection_string, cipher=AesGcmCipher(keys), table_prefix=table_prefix, clock=clock, retry_total=0
    )
