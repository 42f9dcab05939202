"""The local cloud's world on disk: saved under the data directory, loaded at the next start.

Like Azurite's data folder, ``world.json`` keeps what a restart must not lose: the signing key,
consents (admin and user grants), refresh tokens and sign-in sessions, calendar changes (events
and responses), mail (sent, received and held messages), mailbox settings, groups and subscriptions
with their queued notifications. So
the service's stored token caches stay valid across a restart: the same key still verifies its
access tokens and the same refresh tokens still redeem.

Not kept: the failure switches (throttling, latency, faults: set per run through the controls),
the announced address (set at every start) and the delivery log.

Writes are safe and cheap: the snapshot is written to a temporary file in the same folder, flushed
to disk and moved over the old one (``os.replace``), so a crash leaves the old or the new world,
never half of one; a ``WorldWriter`` thread gathers changes and writes at most once per quiet
period (``debounce`` seconds after the last change, at the latest ``max_delay`` after the first),
skips a snapshot identical to the last one written, and writes a last time when stopped.

The file holds secrets of a development identity provider (the signing key, refresh tokens):
it is created readable by its owner only.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from devtools.cloud.state import World

logger = logging.getLogger(__name__)

FORMAT = "local-microsoft-cloud/world/1"
WORLD_FILE = "world.json"
# world.extra slots that are kept; others (the announced address) are set anew at every start.
KEPT_SLOTS = ("identity.signing_key", "identity.signin", "identity.access_tokens", "graph", "subscriptions")
_PACKAGE = "devtools.cloud."
DELIVERY_LOG_KEPT = 200


class WorldFileError(ValueError):
    """The world file cannot be read as a world of this cloud."""


# ---- encoding ------------------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """JSON-ready form of the world's values: dataclasses by class name and field, tagged sets,
    tuples, datetimes, durations and bytes. Fields are stored by name, so a field added later
    takes its default when an older file is loaded."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not cls.__module__.startswith(_PACKAGE):
            raise TypeError(f"cannot store {cls.__module__}.{cls.__qualname__}")
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return {"$dc": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (set, frozenset)):
        items = [encode(v) for v in value]
        items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return {"$frozenset" if isinstance(value, frozenset) else "$set": items}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"$map": {k: encode(v) for k, v in value.items()}}
        return {"$pairs": [[encode(k), encode(v)] for k, v in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__}")


def _dataclass(name: str) -> type[Any]:
    module_name, _, qualname = name.partition(":")
    if not module_name.startswith(_PACKAGE):
        raise WorldFileError(f"the world file names a class outside the cloud: {name}")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
        raise WorldFileError(f"the world file names an unknown class: {name}")
    return target


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dc" in value:
        cls = _dataclass(str(value["$dc"]))
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        stored = value.get("fields") or {}
        return cls(**{k: decode(v) for k, v in stored.items() if k in known})
    if "$map" in value:
        return {k: decode(v) for k, v in value["$map"].items()}
    if "$pairs" in value:
        return {_hashable(decode(k)): decode(v) for k, v in value["$pairs"]}
    if "$set" in value:
        return {_hashable(decode(v)) for v in value["$set"]}
    if "$frozenset" in value:
        return frozenset(_hashable(decode(v)) for v in value["$frozenset"])
    if "$tuple" in value:
        return tuple(decode(v) for v in value["$tuple"])
    if "$dt" in value:
        return datetime.fromisoformat(str(value["$dt"]))
    if "$td" in value:
        return timedelta(seconds=float(value["$td"]))
    if "$b64" in value:
        return base64.b64decode(str(value["$b64"]))
    raise WorldFileError(f"the world file holds an unknown value: {sorted(value)}")


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


# ---- snapshots -----------------------------------------------------------------------------------
def snapshot(world: World) -> dict[str, Any]:
    """The world's kept state as a JSON-ready document (taken under the world's lock)."""
    with world.lock:
        extra: dict[str, Any] = {}
        for slot in KEPT_SLOTS:
            if slot not in world.extra:
                continue
            value = world.extra[slot]
            if slot == "subscriptions" and dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = dataclasses.replace(value, log=list(getattr(value, "log", []))[-DELIVERY_LOG_KEPT:])
            extra[slot] = value
        return {
            "format": FORMAT,
            "tenants": encode(world.tenants),
            "users": encode(world.users),
            "groups": encode(world.groups),
            "events": encode(world.events),
            "messages": encode(world.messages),
            "refresh_tokens": encode(world.refresh_tokens),
            "clock_offset": encode(world.clock_offset),
            "extra": encode(extra),
        }


def restore(world: World, document: dict[str, Any]) -> None:
    """Take over a saved world's state in place; the app registrations stay as ``world`` has them
    (they come from the fixture, so a changed registration applies at the next start)."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise WorldFileError("the world file is not a world of this cloud (or of another version)")
    try:
        tenants = decode(document["tenants"])
        users = decode(document["users"])
        groups = decode(document["groups"])
        events = decode(document["events"])
        messages = decode(document.get("messages", {"$map": {}}))  # absent from files of older clouds
        refresh_tokens = decode(document["refresh_tokens"])
        clock_offset = decode(document["clock_offset"])
        extra = decode(document["extra"])
    except (KeyError, TypeError, ValueError, AttributeError, ImportError) as err:
        raise WorldFileError(f"the world file cannot be read: {err}") from err
    with world.lock:
        world.tenants = tenants
        world.users = users
        world.groups = groups
        world.events = events
        world.messages = messages
        world.refresh_tokens = refresh_tokens
        world.clock_offset = clock_offset
        world.extra.update({k: v for k, v in extra.items() if k in KEPT_SLOTS})
        graph = world.extra.get("graph")
        if graph is not None and hasattr(graph, "in_flight"):
            graph.in_flight = {}  # requests of the previous run are long over
        notifications = world.extra.get("subscriptions")
        for pending in getattr(notifications, "pending", []):
            pending.in_flight = False


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same folder, flushed, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp creates the file with mode 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def world_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / WORLD_FILE


def load_saved(world: World, data_dir: Path | str) -> bool:
    """Restore the world saved in ``data_dir`` into ``world``; False when there is none.

    Raises ``WorldFileError`` for a file this cloud cannot read (the caller says how to start over).
    """
    path = world_path(data_dir)
    if not path.exists():
        return False
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise WorldFileError(f"{path} cannot be read: {err}") from err
    restore(world, document)
    return True


def forget_saved(data_dir: Path | str) -> bool:
    """Delete the saved world (the CA and server certificate stay); True when there was one."""
    path = world_path(data_dir)
    if path.exists():
        path.unlink()
        return True
    return False


# ---- the writer ------------------------------------------------------------------------------------
class Debounce:
    """When to write: ``quiet`` seconds after the last change, or ``max_delay`` after the first."""

    def __init__(self, *, quiet: float, max_delay: float) -> None:
        self.quiet = quiet
        self.max_delay = max_delay
        self.first: float | None = None
        self.last: float | None = None

    def changed(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now

    def wait_time(self, now: float) -> float | None:
        """Seconds until a write is due (0: now); None when nothing changed."""
        if self.first is None or self.last is None:
            return None
        due = min(self.last + self.quiet, self.first + self.max_delay)
        return max(0.0, due - now)

    def written(self) -> None:
        self.first = self.last = None


class WorldWriter:
    """Saves a world to ``data_dir/world.json`` after changes, debounced, and once more on ``stop``."""

    def __init__(
        self,
        world: World,
        data_dir: Path | str,
        *,
        quiet: float = 0.5,
        max_delay: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[Path, bytes], None] = write_atomically,
    ) -> None:
        self.world = world
        self.path = world_path(data_dir)
        self._clock = clock
        self._write = write
        self._debounce = Debounce(quiet=quiet, max_delay=max_delay)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._last_digest: str | None = None
        self._thread: threading.Thread | None = None
        self.writes = 0

    def changed(self) -> None:
        """Note that the world may have changed (called after every request to the cloud)."""
        with self._lock:
            self._debounce.changed(self._clock())
        self._wake.set()

    def save(self) -> bool:
        """Write the world now if it differs from what was last written; True when written."""
        document = snapshot(self.world)
        data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._last_digest:
            return False
        self._write(self.path, data)
        self._last_digest = digest
        self.writes += 1
        return True

    def save_if_due(self) -> float | None:
        """Write when the debounce says so; returns the seconds until the next check (None: idle)."""
        with self._lock:
            wait = self._debounce.wait_time(self._clock())
            if wait is None or wait > 0:
                return wait
            self._debounce.written()
        try:
            self.save()
        except (OSError, TypeError) as err:
            logger.error("Could not save the local cloud's world to %s: %s", self.path, err)
        return None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cloud-world-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            wait = self.save_if_due()
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def stop(self) -> None:
        """Stop the thread and write what changed since the last write."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            self.save()
        except (OSError, TypeError) as err:
            logger.error("Could not save the local cloud's world to %s: %s", self.path, err)
