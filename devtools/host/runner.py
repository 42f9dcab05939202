"""Run the whole local host: HTTP (uvicorn), timers and queue pollers on one event loop.

``LocalHost`` is what ``python -m devtools.host`` runs in the main thread;
``start_host(app, settings=...)`` runs the same in a background thread for tests::

    host = start_host(app, settings={"FUNCTION_KEY": "k", "AzureWebJobsStorage": conn}, port=0)
    httpx.get(f"{host.base_url}/api/ping", params={"code": "k"})
    host.stop()

All configuration problems (unsupported bindings, bad schedules, missing connection
settings) raise ``HostConfigurationError`` from the constructor, before anything runs.
The host reads settings only from the mapping it is given; it does not export them to
``os.environ`` (the command line does, as Core Tools does for the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import uvicorn
from azure.functions.decorators.function_app import FunctionRegister

from devtools.host.app import build_asgi_app
from devtools.host.config import HostConfigurationError, HostOptions
from devtools.host.functions import HTTP_TRIGGER, FunctionSpec, Invoker, index_functions
from devtools.host.queues import QueueService
from devtools.host.timers import DEFAULT_PAST_DUE_TOLERANCE, TimerService

logger = logging.getLogger(__name__)

THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
# How long stopping waits for running invocations before abandoning them.
DEFAULT_SHUTDOWN_GRACE = timedelta(seconds=10)


def _thread_count(settings: Mapping[str, str]) -> int | None:
    raw = settings.get(THREAD_COUNT_SETTING, "").strip()
    if not raw:
        return None  # the stdlib default, as the worker uses on Python 3.9+
    if not raw.isdigit() or not 1 <= int(raw) <= 32:
        raise HostConfigurationError(f"{THREAD_COUNT_SETTING} must be a number from 1 to 32, got '{raw}'.")
    return int(raw)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the host handles signals so it can stop its pollers first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LocalHost:
    """The indexed app with its HTTP server, timers and queue pollers, ready to serve."""

    def __init__(
        self,
        function_app: FunctionRegister,
        *,
        settings: Mapping[str, str],
        options: HostOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 7071,
        past_due_tolerance: timedelta = DEFAULT_PAST_DUE_TOLERANCE,
        shutdown_grace: timedelta = DEFAULT_SHUTDOWN_GRACE,
        log_level: str = "warning",
    ) -> None:
        self.settings = dict(settings)
        self.options = options or HostOptions()
        self.specs: list[FunctionSpec] = index_functions(function_app, settings=self.settings)
        self.invoker = Invoker(max_workers=_thread_count(self.settings))
        self.timers = TimerService(
            self.specs,
            settings=self.settings,
            invoker=self.invoker,
            past_due_tolerance=past_due_tolerance,
        )
        self.queues = QueueService(
            self.specs,
            settings=self.settings,
            options=self.options.queues,
            invoker=self.invoker,
        )
        asgi = build_asgi_app(
            function_app,
            settings=self.settings,
            options=self.options,
            invoker=self.invoker,
            specs=self.specs,
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            self.invoker.shutdown()
            self.queues.close()
            raise
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        # No access log: request lines carry ?code= keys, which must never be logged. log_config=None
        # leaves logging set-up to the caller (the command line, or pytest), not to uvicorn.
        config = uvicorn.Config(asgi, log_level=log_level, log_config=None, lifespan="on", access_log=False)
        self.server = _Server(config)
        self._shutdown_grace = shutdown_grace
        self._stopping: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> list[str]:
        lines = []
        for spec in self.specs:
            if spec.trigger_type == HTTP_TRIGGER:
                methods = ",".join(str(m) for m in spec.trigger.get("methods") or []) or "ALL"
                route = str(spec.trigger.get("route") or spec.name)
                prefix = f"/{self.options.route_prefix}" if self.options.route_prefix else ""
                lines.append(f"{spec.name}: [{methods}] {self.base_url}{prefix}/{route}")
            else:
                lines.append(f"{spec.name}: {spec.trigger_type}")
        return lines

    async def serve(self) -> None:
        """Serve until ``request_stop`` (or SIGINT/SIGTERM when run in the main thread)."""
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        handle_signals = threading.current_thread() is threading.main_thread()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
        background = [
            asyncio.create_task(self.timers.run(self._stopping), name="timers"),
            asyncio.create_task(self.queues.run(self._stopping), name="queues"),
        ]
        try:
            await self.server.serve(sockets=[self._socket])
        finally:
            self._stopping.set()
            _, pending = await asyncio.wait(background, timeout=self._shutdown_grace.total_seconds())
            for task in pending:
                logger.warning(
                    "Stopping '%s' without waiting longer for running invocations.",
                    task.get_name(),
                )
                task.cancel()
            results = await asyncio.gather(*background, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    logger.error("A background service failed", exc_info=result)
            self.invoker.shutdown()
            self.queues.close()
            self._socket.close()
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.server.should_exit:
            # A second signal: stop waiting for open connections.
            self.server.force_exit = True
        logger.info("Received %s: stopping...", signal.Signals(sig).name)
        self.server.should_exit = True

    def request_stop(self) -> None:
        """Ask a running host to stop; safe to call from any thread."""
        self.server.should_exit = True


@dataclass
class RunningHost:
    """A host serving in a background thread."""

    base_url: str
    local_host: LocalHost = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 30.0) -> None:
        self.local_host.request_stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("The local host did not stop in time.")


def start_host(
    function_app: FunctionRegister,
    *,
    settings: Mapping[str, str],
    port: int = 0,
    options: HostOptions | None = None,
    past_due_tolerance: timedelta = DEFAULT_PAST_DUE_TOLERANCE,
    shutdown_grace: timedelta = DEFAULT_SHUTDOWN_GRACE,
    start_timeout: float = 30.0,
) -> RunningHost:
    """Start the host on 127.0.0.1 (``port=0``: any free port) and return once it accepts requests.

    ``options`` stands for host.json (queues polling, route prefix, ...). Raises
    HostConfigurationError for an app or settings the host cannot serve.
    """
    local_host = LocalHost(
        function_app,
        settings=settings,
        options=options,
        port=port,
        past_due_tolerance=past_due_tolerance,
        shutdown_grace=shutdown_grace,
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(local_host.serve())
        except Exception as err:
            logger.exception("The local host failed")
            failure.append(err)  # surfaced to the starting thread below when it fails during start

    thread = threading.Thread(target=run, name=f"local-host-{local_host.port}", daemon=True)
    thread.start()
    waited = 0.0
    while not local_host.server.started:
        if not thread.is_alive():
            raise RuntimeError("The local host stopped while starting.") from (failure[0] if failure else None)
        if waited >= start_timeout:
            local_host.request_stop()
            raise RuntimeError(f"The local host did not start within {start_timeout} s.")
        with contextlib.suppress(Exception):
            thread.join(0.02)
        waited += 0.02
    return RunningHost(base_url=local_host.base_url, local_host=local_host, _thread=thread)
