"""Reachability probe for the health endpoint: any HTTP answer means the host is up."""

from __future__ import annotations

import httpx

from shared.errors import UpstreamUnavailable


class HttpProbe:
    def __init__(self, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport)

    def reachable(self, url: str) -> str:
        """Return a short description of the answer, or raise UpstreamUnavailable."""
        try:
            response = self._client.get(url)
        except httpx.HTTPError as err:
            host = httpx.URL(url).host
            raise UpstreamUnavailable(f"{host} did not answer ({type(err).__name__}).") from err
        return f"answered HTTP {response.status_code}"
