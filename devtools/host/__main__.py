"""``python -m devtools.host``: serve a Functions app locally the way ``func start`` does.

    python -m devtools.host [--app function_app:app] [--project-dir .] [--host 127.0.0.1]
                            [--port 7071] [--log-level INFO]

Reads host.json and local.settings.json from the project folder ("Values"; the process
environment wins, and ``Host.LocalHttpPort`` sets the port when --port is not given),
exports the settings to the environment as Core Tools does for the worker, imports the
app and serves HTTP triggers, timers and queue triggers until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from pathlib import Path

from azure.functions.decorators.function_app import FunctionRegister

from devtools.host.config import HostConfigurationError, HostOptions, load_settings
from devtools.host.logs import configure_logging
from devtools.host.runner import LocalHost

logger = logging.getLogger("devtools.host")

DEFAULT_PORT = 7071


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.host", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--app",
        default="function_app:app",
        help="module:attribute of the FunctionApp (function_app:app)",
    )
    parser.add_argument(
        "--project-dir",
        default=".",
        help="folder with host.json, local.settings.json and the app",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"HTTP port ({DEFAULT_PORT}, or Host.LocalHttpPort)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (INFO)")
    return parser.parse_args(argv)


def _local_http_port(project_dir: Path) -> int | None:
    path = project_dir / "local.settings.json"
    if not path.exists():
        return None
    port = (json.loads(path.read_text(encoding="utf-8")).get("Host") or {}).get("LocalHttpPort")
    return int(port) if port else None


def _load_app(spec: str, project_dir: Path) -> FunctionRegister:
    module_name, _, attribute = spec.partition(":")
    # The worker imports the app from the project folder; do the same.
    sys.path.insert(0, str(project_dir))
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app")
    if not isinstance(app, FunctionRegister):  # FunctionApp, AsgiFunctionApp and WsgiFunctionApp
        raise HostConfigurationError(f"'{spec}' is not a func.FunctionApp.")
    return app


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    configure_logging(args.log_level.upper(), verbose=args.log_level.upper() == "DEBUG")
    project_dir = Path(args.project_dir).resolve()
    try:
        settings = load_settings(project_dir)
        # Functions read their settings from the environment, as on the platform.
        os.environ.update(settings)
        options = HostOptions.load(project_dir)
        app = _load_app(args.app, project_dir)
        port = args.port if args.port is not None else (_local_http_port(project_dir) or DEFAULT_PORT)
        host = LocalHost(
            app,
            settings=settings,
            options=options,
            host=args.host,
            port=port,
            log_level="warning",
        )
    except (HostConfigurationError, OSError, ImportError) as err:
        logger.error("Cannot start: %s", err)
        return 2
    logger.info("Functions:\n  %s", "\n  ".join(host.describe()))
    logger.info("Listening on %s (Ctrl+C to stop)", host.base_url)
    asyncio.run(host.serve())
    logger.info("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
