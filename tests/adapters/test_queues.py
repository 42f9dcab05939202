"""The notification queue against Azurite: base64 messages the host decodes, the poison count, storage down."""

from __future__ import annotations

import base64
import uuid

import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from shared.adapters.queues import StorageQueue
from shared.errors import UpstreamUnavailable


def test_a_sent_message_arrives_base64_encoded_as_the_queue_trigger_expects(azurite: Azurite) -> None:
    name = "q" + uuid.uuid4().hex[:12]
    queue = StorageQueue(azurite.connection_string, name)

    queue.send('{"v":1,"k":"change","n":[]}')

    raw = QueueClient.from_connection_string(azurite.connection_string, name)
    [message] = list(raw.receive_messages())
    assert base64.b64decode(message.content) == b'{"v":1,"k":"change","n":[]}'


def test_poison_count_reads_the_poison_queue(azurite: Azurite) -> None:
    name = "q" + uuid.uuid4().hex[:12]
    queue = StorageQueue(azurite.connection_string, name)
    assert queue.poison_count() == 0
    poison = QueueClient.from_connection_string(azurite.connection_string, name + "-poison")
    poison.create_queue()
    poison.send_message("x")
    poison.send_message("y")

    assert queue.poison_count() == 2


def test_unreachable_storage_is_upstream_unavailable() -> None:
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        + base64.b64encode(b"k" * 64).decode()
        + ";QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    with pytest.raises(UpstreamUnavailable):
        StorageQueue(dead, "graph-notifications").send("x")
