"""Certificates for the local cloud: a CA of its own and a server certificate for the loopback names.

Clients trust the cloud through the CA file (or the combined bundle: the public roots from certifi
plus this CA, so real hosts still verify when one bundle is set process-wide). No client ever
needs certificate checks turned off.

With ``keep=True`` (the run command) the CA outlives restarts: it is created once in the data
folder (``ca.pem``, its key ``ca-key.pem`` readable by the owner only) and reused, so a browser or
system store that trusts it once keeps trusting the cloud. The server certificate is reused too
and issued anew from the same CA when it is missing or within 30 days of its end. Without
``keep`` (the tests) every start makes a fresh CA.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme
from cryptography import x509

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / ".devdata" / "cloud"
SERVER_NAMES = ("127.0.0.1", "::1", "localhost")
CA_NAME = "Local Microsoft cloud (development only)"
SERVER_CERT_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # the local CA alone
    ca_bundle: Path  # certifi's roots + the local CA
    server_cert: Path  # leaf + chain
    server_key: Path
    ca_key: Path  # the CA's private key (kept only with keep=True)


def _files(directory: Path) -> TlsFiles:
    return TlsFiles(
        ca_cert=directory / "ca.pem",
        ca_bundle=directory / "ca-bundle.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        ca_key=directory / "ca-key.pem",
    )


def _write_private(path: Path, data: bytes) -> None:
    # The keys only guard a loopback listener of a dev tool, but keep them private to the owner anyway.
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _kept_ca(files: TlsFiles) -> trustme.CA | None:
    if not (files.ca_cert.exists() and files.ca_key.exists()):
        return None
    try:
        return trustme.CA.from_pem(files.ca_cert.read_bytes(), files.ca_key.read_bytes())
    except ValueError as err:
        logger.warning("The local cloud's CA in %s cannot be read (%s); making a new one.", files.ca_cert, err)
        return None


def _server_cert_usable(files: TlsFiles, now: dt.datetime) -> bool:
    if not (files.server_cert.exists() and files.server_key.exists()):
        return False
    try:
        leaf = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    except ValueError:
        return False
    return bool(leaf.not_valid_after_utc - now > RENEW_BEFORE)


def create_tls_files(data_dir: Path | str | None = None, *, keep: bool = False) -> TlsFiles:
    """Write the CA, the server certificate and the combined bundle to ``data_dir``.

    ``keep``: reuse the CA (and a server certificate that is not near its end) found there.
    """
    directory = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    files = _files(directory)
    now = dt.datetime.now(dt.UTC)
    ca = _kept_ca(files) if keep else None
    if ca is None:
        ca = trustme.CA(organization_name=CA_NAME)
        ca.cert_pem.write_to_path(str(files.ca_cert))
        if keep:
            _write_private(files.ca_key, ca.private_key_pem.bytes())
        files.server_cert.unlink(missing_ok=True)
    if not (keep and _server_cert_usable(files, now)):
        server = ca.issue_cert(*SERVER_NAMES, not_after=now + dt.timedelta(days=SERVER_CERT_DAYS))
        files.server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
        _write_private(files.server_key, server.private_key_pem.bytes())
    public_roots = Path(certifi.where()).read_text(encoding="ascii")
    files.ca_bundle.write_text(public_roots.rstrip("\n") + "\n" + ca.cert_pem.bytes().decode("ascii"), encoding="ascii")
    return files
