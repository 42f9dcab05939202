"""The notification queue on Azure Storage queues (azure-storage-queue; Azurite locally).

Messages are sent base64-encoded, the encoding the Functions queue trigger expects by default, and
without an expiry (the service's default is 7 days; "-1 indicating that the message does not expire",
Put Message since version 2017-07-29), so nothing acknowledged expires while it waits. Messages in
``<queue>-poison`` are read and rewritten here for their replay; the Functions host copies them there
unchanged (base64 text), with the default 7-day expiry.
The webhook writes here while Graph waits for its answer (3 seconds at most), so a send gets short
timeouts and no SDK retries: when storage does not take the message at once the webhook answers 503
and Graph delivers again later, which is the retry that matters.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.adapters.storage_http import storage_transport
from shared.errors import ConfigurationError, UpstreamUnavailable
from shared.models import QueuedMessage

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

POISON_SUFFIX = "-poison"
MAX_MESSAGE_BYTES = 64 * 1024  # Azure Storage queues: "A queue message can be up to 64 KB in size"
NO_EXPIRY = -1
MAX_VISIBILITY_DELAY = timedelta(days=7)  # the service's upper bound for a visibility timeout


class StorageQueue:
    """``NotificationQueue``: one queue, created on first use in the process."""

    def __init__(
        self,
        connection_string: str,
        queue_name: str,
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        queue_service_uri: str | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        """From a connection string, or (when it is empty) from ``queue_service_uri`` with a token credential."""
        transport = storage_transport(connection_timeout=connect_timeout, read_timeout=read_timeout)
        try:
            if connection_string:
                self._queue = QueueClient.from_connection_string(
                    connection_string,
                    queue_name,
                    message_encode_policy=TextBase64EncodePolicy(),
                    retry_total=0,
                    transport=transport,
                )
                self._poison = QueueClient.from_connection_string(
                    connection_string, queue_name + POISON_SUFFIX, retry_total=0, connection_timeout=connect_timeout
                )
            elif queue_service_uri and credential is not None:
                self._queue = QueueClient(
                    queue_service_uri,
                    queue_name,
                    credential=credential,
                    message_encode_policy=TextBase64EncodePolicy(),
                    retry_total=0,
                    transport=transport,
                )
                self._poison = QueueClient(
                    queue_service_uri,
                    queue_name + POISON_SUFFIX,
                    credential=credential,
                    retry_total=0,
                    connection_timeout=connect_timeout,
                )
            else:
                raise ConfigurationError(
                    "Set AzureWebJobsStorage, or AzureWebJobsStorage__queueServiceUri with an identity.",
                    setting="AzureWebJobsStorage",
                )
        except ValueError as err:
            raise ConfigurationError(
                "AzureWebJobsStorage is not a valid storage connection string.", setting="AzureWebJobsStorage"
            ) from err
        self.queue_name = queue_name
        self._created = False
        self._lock = threading.Lock()

    def _ensure_queue(self) -> None:
        if self._created:
            return
        with self._lock:
            if not self._created:
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._created = True

    def send(self, message: str, *, delay: timedelta | None = None) -> None:
        if len(message.encode("utf-8")) * 4 // 3 + 4 > MAX_MESSAGE_BYTES:
            raise ValueError("A notification message is over the queue's 64 KiB limit; split it first.")
        hidden = None if delay is None else int(min(delay, MAX_VISIBILITY_DELAY).total_seconds())
        try:
            self._ensure_queue()
            self._queue.send_message(message, visibility_timeout=hidden or None, time_to_live=NO_EXPIRY)
        except ClientAuthenticationError as err:
            raise ConfigurationError(
                f"Queue storage refused our credentials for '{self.queue_name}'; check AzureWebJobsStorage.",
                setting="AzureWebJobsStorage",
            ) from err
        except AzureError as err:
            self._created = False  # the queue may have gone with the storage account's state
            raise UpstreamUnavailable(
                f"The queue '{self.queue_name}' could not be written ({type(err).__name__})."
            ) from err

    def poison_count(self) -> int:
        try:
            properties = self._poison.get_queue_properties()
        except ResourceNotFoundError:
            return 0
        except AzureError as err:
            raise UpstreamUnavailable(
                f"The queue '{self.queue_name}{POISON_SUFFIX}' could not be read ({type(err).__name__})."
            ) from err
        return int(properties.approximate_message_count or 0)

    def _poison_failed(self, err: AzureError, doing: str) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"The queue '{self.queue_name}{POISON_SUFFIX}' could not be {doing} ({type(err).__name__})."
        )

    def receive_poison(self, *, max_messages: int, lease: timedelta) -> list[QueuedMessage]:
        try:
            pages = self._poison.receive_messages(
                messages_per_page=min(max_messages, 32),
                max_messages=max_messages,
                visibility_timeout=max(1, int(lease.total_seconds())),
            )
            received = list(pages)
        except ResourceNotFoundError:
            return []
        except AzureError as err:
            raise self._poison_failed(err, "read") from err
        return [
            QueuedMessage(
                message_id=str(m.id),
                receipt=str(m.pop_receipt),
                text=_decoded(str(m.content or "")),
                expires_at=m.expires_on,
            )
            for m in received
        ]

    def delete_poison(self, message: QueuedMessage) -> None:
        try:
            self._poison.delete_message(message.message_id, message.receipt)
        except ResourceNotFoundError:
            return
        except AzureError as err:
            raise self._poison_failed(err, "written") from err

    def release_poison(self, message: QueuedMessage) -> None:
        try:
            self._poison.update_message(message.message_id, message.receipt, visibility_timeout=0)
        except ResourceNotFoundError:
            return
        except AzureError as err:
            raise self._poison_failed(err, "written") from err

    def keep_poison(self, message: QueuedMessage) -> None:
        encoded = base64.b64encode(message.text.encode("utf-8")).decode("ascii")
        try:
            self._poison.send_message(encoded, time_to_live=NO_EXPIRY)  # copy first: a crash duplicates, never loses
        except AzureError as err:
            raise self._poison_failed(err, "written") from err
        self.delete_poison(message)

    def close(self) -> None:
        self._queue.close()
        self._poison.close()


def _decoded(content: str) -> str:
    """A poison message's text: base64 as the host copied it, or as stored when it is not base64."""
    try:
        return base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return content
