"""The notification queue on Azure Storage queues (azure-storage-queue; Azurite locally).

Messages are sent base64-encoded, the encoding the Functions queue trigger expects by default.
The webhook writes here while Graph waits for its answer (3 seconds at most), so a send gets short
timeouts and no SDK retries: when storage does not take the message at once the webhook answers 503
and Graph delivers again later, which is the retry that matters.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.adapters.storage_http import storage_transport
from shared.errors import ConfigurationError, UpstreamUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

POISON_SUFFIX = "-poison"
MAX_MESSAGE_BYTES = 64 * 1024  # Azure Storage queues: "A queue message can be up to 64 KB in size"


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

    def send(self, message: str) -> None:
        if len(message.encode("utf-8")) * 4 // 3 + 4 > MAX_MESSAGE_BYTES:
            raise ValueError("A notification message is over the queue's 64 KiB limit; split it first.")
        try:
            self._ensure_queue()
            self._queue.send_message(message)
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

    def close(self) -> None:
        self._queue.close()
        self._poison.close()
