"""Certificates for the local cloud: a throwaway CA and a server certificate for the loopback names.

Clients trust the cloud through the CA file (or the combined bundle: the public roots from certifi
plus this CA, so real hosts still verify when one bundle is set process-wide). No client ever
needs certificate checks turned off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / ".devdata" / "cloud"
SERVER_NAMES = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # the local CA alone
    ca_bundle: Path  # certifi's roots + the local CA
    server_cert: Path  # leaf + chain
    server_key: Path


def create_tls_files(data_dir: Path | str | None = None) -> TlsFiles:
    """Generate a fresh CA and server certificate and write them (and the combined bundle) to ``data_dir``."""
    directory = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Local Microsoft cloud (development only)")
    server = ca.issue_cert(*SERVER_NAMES)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        ca_bundle=directory / "ca-bundle.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_cert))
    public_roots = Path(certifi.where()).read_text(encoding="ascii")
    files.ca_bundle.write_text(public_roots.rstrip("\n") + "\n" + ca.cert_pem.bytes().decode("ascii"), encoding="ascii")
    cert_chain = b"".join(blob.bytes() for blob in server.cert_chain_pems)
    files.server_cert.write_bytes(cert_chain)
    # The key only guards a loopback listener of a dev tool, but keep it private to the owner anyway.
    files.server_key.touch(mode=0o600, exist_ok=True)
    files.server_key.write_bytes(server.private_key_pem.bytes())
    return files
