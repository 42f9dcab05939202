"""``python -m devtools.cloud``: run the local Microsoft cloud in the foreground until Ctrl+C."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from devtools.cloud.controls import SERVICE_CLIENT_ID
from devtools.cloud.server import start_cloud
from devtools.cloud.tls import DEFAULT_DATA_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cloud", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="port to listen on (default 8443, 0: any free port)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where the CA and bundle are written")
    args = parser.parse_args(argv)
    cloud = start_cloud(host=args.host, port=args.port, data_dir=args.data_dir)
    print(f"Local Microsoft cloud at {cloud.base_url}")
    print(f"  authority host : {cloud.authority_host}")
    print(f"  Graph          : {cloud.graph_url}")
    print(f"  controls       : {cloud.base_url}/_control/directory")
    print(f"  app client id  : {SERVICE_CLIENT_ID} (secret in devtools/cloud/fixtures/directory.json)")
    print("Set in the service's environment:")
    print(f"  AUTHORITY_HOST={cloud.authority_host}")
    print(f"  GRAPH_BASE_URL={cloud.graph_url}")
    print(f"  SSL_CERT_FILE={cloud.ca_bundle}")
    print(f"  REQUESTS_CA_BUNDLE={cloud.ca_bundle}")
    print("Ctrl+C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        cloud.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
