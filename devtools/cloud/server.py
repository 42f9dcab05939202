"""Run the local cloud over HTTPS with uvicorn, in a background thread (tests) or the foreground (CLI)."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from devtools.cloud import notify, persist, tokens
from devtools.cloud.app import build_app
from devtools.cloud.seed import load_world
from devtools.cloud.state import World
from devtools.cloud.tls import DEFAULT_DATA_DIR, TlsFiles, create_tls_files
from devtools.serving import serve_in_thread

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 15.0
YOUNG_COLLECTION_EVERY = 10_000  # see settle_heap


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@dataclass
class RunningCloud:
    """A started cloud. ``authority_host`` and ``graph_url`` are what the service is configured with."""

    world: World
    base_url: str
    authority_host: str
    graph_url: str
    ca_bundle: Path  # certifi's roots + the local CA: set as SSL_CERT_FILE / REQUESTS_CA_BUNDLE
    ca_cert: Path  # the local CA alone
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _writer: persist.WorldWriter | None = field(default=None, repr=False)
    restored: bool = False  # the world was loaded from the data folder, not from the fixtures

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def stop(self) -> None:
        # Clients keep connections alive (MSAL's requests session does); do not wait for them.
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=10)
        notify.stop_delivery(self.world, timeout=1.0)
        if self._writer is not None:
            self._writer.stop()

    def __enter__(self) -> RunningCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _NoteChanges:
    """Tells the world writer after every request that the world may have changed."""

    def __init__(self, app: ASGIApp, writer: persist.WorldWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.writer.changed()


def _config(world: World, host: str, port: int, tls: TlsFiles, writer: persist.WorldWriter | None) -> uvicorn.Config:
    app: ASGIApp = build_app(world)
    if writer is not None:
        app = _NoteChanges(app, writer)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls.server_cert),
        ssl_keyfile=str(tls.server_key),
        log_level="warning",
        access_log=False,  # request lines would carry authorization codes and tokens in query strings
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


def settle_heap() -> None:
    """For a process that serves the cloud and nothing else, once its world is loaded: young collections
    every 10,000 allocations (CPython: 700) and everything built so far (modules, the seeded world) out of
    the collector's sight. Each getSchedule of 20 people allocates thousands of short-lived dicts; with the
    defaults, full collections walked the whole world every few seconds, holding every request in flight
    for 25 to 50 ms (``benchmarks/availability_load.py``). Objects created later are collected as usual."""
    young, older, oldest = gc.get_threshold()
    if 0 < young < YOUNG_COLLECTION_EVERY:
        gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)
    gc.collect()
    gc.freeze()


def start_cloud(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    world: World | None = None,
    data_dir: Path | str | None = None,
    keep_world: bool = False,
) -> RunningCloud:
    """Start the cloud on ``host:port`` (0: a free port) and return once it accepts connections.

    ``keep_world`` (the run command): the CA, the server certificate and the world live in
    ``data_dir`` across restarts (see ``persist``); the saved world is loaded unless ``world`` is
    given. Without it (the tests) every start is a fresh world with a fresh CA.
    """
    directory = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    restored = False
    if world is None:
        world = load_world()
        if keep_world:
            restored = _load_saved(world, directory)
    writer = persist.WorldWriter(world, directory) if keep_world else None
    tls = create_tls_files(directory, keep=keep_world)
    server = uvicorn.Server(_config(world, host, port, tls, writer))
    thread, bound_port = serve_in_thread(
        server, name="local Microsoft cloud", address=f"{host}:{port}", timeout=START_TIMEOUT_SECONDS
    )
    base_url = f"https://{_url_host(host)}:{bound_port}"
    tokens.set_authority_host(world, base_url)
    if writer is not None:
        tokens.signing_key(world)
        writer.start()
        writer.changed()  # the first start writes the seeded world and its new signing key
    if notify.state(world).subscriptions:
        notify.start_delivery(world)  # notifications queued before the restart go out now
    return RunningCloud(
        world=world,
        base_url=base_url,
        authority_host=base_url,
        graph_url=f"{base_url}/v1.0",
        ca_bundle=tls.ca_bundle,
        ca_cert=tls.ca_cert,
        _server=server,
        _thread=thread,
        _writer=writer,
        restored=restored,
    )


def _load_saved(world: World, directory: Path) -> bool:
    """Load the saved world; an unreadable file is moved aside (and said so), never silently lost."""
    try:
        return persist.load_saved(world, directory)
    except persist.WorldFileError as err:
        path = persist.world_path(directory)
        aside = path.with_name(f"{path.name}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        path.replace(aside)
        # restore() changes nothing unless the whole file reads, so the world is still the fixtures'.
        logger.warning("Starting from the fixtures: %s (moved to %s).", err, aside)
        return False
