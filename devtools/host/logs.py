"""Logging for the local commands (the host, the stack): useful lines at INFO, the noise at WARNING.

At INFO the Azure SDK's HTTP logging policy dumps every request's and response's headers, and
httpx logs every URL it calls (query string included); both, and every other Azure SDK logger, stay
at WARNING (``function_app`` sets the same for the app when deployed). What remains at INFO is the
host's access line per request (``devtools.host.access``), the app's own messages and
Executing/Executed lines only with ``verbose``.
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = (
    "azure",  # every Azure SDK: azure.core.pipeline.policies.http_logging_policy, azure.identity, storage ...
    "httpx",
    "httpcore",
    "uvicorn.error",
)
# Core Tools' "Executing ..." / "Executed ..." pair per invocation: the access line says the same in one.
INVOCATION_LOGGER = "devtools.host.functions"


def configure_logging(level: str | int = logging.INFO, *, verbose: bool = False) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if not verbose:
        logging.getLogger(INVOCATION_LOGGER).setLevel(logging.WARNING)
