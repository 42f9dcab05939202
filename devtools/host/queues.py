"""Queue triggers: poll Azure Storage queues (Azurite locally) and invoke the functions.

Behaviour follows the Functions host and ``extensions.queues`` in host.json:

* up to ``batchSize`` (16) messages are fetched at once and run concurrently; when a
  queue is empty the poller backs off exponentially from 100 ms to ``maxPollingInterval``;
* a message body reaches the function base64-decoded when ``messageEncoding`` is
  "base64" (the platform default; producers must then send base64 text), as stored when
  it is "none";
* success deletes the message; failure makes it visible again after
  ``visibilityTimeout`` (0); a failure at dequeue count ``maxDequeueCount`` (5: the
  first try included) moves the message, content unchanged, to ``<queue>-poison`` and
  deletes the original. A body that is not valid base64 can never succeed, so it goes to
  the poison queue at once.

The queue name may be a ``%SETTING%`` reference. The ``connection`` property names the
setting with the storage connection string (default ``AzureWebJobsStorage``; the
platform's ``AzureWebJobs<name>`` fallback is honoured). Queues are created when missing.
Fetched messages stay invisible for ten minutes while the function runs (the
platform renews this lease for longer runs; this host does not).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as WorkerQueueMessage
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

from devtools.host.config import (
    HostConfigurationError,
    QueueOptions,
    resolve_setting_references,
)
from devtools.host.functions import QUEUE_TRIGGER, FunctionSpec, Invoker, stopped_within

logger = logging.getLogger(__name__)

DEFAULT_CONNECTION = "AzureWebJobsStorage"
POISON_SUFFIX = "-poison"
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)
MESSAGE_LEASE = timedelta(minutes=10)
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")

# Azurite's well-known development account, what "UseDevelopmentStorage=true" stands for.
_DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)


def storage_connection_string(settings: Mapping[str, str], connection: str | None, *, function_name: str) -> str:
    """The connection string a binding's ``connection`` property points at."""
    name = connection or DEFAULT_CONNECTION
    value = settings.get(name) or settings.get(f"AzureWebJobs{name}")
    if not value:
        raise HostConfigurationError(f"Function '{function_name}': the storage connection setting '{name}' is not set.")
    if value.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
        return _DEVELOPMENT_STORAGE
    return value


@dataclass(frozen=True)
class QueueBinding:
    spec: FunctionSpec
    queue_name: str
    connection_string: str

    @property
    def poison_queue_name(self) -> str:
        return self.queue_name + POISON_SUFFIX


def queue_bindings(specs: list[FunctionSpec], settings: Mapping[str, str]) -> list[QueueBinding]:
    """Resolve queue names and connections of every queue-triggered function; fail fast if one cannot be."""
    bindings: list[QueueBinding] = []
    for spec in specs:
        if spec.trigger_type != QUEUE_TRIGGER:
            continue
        raw_name = str(spec.trigger.get("queueName", ""))
        name = resolve_setting_references(raw_name, settings, what=f"The queue name of function '{spec.name}'")
        if not _QUEUE_NAME.match(name):
            raise HostConfigurationError(
                f"Function '{spec.name}': '{name}' is not a valid queue name "
                "(3-63 lower-case letters, digits and single hyphens)."
            )
        connection = storage_connection_string(settings, spec.trigger.get("connection"), function_name=spec.name)
        bindings.append(QueueBinding(spec=spec, queue_name=name, connection_string=connection))
    return bindings


class _DecodeError(ValueError):
    pass


def decode_body(content: str, encoding: str) -> bytes:
    if encoding == "none":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _DecodeError(str(err)) from err


class QueuePoller:
    """Polls one queue for one function."""

    def __init__(self, binding: QueueBinding, *, options: QueueOptions, invoker: Invoker) -> None:
        self.binding = binding
        self._options = options
        self._invoker = invoker
        self.max_polling_interval = options.max_polling_interval
        service = QueueServiceClient.from_connection_string(binding.connection_string)
        self._queue: QueueClient = service.get_queue_client(binding.queue_name)
        self._poison: QueueClient = service.get_queue_client(binding.poison_queue_name)

    async def run(self, stopping: asyncio.Event) -> None:
        name = self.binding.spec.name
        delay = MIN_POLLING_INTERVAL
        created = False
        while not stopping.is_set():
            try:
                if not created:
                    await asyncio.to_thread(_create_if_missing, self._queue)
                    created = True
                messages = await asyncio.to_thread(self._receive)
            except AzureError as err:
                logger.warning(
                    "Function '%s': polling queue '%s' failed: %s",
                    name,
                    self.binding.queue_name,
                    err,
                )
                messages = []
            if messages:
                delay = MIN_POLLING_INTERVAL
                await asyncio.gather(*(self._process(m) for m in messages))
                continue
            if await stopped_within(stopping, delay.total_seconds()):
                return
            delay = min(delay * 2, self._options.max_polling_interval)

    def _receive(self) -> list[QueueMessage]:
        batch = self._options.batch_size
        pages = self._queue.receive_messages(
            messages_per_page=batch,
            max_messages=batch,
            visibility_timeout=int(MESSAGE_LEASE.total_seconds()),
        )
        return list(pages)

    async def _process(self, message: QueueMessage) -> None:
        try:
            await self._process_one(message)
        except AzureError as err:
            # The message stays invisible until its lease ends, then is picked up again.
            logger.warning(
                "Function '%s': storage call for message %s failed: %s",
                self.binding.spec.name,
                message.id,
                err,
            )

    async def _process_one(self, message: QueueMessage) -> None:
        dequeue_count = int(message.dequeue_count or 0)
        if dequeue_count > self._options.max_dequeue_count:
            # Already over the limit (a host stopped mid-run before): poison without another try.
            await self._move_to_poison(message, reason="its dequeue count is over maxDequeueCount")
            return
        try:
            body = decode_body(str(message.content or ""), self._options.message_encoding)
        except _DecodeError:
            logger.error(
                "Function '%s': message %s on '%s' is not valid base64 (messageEncoding is base64).",
                self.binding.spec.name,
                message.id,
                self.binding.queue_name,
            )
            await self._move_to_poison(message, reason="its body is not valid base64")
            return
        trigger_value: func.QueueMessage = WorkerQueueMessage(  # type: ignore[no-untyped-call]
            id=message.id,
            body=body,
            dequeue_count=dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        try:
            await self._invoker.invoke(
                self.binding.spec,
                trigger_value,
                reason=f"New queue message detected on '{self.binding.queue_name}'.",
            )
        except Exception:
            logger.exception(
                "Function '%s' failed on message %s (dequeue count %d)",
                self.binding.spec.name,
                message.id,
                dequeue_count,
            )
            await self._after_failure(message, dequeue_count)
            return
        await self._delete(message)

    async def _after_failure(self, message: QueueMessage, dequeue_count: int) -> None:
        """Poison the message after its last try; else make it visible again after the visibility timeout."""
        try:
            if dequeue_count >= self._options.max_dequeue_count:
                await self._move_to_poison(message, reason=f"it failed {dequeue_count} times")
            else:
                await asyncio.to_thread(
                    self._queue.update_message,
                    message.id,
                    pop_receipt=message.pop_receipt,
                    visibility_timeout=int(self._options.visibility_timeout.total_seconds()),
                )
        except AzureError as err:
            # The lease runs out and the message comes back by itself; nothing is lost.
            name = self.binding.spec.name
            logger.warning("Function '%s': could not release message %s: %s", name, message.id, err)

    async def _delete(self, message: QueueMessage) -> None:
        """Delete a message its function handled."""
        name = self.binding.spec.name
        try:
            await asyncio.to_thread(self._queue.delete_message, message.id, message.pop_receipt)
        except ResourceNotFoundError:
            logger.warning(
                "Function '%s': message %s was gone before it could be deleted.",
                name,
                message.id,
            )
        except AzureError as err:
            logger.warning("Function '%s': could not delete message %s: %s", name, message.id, err)

    async def _move_to_poison(self, message: QueueMessage, *, reason: str) -> None:
        logger.warning(
            "Message %s moves from '%s' to '%s' because %s.",
            message.id,
            self.binding.queue_name,
            self.binding.poison_queue_name,
            reason,
        )
        # Copy first, then delete: a crash in between duplicates the message rather than losing it.
        await asyncio.to_thread(_create_if_missing, self._poison)
        await asyncio.to_thread(self._poison.send_message, message.content)
        await asyncio.to_thread(self._queue.delete_message, message.id, message.pop_receipt)

    def close(self) -> None:
        self._queue.close()
        self._poison.close()


def _create_if_missing(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


class QueueService:
    """One poller per queue-triggered function."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        *,
        settings: Mapping[str, str],
        options: QueueOptions,
        invoker: Invoker,
    ) -> None:
        self.pollers = [QueuePoller(b, options=options, invoker=invoker) for b in queue_bindings(specs, settings)]

    async def run(self, stopping: asyncio.Event) -> None:
        for poller in self.pollers:
            logger.info(
                "Queue trigger '%s' polls '%s' (when idle at least every %s s, maxPollingInterval)",
                poller.binding.spec.name,
                poller.binding.queue_name,
                f"{poller.max_polling_interval.total_seconds():g}",
            )
        await asyncio.gather(*(poller.run(stopping) for poller in self.pollers))

    def close(self) -> None:
        for poller in self.pollers:
            poller.close()
