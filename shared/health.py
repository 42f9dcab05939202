"""Health: is storage reachable, is the key source usable, do the Graph and authority hosts answer.

Checks run concurrently with short timeouts so the endpoint answers within a few
seconds even when a dependency hangs. Results carry no secrets, only names,
booleans, latencies and error categories.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import ServiceError


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: int
    detail: str


def _timed(name: str, check: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except ServiceError as err:
        ok, detail = False, err.message
    except Exception as err:  # a health check reports every failure, it never raises
        ok, detail = False, f"{type(err).__name__}"
    return CheckResult(name, ok, int((time.perf_counter() - started) * 1000), detail)


def check_health(container: Any) -> list[CheckResult]:
    settings = container.settings

    def storage() -> str:
        container.storage.check()
        return "reachable"

    def keys() -> str:
        version, _key = container.key_source.current()
        source = "key vault" if settings.key_vault_url else "local key file"
        return f"{source}, key version {version}"

    def graph() -> str:
        # An unauthenticated /me is answered at once with a small 401: enough to prove Graph is up.
        return str(container.probe.reachable(settings.graph_base_url + "/me"))

    def authority() -> str:
        return str(container.probe.reachable(settings.authority_host + "/common/v2.0/.well-known/openid-configuration"))

    checks: dict[str, Callable[[], str]] = {
        "storage": storage,
        "key_source": keys,
        "graph": graph,
        "authority": authority,
    }
    from concurrent.futures import ThreadPoolExecutor  # only when the endpoint runs

    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = [pool.submit(_timed, name, check) for name, check in checks.items()]
        return [f.result() for f in futures]


def check_liveness(container: Any) -> bool:
    """Whether the service can serve: storage answers and the token key is usable. Makes no
    outbound call to Microsoft, so an anonymous probe costs two cheap local checks."""

    def storage() -> str:
        container.storage.check()
        return "reachable"

    def keys() -> str:
        container.key_source.current()
        return "usable"

    return all(_timed(name, check).ok for name, check in (("storage", storage), ("key_source", keys)))
