"""``python -m devtools.console``: the console alone, in front of a service that already runs."""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from pathlib import Path

from devtools.azurite import ROOT
from devtools.console.app import ConsoleConfig
from devtools.console.server import start_console


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.console", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7080)
    parser.add_argument("--service", default="http://127.0.0.1:7071", help="where the service listens")
    parser.add_argument("--key-file", default=str(ROOT / ".devdata" / "function-key"))
    parser.add_argument("--tenant-hint", default="contoso.example")
    args = parser.parse_args(argv)
    key = os.environ.get("FUNCTION_KEY") or Path(args.key_file).read_text().strip()
    console = start_console(
        ConsoleConfig(service_url=args.service, function_key=key, tenant_hint=args.tenant_hint),
        port=args.port,
        public_host="localhost",
    )
    print(f"Console: {console.base_url}  (the service's PUBLIC_BASE_URL must be this URL)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    console.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
