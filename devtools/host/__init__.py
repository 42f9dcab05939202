"""A local host for the Functions app: what ``func start`` does, for where Core Tools is absent.

Run it: ``python -m devtools.host`` (see ``devtools.host.__main__``). In tests:
``start_host(app, settings=..., port=0, options=HostOptions().with_queues(...))`` returns a
``RunningHost`` with ``base_url`` and ``stop()`` (see ``devtools.host.runner``). The HTTP
side alone is ``build_asgi_app`` (``devtools.host.app``); timers and queue triggers live in
``devtools.host.timers`` and ``devtools.host.queues``. Never deployed (.funcignore).
"""

from __future__ import annotations

from devtools.host.app import build_asgi_app
from devtools.host.config import (
    HostConfigurationError,
    HostOptions,
    QueueOptions,
    load_settings,
)
from devtools.host.runner import LocalHost, RunningHost, start_host

__all__ = [
    "HostConfigurationError",
    "HostOptions",
    "LocalHost",
    "QueueOptions",
    "RunningHost",
    "build_asgi_app",
    "load_settings",
    "start_host",
]
