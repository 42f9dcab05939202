"""Start and stop Azurite (the Azure Storage emulator, npm package ``azurite``) for runs and tests.

``start_azurite()`` reuses an Azurite already listening on the requested ports, else
starts ``node_modules/.bin/azurite`` with data in a folder of its own and waits until
the table and queue endpoints answer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Azurite's documented, public development account (not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


SERVICES = ("Blob", "Queue", "Table")
STOP_GRACE_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def connection_string(blob: int, queue: int, table: int) -> str:
    if (blob, queue, table) == (10000, 10001, 10002):
        return "UseDevelopmentStorage=true"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen[bytes] | None = None
    data_dir: str | None = None
    log_path: str | None = field(default=None)

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the Azurite this object started (one found running is left alone).

        On SIGTERM Azurite closes its three services, which saves their data, and logs "... successfully
        closed" for each; its process may then linger for many seconds, so once the log says all three
        closed (or ``grace`` seconds passed) the process is killed.
        """
        if self.process is not None and self.process.poll() is None:
            offset = os.path.getsize(self.log_path) if self.log_path and os.path.exists(self.log_path) else 0
            self.process.terminate()
            deadline = time.monotonic() + grace
            while self.process.poll() is None and time.monotonic() < deadline:
                if self._services_closed(offset):
                    break
                time.sleep(0.05)
            if self.process.poll() is None:
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.data_dir and self.process is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _services_closed(self, offset: int) -> bool:
        if not self.log_path:
            return False
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return False
        return text.count("successfully closed") >= len(SERVICES)


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError("Azurite is not installed: run `npm ci` in the project folder.")


def start_azurite(
    *, blob_port: int = 10000, queue_port: int = 10001, table_port: int = 10002, data_dir: str | None = None
) -> Azurite:
    ports = (blob_port, queue_port, table_port)
    if all(_listening(p) for p in ports):
        return Azurite(*ports)
    if any(_listening(p) for p in ports):
        raise RuntimeError(f"Some of the Azurite ports {ports} are taken by another program.")
    own_dir = data_dir or tempfile.mkdtemp(prefix="azurite-")
    os.makedirs(own_dir, exist_ok=True)
    log_path = os.path.join(own_dir, "azurite.log")
    cmd = [
        azurite_binary(),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--location", own_dir,
        "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
        "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    azurite = Azurite(*ports, process=process, data_dir=None if data_dir else own_dir, log_path=log_path)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Azurite exited with code {process.returncode}; see {log_path}.")
            if all(_listening(p) for p in ports):
                return azurite
            time.sleep(0.1)
    except BaseException:  # Ctrl+C while it starts, too: nothing is left running without its parent
        azurite.stop()
        raise
    azurite.stop()
    raise RuntimeError(f"Azurite did not start within 30 s; see {log_path}.")
