"""Queue triggers against a real Azurite: delivery, deletion, retries and the poison queue."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient

from devtools.azurite import Azurite
from devtools.host import HostConfigurationError, HostOptions, start_host
from devtools.host.runner import RunningHost

# Platform defaults, only the polling shortened so an idle queue is re-read quickly.
FAST = HostOptions().with_queues(max_polling_interval=timedelta(milliseconds=200))


@dataclass
class Seen:
    messages: list[func.QueueMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message: func.QueueMessage) -> None:
        with self.lock:
            self.messages.append(message)


def build_app(ok: Seen, failing: Seen) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%OK_QUEUE%", connection="AzureWebJobsStorage")
    def succeeds(msg: func.QueueMessage) -> None:
        ok.add(msg)

    @app.queue_trigger(arg_name="msg", queue_name="%FAILING_QUEUE%", connection="AzureWebJobsStorage")
    async def always_fails(msg: func.QueueMessage) -> None:
        failing.add(msg)
        raise RuntimeError("this function always fails")

    return app


@dataclass
class Queues:
    ok: QueueClient
    failing: QueueClient
    poison: QueueClient
    seen_ok: Seen
    seen_failing: Seen
    host: RunningHost
    connection_string: str


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def visible_count(client: QueueClient) -> int:
    return len(client.peek_messages(max_messages=32))


def encoded(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@pytest.fixture
def queues(azurite: Azurite, queue_name: str) -> Iterator[Queues]:
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "OK_QUEUE": f"{queue_name}-ok",
        "FAILING_QUEUE": f"{queue_name}-bad",
    }
    ok, failing = Seen(), Seen()
    host = start_host(build_app(ok, failing), settings=settings, options=FAST)
    clients = [
        QueueClient.from_connection_string(azurite.connection_string, name)
        for name in (
            f"{queue_name}-ok",
            f"{queue_name}-bad",
            f"{queue_name}-bad-poison",
        )
    ]
    try:
        yield Queues(
            ok=clients[0],
            failing=clients[1],
            poison=clients[2],
            seen_ok=ok,
            seen_failing=failing,
            host=host,
            connection_string=azurite.connection_string,
        )
    finally:
        host.stop()
        for client in clients:
            client.close()


def test_host_creates_missing_queues_and_delivers_decoded_body_then_deletes(
    queues: Queues,
) -> None:
    wait_for(lambda: _exists(queues.ok))
    sent = queues.ok.send_message(encoded('{"booking": 7}'))
    wait_for(lambda: len(queues.seen_ok.messages) == 1)
    message = queues.seen_ok.messages[0]
    assert message.get_json() == {"booking": 7}
    assert message.id == sent.id
    assert message.dequeue_count == 1
    assert message.insertion_time is not None and message.expiration_time is not None
    assert message.pop_receipt
    wait_for(lambda: queues.ok.get_queue_properties().approximate_message_count == 0)
    time.sleep(0.5)
    assert len(queues.seen_ok.messages) == 1  # deleted: never delivered twice


def test_failing_message_is_tried_five_times_then_moved_to_poison_unchanged(
    queues: Queues,
) -> None:
    wait_for(lambda: _exists(queues.failing))
    queues.failing.send_message(encoded("doomed"))
    wait_for(lambda: visible_count(queues.poison) == 1 if _exists(queues.poison) else False)
    attempts = [m.dequeue_count for m in queues.seen_failing.messages]
    assert attempts == [1, 2, 3, 4, 5]
    assert all(m.get_body() == b"doomed" for m in queues.seen_failing.messages)
    poisoned = queues.poison.peek_messages()[0]
    assert poisoned.content == encoded("doomed")  # still base64, as the producer sent it
    wait_for(lambda: queues.failing.get_queue_properties().approximate_message_count == 0)
    time.sleep(0.5)
    assert len(queues.seen_failing.messages) == 5  # no sixth try


def test_a_batch_of_messages_is_all_processed_and_none_lost(queues: Queues) -> None:
    wait_for(lambda: _exists(queues.ok))
    bodies = {f"message {i}" for i in range(40)}  # more than one batch of 16
    for body in bodies:
        queues.ok.send_message(encoded(body))
    wait_for(lambda: len(queues.seen_ok.messages) == len(bodies))
    assert {m.get_body().decode() for m in queues.seen_ok.messages} == bodies
    wait_for(lambda: queues.ok.get_queue_properties().approximate_message_count == 0)


def test_body_that_is_not_base64_goes_straight_to_poison(queues: Queues) -> None:
    wait_for(lambda: _exists(queues.ok))
    queues.ok.send_message("plain text, not base64!")
    poison = QueueClient.from_connection_string(queues.connection_string, queues.ok.queue_name + "-poison")
    with poison:
        wait_for(lambda: _exists(poison) and visible_count(poison) == 1)
        assert poison.peek_messages()[0].content == "plain text, not base64!"
    assert queues.seen_ok.messages == []


def test_message_encoding_none_delivers_the_text_as_sent(azurite: Azurite, queue_name: str) -> None:
    seen = Seen()
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name=queue_name, connection="AzureWebJobsStorage")
    def raw(msg: func.QueueMessage) -> None:
        seen.add(msg)

    options = FAST.with_queues(message_encoding="none")
    host = start_host(
        app,
        settings={"AzureWebJobsStorage": azurite.connection_string},
        options=options,
    )
    try:
        with QueueClient.from_connection_string(azurite.connection_string, queue_name) as client:
            wait_for(lambda: _exists(client))
            client.send_message("as is")
            wait_for(lambda: len(seen.messages) == 1)
        assert seen.messages[0].get_body() == b"as is"
    finally:
        host.stop()


def test_missing_connection_setting_fails_at_start_naming_it() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="OtherStorage")
    def work(msg: func.QueueMessage) -> None:
        return None

    with pytest.raises(
        HostConfigurationError,
        match="'work': the storage connection setting 'OtherStorage'",
    ):
        start_host(app, settings={})


def test_invalid_queue_name_fails_at_start() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%Q%", connection="AzureWebJobsStorage")
    def work(msg: func.QueueMessage) -> None:
        return None

    with pytest.raises(HostConfigurationError, match="'Bad_Name' is not a valid queue name"):
        start_host(
            app,
            settings={
                "Q": "Bad_Name",
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            },
        )


def _exists(client: QueueClient) -> bool:
    try:
        client.get_queue_properties()
    except Exception:
        return False
    return True
