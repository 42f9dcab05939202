"""Host options (the host.json subset the local host honours) and app settings loading.

Defaults mirror the Functions host: ``routePrefix`` "api"; queues ``batchSize`` 16,
``maxDequeueCount`` 5, ``visibilityTimeout`` 0, ``maxPollingInterval`` one minute and
``messageEncoding`` "base64". Settings follow Core Tools: ``local.settings.json``
"Values" first, then the process environment on top (the environment wins).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

DEFAULT_ROUTE_PREFIX = "api"
MESSAGE_ENCODINGS = ("base64", "none")

# TimeSpan as .NET writes it in host.json: [-][d.]hh:mm:ss[.fffffff]
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:\.(?P<frac>\d{1,7}))?$")
_SETTING_REF = re.compile(r"%([^%]+)%")


class HostConfigurationError(ValueError):
    """The app, host.json or the settings ask for something the host cannot serve."""


def parse_timespan(value: object, *, name: str) -> timedelta:
    """Read a host.json duration: a .NET TimeSpan string, or a number of milliseconds."""
    if isinstance(value, bool):
        raise HostConfigurationError(f"{name}: expected a duration, got {value!r}.")
    if isinstance(value, (int, float)):
        return timedelta(milliseconds=value)
    if isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match:
            frac = match.group("frac") or "0"
            return timedelta(
                days=int(match.group("days") or 0),
                hours=int(match.group("h")),
                minutes=int(match.group("m")),
                seconds=int(match.group("s")),
                microseconds=int(frac.ljust(7, "0")[:6]),
            )
    raise HostConfigurationError(f"{name}: {value!r} is not a duration such as '00:00:02'.")


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` in host.json."""

    batch_size: int = 16
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = timedelta(minutes=1)
    message_encoding: str = "base64"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 32:
            raise HostConfigurationError(f"queues.batchSize must be 1..32, got {self.batch_size}.")
        if self.max_dequeue_count < 1:
            raise HostConfigurationError(f"queues.maxDequeueCount must be at least 1, got {self.max_dequeue_count}.")
        if self.visibility_timeout < timedelta(0) or self.visibility_timeout > timedelta(days=7):
            raise HostConfigurationError("queues.visibilityTimeout must be between 0 and 7 days.")
        if self.max_polling_interval < timedelta(milliseconds=100):
            # The platform's own floor: it never polls more often than every 100 ms.
            raise HostConfigurationError("queues.maxPollingInterval must be at least 100 ms.")
        if self.message_encoding not in MESSAGE_ENCODINGS:
            raise HostConfigurationError(
                f"queues.messageEncoding must be one of {MESSAGE_ENCODINGS}, got {self.message_encoding!r}."
            )


@dataclass(frozen=True)
class HostOptions:
    """What host.json can change in the local host's behaviour."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    queues: QueueOptions = field(default_factory=QueueOptions)

    @classmethod
    def from_host_json(cls, data: Mapping[str, Any]) -> HostOptions:
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        queues = extensions.get("queues") or {}
        queue_kwargs: dict[str, Any] = {}
        if "batchSize" in queues:
            queue_kwargs["batch_size"] = int(queues["batchSize"])
        if "maxDequeueCount" in queues:
            queue_kwargs["max_dequeue_count"] = int(queues["maxDequeueCount"])
        if "visibilityTimeout" in queues:
            queue_kwargs["visibility_timeout"] = parse_timespan(queues["visibilityTimeout"], name="visibilityTimeout")
        if "maxPollingInterval" in queues:
            queue_kwargs["max_polling_interval"] = parse_timespan(
                queues["maxPollingInterval"], name="maxPollingInterval"
            )
        if "messageEncoding" in queues:
            queue_kwargs["message_encoding"] = str(queues["messageEncoding"]).lower()
        prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
        return cls(route_prefix=str(prefix).strip("/"), queues=QueueOptions(**queue_kwargs))

    @classmethod
    def load(cls, project_dir: str | os.PathLike[str]) -> HostOptions:
        """Options from ``<project_dir>/host.json``; the defaults when it is absent."""
        path = Path(project_dir) / "host.json"
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise HostConfigurationError(f"{path} is not valid JSON: {err}") from err
        return cls.from_host_json(data)

    def with_queues(self, **changes: Any) -> HostOptions:
        """A copy with some queue options changed (tests shorten the polling interval)."""
        return replace(self, queues=replace(self.queues, **changes))


def load_settings(project_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """App settings as Core Tools builds them: local.settings.json "Values", then the environment."""
    settings: dict[str, str] = {}
    path = Path(project_dir) / "local.settings.json"
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise HostConfigurationError(f"{path} is not valid JSON: {err}") from err
        if data.get("IsEncrypted"):
            raise HostConfigurationError(f"{path} is encrypted; the local host reads only plain values.")
        for key, value in (data.get("Values") or {}).items():
            settings[str(key)] = "" if value is None else str(value)
    settings.update(os.environ if environ is None else environ)
    return settings


def resolve_setting_references(value: str, settings: Mapping[str, str], *, what: str) -> str:
    """Replace ``%NAME%`` with the app setting NAME, as the host does for binding expressions."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = settings.get(name)
        if resolved is None or resolved == "":
            raise HostConfigurationError(f"{what} refers to the app setting '{name}', which is not set.")
        return resolved

    return _SETTING_REF.sub(lookup, value)
