"""Settings.from_env(): the only place that reads the environment.

Every key is listed, with a placeholder and a one-line comment, in
``local.settings.sample.json`` and in the README's settings table.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import ConfigurationError

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_STORAGE = "UseDevelopmentStorage=true"

# Application permissions the tenant admin grants once (roles in the app-only token).
REQUIRED_APP_ROLES: tuple[str, ...] = ("Calendars.ReadWrite", "User.Read.All", "MailboxSettings.Read")

# The one list of settings: every name ``Settings.from_env`` reads (tests/unit/test_settings.py checks
# that it reads exactly these). The deployment templates (infra/app/function-app.bicep) set exactly
# ``DEPLOYED_SETTINGS``: these less ``LOCAL_ONLY_SETTINGS``, plus ``HOST_SETTINGS`` that the Functions
# host or the Python worker read on the app's behalf (tests/deploy checks both ways).
APP_SETTINGS: tuple[str, ...] = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AUTHORITY_HOST",
    "GRAPH_BASE_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "PUBLIC_BASE_URL",
    "KEY_VAULT_URL",
    "TOKEN_KEY_SECRET_NAME",
    "LOCAL_KEY_FILE",
    "TABLE_PREFIX",
    "ALLOWED_RETURN_URLS",
    "SESSION_TTL_SECONDS",
    "FLOW_TTL_SECONDS",
    "HTTP_TIMEOUT_SECONDS",
    "AVAILABILITY_DEADLINE_SECONDS",
    "NOTIFICATION_QUEUE",
    "NOTIFICATION_RETRY_SECONDS",
    "CLOCK_OFFSET_SECONDS",
    "RENEWAL_SCHEDULE",
    "SUBSCRIPTION_MINUTES",
    "BUSY_CACHE_ENABLED",
    "BUSY_CACHE_FRESHNESS_SECONDS",
    "BUSY_CACHE_PAST_DAYS",
    "BUSY_CACHE_FUTURE_DAYS",
    "BUSY_CACHE_MAX_PEOPLE",
    "BUSY_CACHE_EVICT_DAYS",
    "EMAIL_PER_MINUTE",
    "EMAIL_RECIPIENTS_PER_DAY",
    "EMAIL_REMINDER_HOURS",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
)
# Read by the code but never deployed: Azure reaches storage by identity and keys live in Key Vault.
LOCAL_ONLY_SETTINGS: tuple[str, ...] = ("AzureWebJobsStorage", "LOCAL_KEY_FILE", "CLOCK_OFFSET_SECONDS")
# Read by the Functions host or the Python worker, not by the code: the blob endpoint (the host's leases
# and timer state), the timers' %SCHEDULE% bindings, the worker's OpenTelemetry context switch, and the
# worker's thread count (its invocations run on that many threads: see WORKER_THREADS).
HOST_SETTINGS: tuple[str, ...] = (
    "AzureWebJobsStorage__blobServiceUri",
    "PURGE_SCHEDULE",
    "RECOVERY_SCHEDULE",
    "RECONCILE_SCHEDULE",
    "BUSY_CACHE_DELTA_SCHEDULE",
    "BUSY_CACHE_RESYNC_SCHEDULE",
    "EMAIL_SCHEDULE",
    "PYTHON_ENABLE_OPENTELEMETRY",
    "PYTHON_THREADPOOL_THREAD_COUNT",
)
# The Python worker runs synchronous invocations on min(32, cores + 4) threads unless told otherwise: 6 on
# a 2-core instance, so a recruiter's page asking for eight slot searches at once had two wait for a thread
# while the others waited on Graph, and one recruiter's queries queued behind a mailbox could hold every
# thread another recruiter needed. Our invocations spend most of their time waiting on Graph and storage
# (I/O-bound, where Microsoft's guidance is to raise it): 16 threads, with the instance's HTTP concurrency
# (infra/app/function-app.bicep) set to match. The local host reads the same setting.
WORKER_THREADS = 16
DEPLOYED_SETTINGS: tuple[str, ...] = (
    tuple(name for name in APP_SETTINGS if name not in LOCAL_ONLY_SETTINGS) + HOST_SETTINGS
)
# Without these the app cannot serve anything it exists for: checked at the first invocation of a worker.
REQUIRED_SETTINGS: tuple[str, ...] = ("CLIENT_ID", "CLIENT_SECRET", "RENEWAL_SCHEDULE")


def _default_key_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "interview-calendar", "token-keys.json")


@dataclass(frozen=True)
class Settings:
    """Typed view of the app settings. Optional keys have explicit defaults."""

    storage_connection: str = DEFAULT_STORAGE
    # Identity-based storage (AzureWebJobsStorage__*), used when no connection string is given.
    storage_credential: str | None = None
    storage_client_id: str | None = None
    storage_queue_uri: str | None = None
    storage_table_uri: str | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    public_base_url: str = "http://localhost:7071"
    key_vault_url: str | None = None
    token_key_secret_name: str = "token-encryption-key"  # noqa: S105 - the secret's name, not its value
    local_key_file: str = field(default_factory=_default_key_file)
    table_prefix: str = ""
    allowed_return_urls: tuple[str, ...] = ()
    session_ttl_seconds: int = 8 * 3600
    flow_ttl_seconds: int = 600
    http_timeout_seconds: float = 10.0
    availability_deadline_seconds: float = 20.0
    notification_queue: str = "graph-notifications"
    renewal_schedule: str | None = None
    subscription_minutes: int = 10080
    appinsights_connection_string: str | None = field(default=None, repr=False)
    appinsights_authentication: str | None = None
    notification_retry_seconds: float = 4.0
    # Candidate email: each recruiter's sends stay under Exchange Online's 30 a minute and 10,000 recipients a
    # day; reminders go this many hours before the interview.
    email_per_minute: int = 25
    email_recipients_per_day: int = 9000
    email_reminder_hours: float = 24.0
    clock_offset_seconds: float = 0.0  # tests only: the service's clock runs this far from the wall clock
    # The warm busy cache (shared.cache): on or off; how long after its last confirmed delta round a person
    # stays warm; the rolling window kept (days back and ahead); how many people per tenant; and after how
    # many days without being asked about a person is let go.
    busy_cache_enabled: bool = True
    busy_cache_freshness_seconds: float = 600.0
    busy_cache_past_days: int = 7
    busy_cache_future_days: int = 90
    busy_cache_max_people: int = 500
    busy_cache_evict_days: int = 14

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``environ`` (default: the process environment). Raises ConfigurationError
        naming the setting that is malformed."""
        env = _Environment(os.environ if environ is None else environ)
        connection, queue_uri, table_uri = _storage_location(env)
        return cls(
            storage_connection=connection,
            storage_credential=env.get("AzureWebJobsStorage__credential"),
            storage_client_id=env.get("AzureWebJobsStorage__clientId"),
            storage_queue_uri=queue_uri,
            storage_table_uri=table_uri,
            authority_host=env.opt("AUTHORITY_HOST", DEFAULT_AUTHORITY_HOST).rstrip("/"),
            graph_base_url=env.opt("GRAPH_BASE_URL", DEFAULT_GRAPH_BASE_URL).rstrip("/"),
            client_id=env.get("CLIENT_ID"),
            client_secret=env.get("CLIENT_SECRET"),
            public_base_url=env.opt("PUBLIC_BASE_URL", "http://localhost:7071").rstrip("/"),
            key_vault_url=env.get("KEY_VAULT_URL"),
            token_key_secret_name=env.opt("TOKEN_KEY_SECRET_NAME", "token-encryption-key"),
            local_key_file=env.opt("LOCAL_KEY_FILE", _default_key_file()),
            table_prefix=env.opt("TABLE_PREFIX", ""),
            allowed_return_urls=_urls(env.get("ALLOWED_RETURN_URLS")),
            session_ttl_seconds=int(env.num("SESSION_TTL_SECONDS", 8 * 3600)),
            flow_ttl_seconds=int(env.num("FLOW_TTL_SECONDS", 600)),
            http_timeout_seconds=env.num("HTTP_TIMEOUT_SECONDS", 10.0),
            availability_deadline_seconds=env.num("AVAILABILITY_DEADLINE_SECONDS", 20.0),
            notification_queue=_queue_name(env.opt("NOTIFICATION_QUEUE", "graph-notifications")),
            renewal_schedule=env.get("RENEWAL_SCHEDULE"),
            subscription_minutes=int(env.num("SUBSCRIPTION_MINUTES", 10080)),
            appinsights_connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
            appinsights_authentication=env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
            notification_retry_seconds=env.num("NOTIFICATION_RETRY_SECONDS", 4.0),
            email_per_minute=_at_most(int(env.num("EMAIL_PER_MINUTE", 25)), 30, "EMAIL_PER_MINUTE"),
            email_recipients_per_day=_at_most(
                int(env.num("EMAIL_RECIPIENTS_PER_DAY", 9000)), 10_000, "EMAIL_RECIPIENTS_PER_DAY"
            ),
            email_reminder_hours=env.num("EMAIL_REMINDER_HOURS", 24.0),
            clock_offset_seconds=_offset(env.opt("CLOCK_OFFSET_SECONDS", "0")),
            busy_cache_enabled=_flag(env.opt("BUSY_CACHE_ENABLED", "true"), "BUSY_CACHE_ENABLED"),
            busy_cache_freshness_seconds=env.num("BUSY_CACHE_FRESHNESS_SECONDS", 600.0),
            busy_cache_past_days=int(env.num("BUSY_CACHE_PAST_DAYS", 7)),
            busy_cache_future_days=int(env.num("BUSY_CACHE_FUTURE_DAYS", 90)),
            busy_cache_max_people=int(env.num("BUSY_CACHE_MAX_PEOPLE", 500)),
            busy_cache_evict_days=int(env.num("BUSY_CACHE_EVICT_DAYS", 14)),
        )

    @property
    def storage_by_identity(self) -> bool:
        """No connection string: tables and queues are reached at their service URIs with a token credential."""
        return not self.storage_connection

    def missing_required(self) -> tuple[str, ...]:
        """The names of ``REQUIRED_SETTINGS`` that are not set, in their listed order."""
        return tuple(name for name in REQUIRED_SETTINGS if not getattr(self, _REQUIRED[name]))

    def availability_deadline(self) -> float:
        """The ``time.monotonic()`` instant by which every Graph read of one free/busy answer must
        be done: ``AVAILABILITY_DEADLINE_SECONDS`` from now, taken once per request, never per read."""
        return time.monotonic() + self.availability_deadline_seconds

    def require(self, name: str) -> str:
        """Return a required setting by its environment name, or raise one clear error naming it."""
        attr = _REQUIRED[name]
        value = getattr(self, attr)
        if not value:
            raise ConfigurationError(f"Required setting {name} is not set.", setting=name)
        return str(value)


_REQUIRED = {"CLIENT_ID": "client_id", "CLIENT_SECRET": "client_secret", "RENEWAL_SCHEDULE": "renewal_schedule"}
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


class _Environment:
    """One environment mapping, read the way every setting is: trimmed, empty as unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str) -> str | None:
        """The trimmed value; None when unset or empty."""
        return self._env.get(name, "").strip() or None

    def opt(self, name: str, default: str) -> str:
        """The trimmed value; ``default`` when unset or empty."""
        return self.get(name) or default

    def num(self, name: str, default: float) -> float:
        """A positive number; ``default`` when unset."""
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"Setting {name} must be a number, got {raw!r}.") from None
        if value <= 0:
            raise ConfigurationError(f"Setting {name} must be positive.")
        return value


def _urls(raw: str | None) -> tuple[str, ...]:
    """A comma-separated list of URLs, each without its trailing slash."""
    return tuple(u.strip().rstrip("/") for u in (raw or "").split(",") if u.strip())


def _storage_location(env: _Environment) -> tuple[str, str | None, str | None]:
    """(connection string, queue service URI, table service URI). No connection string means storage by
    identity, which needs both URIs; nothing at all means the local emulator."""
    queue_uri = env.get("AzureWebJobsStorage__queueServiceUri")
    table_uri = env.get("AzureWebJobsStorage__tableServiceUri")
    connection = env.get("AzureWebJobsStorage") or ""
    if not connection and not (queue_uri or table_uri):
        connection = DEFAULT_STORAGE
    if not connection and not (queue_uri and table_uri):
        missing = "AzureWebJobsStorage__tableServiceUri" if queue_uri else "AzureWebJobsStorage__queueServiceUri"
        raise ConfigurationError(f"Identity-based storage needs both service URIs: set {missing} too.", setting=missing)
    return connection, queue_uri, table_uri


def _at_most(value: int, limit: int, name: str) -> int:
    # Exchange Online's own limit per mailbox: a pace above it would only earn throttling.
    if not 1 <= value <= limit:
        raise ConfigurationError(f"Setting {name} must be between 1 and {limit} (Exchange's limit).", setting=name)
    return value


def _offset(raw: str) -> float:
    # Any finite number of seconds, negative too (a test may pin its clock to a past date).
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigurationError(
            "Setting CLOCK_OFFSET_SECONDS must be a number of seconds.", setting="CLOCK_OFFSET_SECONDS"
        )
    return value


def _flag(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"Setting {name} must be true or false.", setting=name)


def _queue_name(value: str) -> str:
    # Azure Storage queue names: 3-63 lower-case letters, digits and single hyphens.
    if not _QUEUE_NAME.fullmatch(value) or len(value) > 57:  # room for the "-poison" suffix
        raise ConfigurationError(
            "Setting NOTIFICATION_QUEUE must be 3-57 lower-case letters, digits and single hyphens.",
            setting="NOTIFICATION_QUEUE",
        )
    return value
