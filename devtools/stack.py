"""The whole local stack: Azurite, the local Microsoft cloud and the Functions host, wired together.

``python -m devtools.stack`` (the README's run command calls it) serves the app at
http://localhost:7071/api with the local cloud as Entra ID and Graph. When
AUTHORITY_HOST / GRAPH_BASE_URL name other hosts (a real tenant), no local cloud
is started and the settings are used as given. Tests use ``service_settings()``
to configure the app against a cloud they started themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import time
from typing import Any

from devtools.azurite import ROOT, start_azurite
from devtools.host.logs import configure_logging
from devtools.serving import wait_for_stop_signal

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
        "EMAIL_SCHEDULE": "0 * * * * *",
        "NOTIFICATION_QUEUE": "graph-notifications",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="the app's HTTP port (7071, like func start)")
    parser.add_argument("--cloud-port", type=int, default=8443, help="the local Microsoft cloud's port (8443)")
    parser.add_argument("--console-port", type=int, default=7080, help="the console's port (7080)")
    parser.add_argument(
        "--reset", action="store_true", help="start over: forget the local cloud's world and Azurite's data"
    )
    args = parser.parse_args(argv)
    configure_logging()
    if args.reset:
        removed = reset_data()
        print("Reset: removed " + (", ".join(removed) if removed else "nothing (no saved data)"), flush=True)

    # Whatever started is stopped again, also when a later part fails to start (a busy port, say):
    # nothing is left running without its parent.
    with contextlib.ExitStack() as running:
        given: dict[str, str] = {**_local_settings(), **{k: v for k, v in os.environ.items() if v}}
        azurite = None
        if given.get("AzureWebJobsStorage", "UseDevelopmentStorage=true") == "UseDevelopmentStorage=true":
            azurite = start_azurite(data_dir=str(DATA_DIR / "azurite"))
            running.callback(azurite.stop)
            print(f"Azurite (storage)        : {azurite.connection_string}")
        cloud = None
        console_url = f"http://localhost:{args.console_port}"
        authority = given.get("AUTHORITY_HOST", "")
        if not authority or authority.startswith(LOCAL_HOSTS):
            from devtools.cloud.server import start_cloud

            cloud = start_cloud(port=args.cloud_port, data_dir=DATA_DIR / "cloud", keep_world=True)
            running.callback(cloud.stop)
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
            print(f"Local Microsoft cloud    : {cloud.base_url} (controls under /_control; from {kept})")
            print(f"  CA to trust            : {cloud.ca_cert} (README: trusting the local cloud)")
            print(f"  its world              : {DATA_DIR / 'cloud'} (scripts/run --reset starts over)")
        else:
            settings = {"FUNCTION_KEY": _dev_function_key(), **given}
            print(f"Identity platform        : {authority}")
        # The worker reads its settings from the environment, as under Core Tools.
        os.environ.update(settings)

        import function_app
        from devtools.host.runner import start_host

        host = start_host(function_app.app, settings=settings, port=args.port)
        running.callback(host.stop)
        from devtools.console.app import ConsoleConfig
        from devtools.console.server import start_console

        console = start_console(
            ConsoleConfig(
                service_url=host.base_url, function_key=settings["FUNCTION_KEY"], tenant_hint="contoso.example"
            ),
            port=args.console_port,
            public_host="localhost",
        )
        running.callback(console.stop)
        public = settings.get("PUBLIC_BASE_URL", f"http://localhost:{args.port}")
        print(f"Functions host           : {host.base_url}/api  (try {public}/api/health)")
        print(f"Function key             : stored in {DATA_DIR / 'function-key'} (send as x-functions-key)")
        print(f"Token-encryption key     : {key_file_location(settings)} (outside the repository)")
        print(f"Admin consent            : {public}/api/consent/start?tenant=contoso.example")
        print(f"Sign in                  : {public}/api/auth/login")
        print(f"Console (open this)      : {console.base_url}  (the scheduling app; the README's demo starts here)")
        print("Ctrl+C stops everything.", flush=True)

        wait_for_stop_signal()
        started = time.monotonic()
    print(f"stopped in {time.monotonic() - started:.1f} s.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
