"""The notification queue against Azurite: base64 messages the host decodes, the poison count, storage down."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

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


def test_a_delayed_message_stays_hidden_and_no_message_expires(azurite: Azurite) -> None:
    name = "q" + uuid.uuid4().hex[:12]
    queue = StorageQueue(azurite.connection_string, name)

    queue.send("now")
    queue.send("later", delay=timedelta(hours=1))

    raw = QueueClient.from_connection_string(azurite.connection_string, name)
    visible = list(raw.receive_messages(max_messages=32))
    assert [base64.b64decode(m.content) for m in visible] == [b"now"]  # the other is hidden for its delay
    assert raw.get_queue_properties().approximate_message_count == 2
    assert visible[0].expires_on is not None and visible[0].expires_on.year >= 9999  # never expires


def test_poison_messages_are_received_decoded_kept_without_expiry_and_deleted(azurite: Azurite) -> None:
    name = "q" + uuid.uuid4().hex[:12]
    queue = StorageQueue(azurite.connection_string, name)
    assert queue.receive_poison(max_messages=32, lease=timedelta(minutes=1)) == []  # no poison queue yet
    poison = QueueClient.from_connection_string(azurite.connection_string, name + "-poison")
    poison.create_queue()
    poison.send_message(base64.b64encode(b'{"v":1}').decode())  # as the host copies it: base64, 7-day expiry
    poison.send_message("not base64!")

    received = queue.receive_poison(max_messages=32, lease=timedelta(minutes=1))
    assert sorted(m.text for m in received) == sorted(['{"v":1}', "not base64!"])
    assert queue.receive_poison(max_messages=32, lease=timedelta(minutes=1)) == []  # leased
    queue.release_poison(received[0])
    [again] = queue.receive_poison(max_messages=32, lease=timedelta(minutes=1))  # visible again at once
    received = [again if m.text == again.text else m for m in received]
    ours = next(m for m in received if m.text == '{"v":1}')
    assert ours.expires_at is not None and ours.expires_at.year < 9999

    queue.keep_poison(ours)
    queue.delete_poison(next(m for m in received if m.text == "not base64!"))
    queue.delete_poison(ours)  # already gone: nothing happens

    [kept] = list(poison.receive_messages(max_messages=32))
    assert base64.b64decode(kept.content) == b'{"v":1}' and kept.expires_on.year >= 9999
    assert queue.poison_count() == 1
