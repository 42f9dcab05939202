"""Identity-based storage: with no connection string, the table and queue clients are built from the
AzureWebJobsStorage__*ServiceUri settings with the app's managed-identity credential."""

from __future__ import annotations

import pytest
from azure.core.credentials import AccessToken

from shared.adapters.credentials import build_credential
from shared.adapters.queues import StorageQueue
from shared.adapters.tables import TableStorage
from shared.bootstrap import Container
from shared.config import Settings
from tests.kit import FakeClock, StaticKeySource

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
IDENTITY = {
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": CLIENT_ID,
    "AzureWebJobsStorage__queueServiceUri": "https://stexample.queue.core.windows.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://stexample.table.core.windows.net/",
}


class FakeCredential:
    """A TokenCredential that is never asked here: building clients does no I/O."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        raise AssertionError("no token is needed to build a client")


class Recorded:
    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs


def test_credential_is_the_user_assigned_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.identity

    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", type("MI", (Recorded,), {}))
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", type("DAC", (Recorded,), {}))
    credential = build_credential(Settings.from_env(IDENTITY))
    assert type(credential).__name__ == "MI"
    assert credential.kwargs == {"client_id": CLIENT_ID}  # a user-assigned identity must be named
    local = build_credential(Settings.from_env({k: v for k, v in IDENTITY.items() if not k.endswith("credential")}))
    assert type(local).__name__ == "DAC"
    assert local.kwargs == {"managed_identity_client_id": CLIENT_ID}


def test_tables_and_queue_are_built_from_the_service_uris_with_the_credential(keys: StaticKeySource) -> None:
    credential = FakeCredential()
    container = Container(Settings.from_env(IDENTITY), credential=credential, key_source=keys, clock=FakeClock())
    storage = container.storage
    assert isinstance(storage, TableStorage)
    assert storage.endpoint == "https://stexample.table.core.windows.net"
    assert storage._service.credential is credential
    queue = container.notification_queue
    assert isinstance(queue, StorageQueue)
    assert queue._queue.url == "https://stexample.queue.core.windows.net/graph-notifications"
    assert queue._queue.credential is credential
    assert queue._poison.queue_name == "graph-notifications-poison"
    assert queue._poison.credential is credential


def test_a_connection_string_still_wins_and_needs_no_credential(keys: StaticKeySource) -> None:
    container = Container(
        Settings.from_env({**IDENTITY, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}),
        key_source=keys,
        clock=FakeClock(),
    )
    assert container.storage.endpoint == "http://127.0.0.1:10002/devstoreaccount1"
    assert "credential" not in container._lazy._built  # no identity was built
