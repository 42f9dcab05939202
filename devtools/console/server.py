"""Run the console with uvicorn in a background thread (the stack and the tests) or the foreground."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import uvicorn

from devtools.console.app import ConsoleConfig, build_app
from devtools.serving import serve_in_thread

START_TIMEOUT_SECONDS = 15.0


@dataclass
class RunningConsole:
    base_url: str
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_console(
    config: ConsoleConfig, *, host: str = "127.0.0.1", port: int = 0, public_host: str | None = None
) -> RunningConsole:
    """Serve the console on ``host:port`` (0: a free port); return once it accepts connections.

    ``public_host`` is the name in the returned URL (``localhost`` for the stack, so the URL is the
    one printed and registered)."""
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(config),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,  # query strings of the browser legs carry codes and state
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )
    thread, bound = serve_in_thread(server, name="console", address=f"{host}:{port}", timeout=START_TIMEOUT_SECONDS)
    return RunningConsole(base_url=f"http://{public_host or host}:{bound}", _server=server, _thread=thread)
