"""The whole local stack: Azurite, the local Microsoft cloud and the Functions host, wired together.

``python -m devtools.stack`` (the README's run command calls it) serves the app at
http://localhost:7071/api with the local cloud as Entra ID and Graph. When
AUTHORITY_HOST / GRAPH_BASE_URL name other hosts (a real tenant), no local cloud
is started and the settings are used as given. Tests use ``service_settings()``
to configure the app against a cloud they started themselves.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.azurite import ROOT, start_azurite
from devtools.host.logs import configure_logging
from devtools.serving import stop_together, wait_for_stop_signal
from shared.config import WORKER_THREADS

DATA_DIR = ROOT / ".devdata"
CONSOLE_PAGES = ("/", "/availability", "/bookings")
LOCAL_HOSTS = ("https://127.0.0.1", "https://localhost", "https://[::1]")


def key_file_location(settings: dict[str, str]) -> str:
    """Where the service keeps its token-encryption key when no Key Vault is set (outside the repository)."""
    if settings.get("LOCAL_KEY_FILE"):
        return settings["LOCAL_KEY_FILE"]
    base = settings.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "interview-calendar", "token-keys.json")


def reset_data() -> list[str]:
    """Forget the local cloud's saved world and Azurite's data (they must agree); returns what was removed."""
    from devtools.cloud import persist

    removed = []
    if persist.forget_saved(DATA_DIR / "cloud"):
        removed.append(str(persist.world_path(DATA_DIR / "cloud")))
    azurite_dir = DATA_DIR / "azurite"
    if azurite_dir.exists():
        shutil.rmtree(azurite_dir)
        removed.append(str(azurite_dir))
    return removed


def fixture_app() -> dict[str, Any]:
    """The service's app registration in the local cloud's directory fixture."""
    directory = json.loads((ROOT / "devtools" / "cloud" / "fixtures" / "directory.json").read_text())
    return dict(directory["apps"][0])


def service_settings(
    *,
    authority_host: str,
    graph_url: str,
    ca_bundle: str,
    storage: str,
    public_base_url: str,
    function_key: str,
    key_file: str | None = None,
) -> dict[str, str]:
    """App settings that point the service at a local cloud."""
    app = fixture_app()
    return {
        "AzureWebJobsStorage": storage,
        "AUTHORITY_HOST": authority_host,
        "GRAPH_BASE_URL": graph_url,
        "SSL_CERT_FILE": ca_bundle,
        "REQUESTS_CA_BUNDLE": ca_bundle,
        "CLIENT_ID": app["client_id"],
        "CLIENT_SECRET": app["secrets"][0],
        "PUBLIC_BASE_URL": public_base_url,
        "FUNCTION_KEY": function_key,
        "PURGE_SCHEDULE": "0 */15 * * * *",
        "RECOVERY_SCHEDULE": "0 */5 * * * *",
        "RENEWAL_SCHEDULE": "0 0 */6 * * *",
        "RECONCILE_SCHEDULE": "0 */30 * * * *",
        "BUSY_CACHE_DELTA_SCHEDULE": "0 */5 * * * *",
        "BUSY_CACHE_RESYNC_SCHEDULE": "0 30 3 * * *",
        "EMAIL_SCHEDULE": "0 * * * * *",
        "NOTIFICATION_QUEUE": "graph-notifications",
        "PYTHON_THREADPOOL_THREAD_COUNT": str(WORKER_THREADS),
        **({"LOCAL_KEY_FILE": key_file} if key_file else {}),
    }


def _local_settings() -> dict[str, str]:
    path = ROOT / "local.settings.json"
    if not path.exists():
        return {}
    values = json.loads(path.read_text()).get("Values", {})
    return {k: str(v) for k, v in values.items() if v not in (None, "")}


def _dev_function_key() -> str:
    path = DATA_DIR / "function-key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="the app's HTTP port (7071, like func start)")
    parser.add_argument("--cloud-port", type=int, default=8443, help="the local Microsoft cloud's port (8443)")
    parser.add_argument("--console-port", type=int, default=7080, help="the console's port (7080)")
    parser.add_argument(
        "--reset", action="store_true", help="start over: forget the local cloud's world and Azurite's data"
    )
    parser.add_argument(
        "--data-dir", help="where the stack keeps its data (default .devdata in the checkout; benchmarks use another)"
    )
    return parser.parse_args(argv)


@dataclass
class _Running:
    """What has started so far: how to stop it (the front, then what it uses) and the banner lines."""

    front: list[Callable[[], None]] = field(default_factory=list)
    back: list[Callable[[], None]] = field(default_factory=list)
    banner: list[str] = field(default_factory=list)
    local_cloud: str = ""
    ca_bundle: str = ""


def _start_back(args: argparse.Namespace, given: dict[str, str], running: _Running) -> dict[str, str]:
    """Azurite and the local cloud when the settings ask for them; returns the app's settings."""
    if given.get("AzureWebJobsStorage", "UseDevelopmentStorage=true") == "UseDevelopmentStorage=true":
        azurite = start_azurite(data_dir=str(DATA_DIR / "azurite"))
        running.back.append(azurite.stop)
        running.banner.append(f"Azurite (storage)        : {azurite.connection_string}")
    console_url = f"http://localhost:{args.console_port}"
    authority = given.get("AUTHORITY_HOST", "")
    if authority and not authority.startswith(LOCAL_HOSTS):
        running.banner.append(f"Identity platform        : {authority}")
        return {"FUNCTION_KEY": _dev_function_key(), **given}
    from devtools.cloud.server import start_cloud

    cloud = start_cloud(port=args.cloud_port, data_dir=DATA_DIR / "cloud", keep_world=True)
    running.back.append(cloud.stop)
    settings = service_settings(
        authority_host=cloud.authority_host,
        graph_url=cloud.graph_url,
        ca_bundle=str(cloud.ca_bundle),
        storage=given.get("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
        # The console is the app's public origin: browser legs go through it (devtools/console).
        public_base_url=console_url,
        function_key=given.get("FUNCTION_KEY") or _dev_function_key(),
    )
    settings["ALLOWED_RETURN_URLS"] = ",".join(f"{console_url}{page}" for page in CONSOLE_PAGES)
    settings.update({k: v for k, v in given.items() if k not in settings})
    kept = "the saved world" if cloud.restored else "the fixtures"
    running.banner.append(f"Local Microsoft cloud    : {cloud.base_url} (controls under /_control; from {kept})")
    running.banner.append(f"  CA to trust            : {cloud.ca_cert} (README: trusting the local cloud)")
    running.banner.append(f"  its world              : {DATA_DIR / 'cloud'} (scripts/run --reset starts over)")
    running.local_cloud = cloud.base_url
    running.ca_bundle = str(cloud.ca_bundle)
    return settings


def _start_front(args: argparse.Namespace, settings: dict[str, str], running: _Running) -> None:
    """The functions host and the console in front of it."""
    import function_app
    from devtools.host.config import HostOptions
    from devtools.host.runner import start_host

    # host.json's options, as `func start` reads them: without them the queue poller backs off to the
    # platform's default of one minute, and an RSVP could wait that long to be picked up.
    options = HostOptions.load(ROOT)
    host = start_host(function_app.app, settings=settings, port=args.port, options=options)
    running.front.append(host.stop)
    from devtools.console.app import ConsoleConfig
    from devtools.console.server import start_console

    console = start_console(
        ConsoleConfig(
            service_url=host.base_url,
            function_key=settings["FUNCTION_KEY"],
            tenant_hint="contoso.example",
            local_cloud_url=running.local_cloud,
            local_ca_bundle=running.ca_bundle if running.local_cloud else "",
        ),
        port=args.console_port,
        public_host="localhost",
    )
    running.front.append(console.stop)
    public = settings.get("PUBLIC_BASE_URL", f"http://localhost:{args.port}")
    running.banner += [
        f"Functions host           : {host.base_url}/api  (try {public}/api/health)",
        f"Function key             : stored in {DATA_DIR / 'function-key'} (send as x-functions-key)",
        f"Token-encryption key     : {key_file_location(settings)} (outside the repository)",
        f"Admin consent            : {public}/api/consent/start?tenant=contoso.example",
        f"Sign in                  : {public}/api/auth/login",
        f"Console (open this)      : {console.base_url}  (the scheduling app; the README's demo starts here)",
        "Ctrl+C stops everything.",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.data_dir:
        global DATA_DIR
        DATA_DIR = Path(args.data_dir).resolve()
    configure_logging()
    if args.reset:
        removed = reset_data()
        print("Reset: removed " + (", ".join(removed) if removed else "nothing (no saved data)"), flush=True)

    # Whatever started is stopped again, also when a later part fails to start (a busy port, say):
    # nothing is left running without its parent. The front (console, host) stops first, then what
    # it uses (cloud, storage); the parts of each stage stop at the same time.
    running = _Running()
    # Ctrl+C (or SIGTERM) while the parts start stops what started so far, as it does once they run.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        given: dict[str, str] = {**_local_settings(), **{k: v for k, v in os.environ.items() if v}}
        settings = _start_back(args, given, running)
        # The worker reads its settings from the environment, as under Core Tools.
        os.environ.update(settings)
        _start_front(args, settings, running)
        print_banner(running.banner)
        wait_for_stop_signal()
    except KeyboardInterrupt:
        print("stopping...", flush=True)
    finally:
        started = time.monotonic()
        stop_together(running.front)
        stop_together(running.back)
    print(f"stopped in {time.monotonic() - started:.1f} s.", flush=True)
    return 0


def print_banner(lines: list[str]) -> None:
    """Write the banner in one piece: log lines from the parts' threads wait until it is out."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    for handler in handlers:
        handler.acquire()
    try:
        for handler in handlers:
            handler.flush()
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    finally:
        for handler in reversed(handlers):
            handler.release()


def exit_now(status: int) -> None:
    """End the process as soon as everything it started has stopped.

    Every part was stopped and its data written (the cloud's world, Azurite's data) before this; what
    an ordinary interpreter exit would still do is join threads of SDK clients and thread pools that
    have nothing left to save, which took seconds. So the streams are flushed and the process ends."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    exit_now(main())
