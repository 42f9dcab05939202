"""Anonymous browser legs store nothing, and the purge timer removes what expired (Azurite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.functions.timer import TimerRequest

from devtools.azurite import Azurite
from functions import admin_consent, maintenance, oauth_callback
from shared.adapters.tables import TableStorage
from shared.bootstrap import Container, set_container
from shared.models import Session
from tests.kit import FakeClock, FakeDeps, FakeIdentity, request


@pytest.fixture
def stored(azurite: Azurite) -> Iterator[tuple[TableStorage, FakeClock, str]]:
    fakes = FakeDeps()
    prefix = "t" + uuid.uuid4().hex[:12]
    storage = TableStorage(
        azurite.connection_string, cipher=fakes.cipher, table_prefix=prefix, clock=fakes.clock, retry_total=0
    )
    set_container(
        Container(
            fakes.settings,
            clock=fakes.clock,
            cipher=fakes.cipher,
            storage=storage,
            identity=FakeIdentity(),
        )
    )
    yield storage, fakes.clock, prefix
    set_container(None)


def _rows(azurite: Azurite, prefix: str) -> int:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    names = [t.name for t in service.list_tables() if t.name.startswith(prefix)]
    return sum(len(list(service.get_table_client(n).list_entities(select=["RowKey"]))) for n in names)


def test_a_thousand_anonymous_logins_and_consent_starts_leave_storage_no_larger(
    stored: tuple[TableStorage, FakeClock, str], azurite: Azurite
) -> None:
    storage, _, prefix = stored
    storage.check()
    before = _rows(azurite, prefix)
    for _ in range(1000):
        assert oauth_callback.auth_login(request("GET", "http://localhost/api/auth/login")).status_code == 302
    for _ in range(100):
        started = admin_consent.consent_start(
            request("GET", "http://localhost/api/consent/start", params={"tenant": "contoso.example"})
        )
        assert started.status_code == 302
    assert _rows(azurite, prefix) == before


def test_the_purge_timer_removes_expired_sessions_and_used_states(
    stored: tuple[TableStorage, FakeClock, str], azurite: Azurite
) -> None:
    from shared.models import FlowKind

    storage, clock, prefix = stored
    for n in range(20):
        storage.sessions.create_session(
            Session(
                session_hash=f"s{n}",
                tenant_id="t",
                user_id="u",
                created_at=clock.now(),
                expires_at=clock.now() + timedelta(seconds=60),
            )
        )
        storage.flows.consume_state(FlowKind.SIGNIN, f"h{n}", clock.now() + timedelta(seconds=60))
    assert _rows(azurite, prefix) == 60  # each session has an index row
    clock.advance(seconds=61)
    maintenance.purge_expired(TimerRequest(past_due=False))
    assert _rows(azurite, prefix) == 0
