"""``python -m devtools.cloud``: run the local Microsoft cloud in the foreground until Ctrl+C.

Its world (CA, signing key, consents, refresh tokens, calendar changes, subscriptions) lives in the
data folder across restarts; ``--reset`` starts over from the fixtures (the CA stays, so a browser
that trusts it keeps trusting the cloud).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from devtools.cloud import persist
from devtools.cloud.controls import SERVICE_CLIENT_ID
from devtools.cloud.server import settle_heap, start_cloud
from devtools.cloud.tls import DEFAULT_DATA_DIR
from devtools.serving import wait_for_stop_signal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cloud", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="port to listen on (default 8443, 0: any free port)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where the CA, the bundle and the world are kept"
    )
    parser.add_argument("--reset", action="store_true", help="forget the saved world and start from the fixtures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.reset and persist.forget_saved(args.data_dir):
        print(f"Forgot the saved world in {args.data_dir}; starting from the fixtures.")
    cloud = start_cloud(host=args.host, port=args.port, data_dir=args.data_dir, keep_world=True)
    settle_heap()
    where = "the saved world" if cloud.restored else "the fixtures"
    print(f"Local Microsoft cloud at {cloud.base_url} (from {where}; kept in {args.data_dir})")
    print(f"  authority host : {cloud.authority_host}")
    print(f"  Graph          : {cloud.graph_url}")
    print(f"  controls       : {cloud.base_url}/_control/directory")
    print(f"  app client id  : {SERVICE_CLIENT_ID} (secret in devtools/cloud/fixtures/directory.json)")
    print(f"  CA to trust    : {cloud.ca_cert} (see the README: trusting the local cloud)")
    print("Set in the service's environment:")
    print(f"  AUTHORITY_HOST={cloud.authority_host}")
    print(f"  GRAPH_BASE_URL={cloud.graph_url}")
    print(f"  SSL_CERT_FILE={cloud.ca_bundle}")
    print(f"  REQUESTS_CA_BUNDLE={cloud.ca_bundle}")
    print("Ctrl+C stops it.", flush=True)
    wait_for_stop_signal()
    cloud.stop()
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
