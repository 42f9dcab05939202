"""A minimal browser for the redirect legs: follows redirects across the service (http) and the
local cloud (https, verified against its CA), keeps cookies per host, submits form_post pages."""

from __future__ import annotations

import re
import ssl
from html import unescape
from http.cookies import SimpleCookie
from urllib.parse import urljoin, urlsplit

import httpx


class Browser:
    def __init__(self, service_url: str, *, ca_bundle: str) -> None:
        self.service_url = service_url
        self.client = httpx.Client(
            verify=ssl.create_default_context(cafile=ca_bundle), follow_redirects=False, timeout=30
        )
        self.cookies: dict[str, dict[str, str]] = {}  # host -> name -> value
        self.history: list[httpx.Response] = []

    def _cookie_header(self, url: str) -> dict[str, str]:
        jar = self.cookies.get(urlsplit(url).netloc, {})
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}

    def _remember(self, response: httpx.Response) -> None:
        host = response.request.url.netloc.decode()
        for header in response.headers.get_list("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.get(host, {}).pop(name, None)
                else:
                    self.cookies.setdefault(host, {})[name] = morsel.value

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        url = urljoin(self.service_url + "/", url)
        headers = {**self._cookie_header(url), **dict(kwargs.pop("headers", {}) or {})}  # type: ignore[call-overload]
        response = self.client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        self._remember(response)
        self.history.append(response)
        return response

    def navigate(self, url: str, *, max_hops: int = 10) -> httpx.Response:
        """GET ``url`` and follow redirects and auto-submitting forms like a browser."""
        response = self.request("GET", url)
        for _ in range(max_hops):
            if response.is_redirect:
                response = self.request("GET", urljoin(str(response.request.url), response.headers["location"]))
                continue
            form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', response.text, re.I)
            if form and "onload" in response.text:
                fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
                response = self.request(
                    "POST", unescape(form.group(1)), data={k: unescape(v) for k, v in fields.items()}
                )
                continue
            return response
        raise AssertionError("too many redirects")

    def service_cookie(self, name: str) -> str | None:
        return self.cookies.get(urlsplit(self.service_url).netloc, {}).get(name)
