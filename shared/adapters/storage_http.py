"""The HTTP transport for Azure Storage (tables and queues)."""

from __future__ import annotations

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Connections kept open per storage host. requests keeps 10 by default; the busy cache alone reads up to
# 16 people at once (shared.cache.reader), and every connection over the pool's size is opened for one
# request and thrown away.
POOL_CONNECTIONS = 32


def storage_transport(*, connection_timeout: float, read_timeout: float) -> RequestsTransport:
    """Storage is reached directly: no proxy or ``.netrc`` look-up from the environment on every request,
    which requests' default session makes (about a sixth of a queue write's CPU on the webhook's path).
    Retries are the pipeline's (its retry policy), never urllib3's."""
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(
        pool_maxsize=POOL_CONNECTIONS, max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(
        session=session,
        session_owner=True,
        use_env_settings=False,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )
