"""Start a uvicorn server on a background thread and wait until it accepts connections."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable

import uvicorn


def serve_in_thread(server: uvicorn.Server, *, name: str, address: str, timeout: float) -> tuple[threading.Thread, int]:
    """Run ``server`` on a daemon thread named ``name``; return the thread and the port it bound.

    Raises RuntimeError (naming ``address``) when it fails or does not start within ``timeout`` seconds.
    uvicorn installs signal handlers only on the main thread, so serving on this one is safe."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as err:  # noqa: BLE001 - reported to the starting thread below
            failure.append(err)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"the {name} did not start on {address}") from (failure[0] if failure else None)
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the {name} did not start on {address} within {timeout} s")
        time.sleep(0.01)
    return thread, int(server.servers[0].sockets[0].getsockname()[1])


def wait_for_stop_signal() -> None:
    """Block until SIGINT (Ctrl+C) or SIGTERM, then say so."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("stopping...", flush=True)


def stop_together(stops: list[Callable[[], None]], timeout: float = 10.0) -> None:
    """Call every ``stop`` at the same time, each on a thread of its own; return once all returned (or
    ``timeout`` seconds passed). A failing stop is reported and does not keep the others from stopping."""

    def run(stop: Callable[[], None]) -> None:
        try:
            stop()
        except Exception:  # noqa: BLE001 - the others still stop
            logging.getLogger(__name__).exception("stopping %s failed", getattr(stop, "__qualname__", stop))

    threads = [threading.Thread(target=run, args=(stop,), name="stop", daemon=True) for stop in stops]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
