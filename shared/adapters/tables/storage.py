"""The Table Storage account: one ``TableStorage`` facade that hands out the stores, creates each table on its
first use in the process, answers the health probe and translates every azure-core error in one place.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient

from shared.adapters.storage_http import storage_transport
from shared.adapters.tables._base import (
    _LONGEST_TABLE,
    _STORAGE_FAILED,
    _STORAGE_MISCONFIGURED,
    _STORAGE_UNAVAILABLE,
    _TABLE_PREFIX,
    RecordTooLarge,
    _SystemClock,
)
from shared.adapters.tables.bookings import TableBookingStore
from shared.adapters.tables.busy import TableBusyCacheStore
from shared.adapters.tables.email_pacing import TablePacingStore
from shared.adapters.tables.email_templates import TableTemplateStore
from shared.adapters.tables.emails import TableEmailLedger
from shared.adapters.tables.flows import TableFlowStore
from shared.adapters.tables.sessions import TableSessionStore
from shared.adapters.tables.subscriptions import TableSubscriptionStore
from shared.adapters.tables.tenants import TableTenantStore
from shared.adapters.tables.token_caches import TableTokenCacheStore
from shared.adapters.tables.users import TableUserStore
from shared.config import Settings
from shared.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    NotFound,
    ServiceError,
    UpstreamError,
    UpstreamUnavailable,
)
from shared.ports import Clock, TokenCipher

if typing.TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)


# Tables known to exist, per account endpoint: created once per process, on first use.
_created_lock = threading.Lock()
_created_tables: set[tuple[str, str]] = set()


class TableStorage:
    """The Table Storage account: hands out the stores and answers the health probe.

    No I/O at construction; each table is created on its first use in the process.
    """

    def __init__(
        self,
        connection_string: str,
        *,
        cipher: TokenCipher,
        table_prefix: str = "",
        clock: Clock | None = None,
        timeout_seconds: float = 10.0,
        retry_total: int = 3,
        table_service_uri: str | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        """From a connection string, or (when it is empty) from ``table_service_uri`` with a token credential."""
        if not _TABLE_PREFIX.fullmatch(table_prefix) or len(table_prefix) + _LONGEST_TABLE > 63:
            raise ConfigurationError(
                f"TABLE_PREFIX must be letters and digits starting with a letter, at most {63 - _LONGEST_TABLE} long.",
                setting="TABLE_PREFIX",
            )
        transport = storage_transport(connection_timeout=timeout_seconds, read_timeout=timeout_seconds)
        # Each table's client is built on its own, never with ``TableServiceClient.get_table_client`` (nor
        # its ``create_table_if_not_exists``, which calls it): that builds a pipeline from the service's own
        # policy objects and links them to its new steps one by one, so a request already under way on
        # another table's client could meet a step not linked yet (AttributeError: '_SansIOHTTPPolicyRunner'
        # object has no attribute 'next') and fail with a 500, as fifty concurrent bookings did on a table's
        # first use. Every client still shares the one transport (its connection pool).
        self._new_table_client: typing.Callable[[str], TableClient]
        try:
            if connection_string:
                self._service = TableServiceClient.from_connection_string(
                    connection_string, retry_total=retry_total, transport=transport
                )
                self._new_table_client = lambda name: TableClient.from_connection_string(
                    connection_string, table_name=name, retry_total=retry_total, transport=transport
                )
            elif table_service_uri and credential is not None:
                self._service = TableServiceClient(
                    endpoint=table_service_uri, credential=credential, retry_total=retry_total, transport=transport
                )
                self._new_table_client = lambda name: TableClient(
                    endpoint=table_service_uri,
                    table_name=name,
                    credential=credential,
                    retry_total=retry_total,
                    transport=transport,
                )
            else:
                raise ConfigurationError(
                    "Set AzureWebJobsStorage, or AzureWebJobsStorage__tableServiceUri with an identity.",
                    setting="AzureWebJobsStorage",
                )
        except ValueError as err:
            raise ConfigurationError(
                "AzureWebJobsStorage is not a valid storage connection string.", setting="AzureWebJobsStorage"
            ) from err
        parsed = urlparse(self._service.url)
        # Only scheme, host and path: a SAS or account key must never reach a message.
        self._endpoint = f"{parsed.scheme}://{parsed.netloc}{parsed.path}".rstrip("/")
        self._prefix = table_prefix
        self._clients: dict[str, TableClient] = {}
        self._clients_lock = threading.Lock()
        clock = clock or _SystemClock()
        self.tenants = TableTenantStore(self)
        self.users = TableUserStore(self)
        self.token_caches = TableTokenCacheStore(self, cipher=cipher)
        self.flows = TableFlowStore(self, cipher=cipher, clock=clock)
        self.sessions = TableSessionStore(self)
        self.bookings = TableBookingStore(self)
        self.subscriptions = TableSubscriptionStore(self, cipher=cipher)
        self.busy = TableBusyCacheStore(self, cipher=cipher)
        self.email_templates = TableTemplateStore(self)
        self.emails = TableEmailLedger(self)
        self.email_pacing = TablePacingStore(self)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        cipher: TokenCipher,
        clock: Clock | None = None,
        credential: TokenCredential | None = None,
    ) -> TableStorage:
        """``credential`` is used only when the settings give no connection string (identity-based storage)."""
        return cls(
            settings.storage_connection,
            cipher=cipher,
            table_prefix=settings.table_prefix,
            clock=clock,
            timeout_seconds=settings.http_timeout_seconds,
            table_service_uri=settings.storage_table_uri,
            credential=credential,
        )

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def table_name(self, name: str) -> str:
        return self._prefix + name

    def table(self, name: str) -> TableClient:
        """The client for one of our tables, creating the table on its first use in this process."""
        full = self.table_name(name)
        client = self._clients.get(full)
        if client is not None:
            return client
        with self._clients_lock:
            client = self._clients.get(full)
            if client is None:
                marker = (self._endpoint, full)
                with _created_lock:
                    known = marker in _created_tables
                client = self._new_table_client(full)
                if not known:
                    with self.translating(f"creating table {full}"), contextlib.suppress(ResourceExistsError):
                        client.create_table()  # another worker may have made it first
                    with _created_lock:
                        _created_tables.add(marker)
                self._clients[full] = client
        return client

    @contextmanager
    def translating(self, action: str) -> Iterator[None]:
        """The one choke point where azure-core errors become ``shared.errors``. What a client may be told
        names nothing of storage; the action, table and endpoint go to the log through ``internal``."""
        try:
            yield
        except ResourceNotFoundError as err:
            raise NotFound("Not found.", internal=f"not found while {action}") from err
        except (ResourceExistsError, ResourceModifiedError) as err:
            raise ConcurrencyConflict(
                "The record was changed by another request; retry.", internal=f"conflict while {action}"
            ) from err
        except ClientAuthenticationError as err:
            raise ConfigurationError(
                _STORAGE_MISCONFIGURED,
                setting="AzureWebJobsStorage",
                internal=f"Table Storage at {self._endpoint} refused our credentials while {action}",
            ) from err
        except (ServiceRequestError, ServiceResponseError) as err:
            raise UpstreamUnavailable(
                _STORAGE_UNAVAILABLE,
                internal=f"Table Storage at {self._endpoint} is unreachable ({type(err).__name__}) while {action}",
            ) from err
        except HttpResponseError as err:
            status = err.status_code or 0
            where = f"(HTTP {status}) while {action}"
            if status in (409, 412):
                raise ConcurrencyConflict(
                    "The record was changed by another request; retry.", internal=f"conflict {where}"
                ) from err
            if status == 413:
                raise RecordTooLarge("The record is too large to store.", internal=f"too large {where}") from err
            if status == 503 or status == 500 or status == 429:
                raise UpstreamUnavailable(_STORAGE_UNAVAILABLE, internal=f"Table Storage busy {where}") from err
            raise UpstreamError(_STORAGE_FAILED, internal=f"Table Storage failed {where}") from err

    def check(self) -> bool:
        """``StorageHealth``: one cheap listing call without retries.

        Returns True when storage answers; raises UpstreamUnavailable (or ConfigurationError
        for refused credentials) with a message that names the endpoint, never the key.
        """
        try:
            with self.translating("checking health"):
                pages = self._service.list_tables(results_per_page=1, retry_total=0).by_page()
                list(next(pages, []))
        except ServiceError as err:
            logger.warning("Table Storage health check failed: %s", err.describe())
            if isinstance(err, (UpstreamUnavailable, ConfigurationError)):
                raise
            raise UpstreamUnavailable(err.message) from err
        return True
