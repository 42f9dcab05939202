"""Run the local cloud over HTTPS with uvicorn, in a background thread (tests) or the foreground (CLI)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from devtools.cloud import notify, tokens
from devtools.cloud.app import build_app
from devtools.cloud.seed import load_world
from devtools.cloud.state import World
from devtools.cloud.tls import TlsFiles, create_tls_files

START_TIMEOUT_SECONDS = 15.0


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

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def stop(self) -> None:
        # Clients keep connections alive (MSAL's requests session does); do not wait for them.
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=10)
        notify.stop_delivery(self.world)

    def __enter__(self) -> RunningCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _config(world: World, host: str, port: int, tls: TlsFiles) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(world),
        host=host,
        port=port,
        ssl_certfile=str(tls.server_cert),
        ssl_keyfile=str(tls.server_key),
        log_level="warning",
        access_log=False,  # request lines would carry authorization codes and tokens in query strings
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


def start_cloud(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    world: World | None = None,
    data_dir: Path | str | None = None,
) -> RunningCloud:
    """Start the cloud on ``host:port`` (0: a free port) and return once it accepts connections."""
    world = world if world is not None else load_world()
    tls = create_tls_files(data_dir)
    server = uvicorn.Server(_config(world, host, port, tls))
    # uvicorn installs signal handlers only when it runs on the main thread, so this thread is safe.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as err:  # noqa: BLE001 - reported to the starting thread below
            failure.append(err)

    thread = threading.Thread(target=run, name="local-microsoft-cloud", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"the local cloud did not start on {host}:{port}") from (failure[0] if failure else None)
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the local cloud did not start on {host}:{port} within {START_TIMEOUT_SECONDS} s")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    base_url = f"https://{_url_host(host)}:{bound_port}"
    tokens.set_authority_host(world, base_url)
    return RunningCloud(
        world=world,
        base_url=base_url,
        authority_host=base_url,
        graph_url=f"{base_url}/v1.0",
        ca_bundle=tls.ca_bundle,
        ca_cert=tls.ca_cert,
        _server=server,
        _thread=thread,
    )
