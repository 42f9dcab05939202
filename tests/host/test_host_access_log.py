"""One access line per request: method, route template, status, milliseconds; never a value of the
path or the query string (keys travel in ?code=)."""

from __future__ import annotations

import logging
import re

import azure.functions as func
import httpx
import pytest

from devtools.host import build_asgi_app
from devtools.host.app import NO_ROUTE, access_line

KEY = "secret-function-key-value"
LINE = re.compile(r"(?P<method>[A-Z]+) (?P<route>\S+|\(no matching route\)) (?P<status>\d{3}) (?P<ms>\d+) ms")


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="users/{id}/events", methods=["GET"])
    def events(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("[]", mimetype="application/json")

    return app


async def _get(path: str) -> httpx.Response:
    asgi = build_asgi_app(_app(), settings={"FUNCTION_KEY": KEY})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://host") as client:
        return await client.get(path)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_each_request_logs_one_line_with_the_route_template_and_no_values(
    caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    caplog.set_level(logging.INFO, logger="devtools.host.access")
    await _get(f"/api/users/megan.bowen@contoso.example/events?code={KEY}&start=2030-01-01")
    await _get("/api/users/someone/events?state=opaque-state-value")
    await _get("/api/nothing/here?code=x")

    lines = [r.getMessage() for r in caplog.records if r.name == "devtools.host.access"]
    assert len(lines) == 3
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert [(m["method"], m["route"], m["status"]) for m in parsed if m] == [
        ("GET", "/api/users/{id}/events", "200"),
        ("GET", "/api/users/{id}/events", "401"),
        ("GET", NO_ROUTE, "404"),
    ]
    for leaked in (KEY, "megan.bowen", "someone", "opaque-state-value", "2030-01-01", "nothing", "?"):
        assert not any(leaked in line for line in lines), (leaked, lines)


def test_the_access_line_rounds_to_milliseconds_and_hides_an_odd_method() -> None:
    assert access_line("POST", "/api/auth/logout", 204, started=1.0, now=1.0123) == "POST /api/auth/logout 204 12 ms"
    assert access_line("GET\r\nX", None, 404, started=0.0, now=0.0) == f"? {NO_ROUTE} 404 0 ms"
