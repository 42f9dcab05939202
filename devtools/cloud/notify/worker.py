"""The background delivery worker: one daemon thread per world, running an asyncio loop that delivers due
notifications and runs the timers, and the registry that finds a world's worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable

import httpx

from devtools.cloud.notify.model import POLL_SECONDS
from devtools.cloud.state import World

logger = logging.getLogger(__name__)

# One round of delivery: start the POSTs now due, return their tasks.
DeliveryRound = Callable[[World, httpx.AsyncClient], Awaitable[list[asyncio.Task[None]]]]


def http_client() -> httpx.AsyncClient:
    # No redirects: Graph posts to exactly the registered URL. No timeout of httpx's own (its default is
    # 5 seconds): each POST's only limit is the notification timeout, applied around it.
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=None)


class DeliveryWorker:
    """A daemon thread running an asyncio loop that delivers due notifications and runs the timers."""

    def __init__(self, world: World, deliver_round: DeliveryRound) -> None:
        self._world_ref = weakref.ref(world)
        self._deliver_round = deliver_round
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloud-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def wake(self) -> None:
        loop, event = self._loop, self._wake_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closing during stop()
                loop.call_soon_threadsafe(event.set)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self.wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self._ready.set()
        tasks: set[asyncio.Task[None]] = set()
        async with http_client() as client:
            while not self._stopping:
                world = self._world_ref()
                if world is None:
                    break
                try:
                    for task in await self._deliver_round(world, client):
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                except Exception:  # keep delivering for the other subscriptions
                    logger.exception("notification worker cycle failed")
                del world
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_event.wait(), POLL_SECONDS)
                self._wake_event.clear()
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


_workers: weakref.WeakKeyDictionary[World, DeliveryWorker] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def run_worker(world: World, deliver_round: DeliveryRound) -> None:
    """Start a delivery worker for this world if none is running."""
    with _registry_lock:
        worker = _workers.get(world)
        if worker is not None and worker.alive:
            return
        worker = DeliveryWorker(world, deliver_round)
        _workers[world] = worker
    worker.start()


def stop_delivery(world: World, timeout: float = 5.0) -> None:
    """Stop the background worker; pending notifications stay queued (flush or restart to send them)."""
    with _registry_lock:
        worker = _workers.pop(world, None)
    if worker is not None:
        worker.stop(timeout)


def delivery_running(world: World) -> bool:
    with _registry_lock:
        worker = _workers.get(world)
    return worker is not None and worker.alive


def wake(world: World) -> None:
    worker = _workers.get(world)
    if worker is not None:
        worker.wake()
