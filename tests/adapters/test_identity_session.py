"""The identity adapter's HTTP session (shared by every tenant's and user's token requests) keeps no cookies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.adapters.identity import MsalIdentity
from shared.config import Settings


class _SetsCookies(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen.append(self.headers.get("Cookie"))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Set-Cookie", "fpc=first-users-session; Path=/; HttpOnly")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        return None


@pytest.fixture
def token_endpoint() -> Iterator[str]:
    _SetsCookies.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SetsCookies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cookie_set_for_one_tenant_never_goes_out_with_the_next_tenants_request(token_endpoint: str) -> None:
    identity = MsalIdentity(Settings(client_id="app", client_secret="secret"))
    session = identity._http  # noqa: SLF001 (the session MSAL is given)
    for tenant in ("tenant-a", "tenant-b", "tenant-a"):
        session.post(f"{token_endpoint}/{tenant}/oauth2/v2.0/token", data={"grant_type": "refresh_token"}, timeout=5)
    assert _SetsCookies.seen == [None, None, None]
    assert len(session.cookies) == 0
