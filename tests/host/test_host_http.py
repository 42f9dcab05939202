"""HTTP triggers served by the local host: routes, methods, keys, limits and responses."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator

import azure.functions as func
import httpx
import pytest

from devtools.host import HostConfigurationError, build_asgi_app, start_host
from devtools.host.runner import RunningHost

KEYS = {
    "FUNCTION_KEY": "default-key",
    "FUNCTION_KEY_SECRET_ITEM": "item-key",
    "MASTER_KEY": "master-key",
}


def build_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(
        route="items/{id:int}",
        methods=["GET", "PUT"],
        auth_level=func.AuthLevel.ANONYMOUS,
    )
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            f'{{"id": {req.route_params["id"]}, "method": "{req.method}"}}',
            mimetype="application/json",
        )

    @app.route(route="items/special", auth_level=func.AuthLevel.ANONYMOUS)
    def special_item(req: func.HttpRequest) -> str:
        return "special"

    @app.route(route="echo/{name?}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(0)
        reply = func.HttpResponse(
            req.get_body(),
            status_code=201,
            headers={
                "X-Name": req.route_params.get("name", "-"),
                "X-Query": req.params.get("q", "-"),
            },
            mimetype="text/html",
            charset="latin-1",
        )
        reply.headers.add_header("Set-Cookie", "a=1; Path=/")
        reply.headers.add_header("Set-Cookie", "b=2; Path=/")
        return reply

    @app.route(route="files/{*rest}", auth_level=func.AuthLevel.ANONYMOUS)
    def files(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.route_params.get("rest", "<root>"))

    @app.route(route="secret")
    def secret(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("secret")

    @app.route(route="secret/item")
    def secret_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("secret item")

    @app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
    def admin_only(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("admin")

    @app.route(route="broken", auth_level=func.AuthLevel.ANONYMOUS)
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("boom")

    @app.route(route="with-context", auth_level=func.AuthLevel.ANONYMOUS)
    def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse(context.function_name)

    return app


@pytest.fixture(scope="module")
def host() -> Iterator[RunningHost]:
    running = start_host(build_app(), settings=KEYS, port=0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(host: RunningHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.base_url, timeout=10) as http:
        yield http


def test_route_parameters_reach_the_function_and_constraints_apply(
    client: httpx.Client,
) -> None:
    reply = client.put("/api/items/42")
    assert reply.status_code == 200
    assert reply.json() == {"id": 42, "method": "PUT"}
    assert reply.headers["content-type"] == "application/json"
    assert client.get("/api/items/abc").status_code == 404


def test_literal_route_beats_the_parameter_route(client: httpx.Client) -> None:
    reply = client.get("/api/items/special")
    assert reply.text == "special"
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"


def test_wrong_method_on_a_known_route_is_405_json_with_allow(
    client: httpx.Client,
) -> None:
    reply = client.delete("/api/items/1")
    assert reply.status_code == 405
    assert reply.json()["error"]["code"] == "method_not_allowed"
    assert reply.headers["allow"] == "GET, PUT"


def test_unknown_route_is_404_json(client: httpx.Client) -> None:
    reply = client.get("/api/nothing/here")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"
    assert client.get("/items/1").status_code == 404  # outside the route prefix


def test_optional_parameter_body_query_headers_and_cookies_round_trip(
    client: httpx.Client,
) -> None:
    named = client.post("/api/echo/ann", params={"q": "x"}, content=b"<p>hi</p>")
    assert named.status_code == 201
    assert named.content == b"<p>hi</p>"
    assert named.headers["x-name"] == "ann"
    assert named.headers["x-query"] == "x"
    assert named.headers["content-type"] == "text/html; charset=latin-1"
    assert named.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    unnamed = client.post("/api/echo")
    assert unnamed.headers["x-name"] == "-"


def test_catch_all_takes_the_rest_of_the_path(client: httpx.Client) -> None:
    assert client.get("/api/files/a/b/c.txt").text == "a/b/c.txt"
    assert client.get("/api/files").text == "<root>"


def test_function_level_refuses_missing_and_wrong_keys(client: httpx.Client) -> None:
    for reply in (
        client.get("/api/secret"),
        client.get("/api/secret", params={"code": "nope"}),
    ):
        assert reply.status_code == 401
        assert reply.json() == {
            "error": {
                "code": "unauthorized",
                "message": "A valid function key is required.",
            }
        }
    assert client.get("/api/secret", headers={"x-functions-key": "wrong"}).status_code == 401


def test_function_level_accepts_code_query_and_key_header(client: httpx.Client) -> None:
    assert client.get("/api/secret", params={"code": "default-key"}).text == "secret"
    assert client.get("/api/secret", headers={"x-functions-key": "default-key"}).text == "secret"
    assert client.get("/api/secret", params={"code": "master-key"}).status_code == 200


def test_a_function_key_opens_only_its_own_function(client: httpx.Client) -> None:
    assert client.get("/api/secret/item", params={"code": "item-key"}).text == "secret item"
    assert client.get("/api/secret", params={"code": "item-key"}).status_code == 401


def test_admin_level_takes_only_the_master_key(client: httpx.Client) -> None:
    assert client.get("/api/admin-only", params={"code": "default-key"}).status_code == 401
    assert client.get("/api/admin-only", headers={"x-functions-key": "master-key"}).text == "admin"


def test_function_exception_is_a_500_json(client: httpx.Client) -> None:
    reply = client.get("/api/broken")
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "function_failed"


def test_context_parameter_is_passed_when_declared(client: httpx.Client) -> None:
    assert client.get("/api/with-context").text == "with_context"


def test_request_limits_from_the_platform(client: httpx.Client) -> None:
    assert client.get("/api/files/x", params={"q": "a" * 4097}).status_code == 414
    assert client.get("/api/files/" + "a" * 8200).status_code == 414


def test_body_over_100_mb_is_refused_before_it_is_read(host: RunningHost) -> None:
    # A raw socket: HTTP clients refuse to declare a length they do not send.
    address = host.base_url.removeprefix("http://").split(":")
    with socket.create_connection((address[0], int(address[1])), timeout=10) as conn:
        conn.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857601\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_without_function_key_function_level_refuses_all_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app()
    with caplog.at_level(logging.WARNING, logger="devtools.host.app"):
        asgi = build_asgi_app(app, settings={})
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "FUNCTION_KEY is not set" in warning
    assert "secret" in warning
    transport = httpx.ASGITransport(app=asgi)

    async def call() -> tuple[int, int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://host") as http:
            refused = await http.get("/api/secret", params={"code": ""})
            anonymous = await http.get("/api/items/1")
            return refused.status_code, anonymous.status_code

    assert asyncio.run(call()) == (401, 200)


def test_keys_never_reach_the_log(caplog: pytest.LogCaptureFixture, client: httpx.Client) -> None:
    with caplog.at_level(logging.DEBUG):
        client.get("/api/secret", params={"code": "default-key"})
        client.get("/api/secret", params={"code": "wrong-key-value"})
    host_records = [r.getMessage() for r in caplog.records if r.name.startswith(("devtools", "uvicorn"))]
    assert host_records  # the host did log the invocations
    assert not [m for m in host_records if "default-key" in m or "wrong-key-value" in m]


def test_unsupported_binding_fails_at_start_naming_it() -> None:
    app = func.FunctionApp()

    @app.route(route="out")
    @app.queue_output(arg_name="out", queue_name="outbox", connection="AzureWebJobsStorage")
    def with_output(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(HostConfigurationError, match="'with_output' uses the binding type 'queue'"):
        start_host(app, settings=KEYS)


def test_unsupported_trigger_fails_at_start_naming_it() -> None:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="blob", path="c/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None:
        return None

    with pytest.raises(HostConfigurationError, match="'on_blob' uses the trigger type 'blobTrigger'"):
        build_asgi_app(app, settings=KEYS)


def test_an_asgi_function_app_is_served_through_its_catch_all() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.path_params['who']}")

    app = func.AsgiFunctionApp(
        app=Starlette(routes=[Route("/api/hello/{who}", hello)]), http_auth_level=func.AuthLevel.ANONYMOUS
    )
    running = start_host(app, settings={})
    try:
        assert httpx.get(f"{running.base_url}/api/hello/ann", timeout=10).text == "hello ann"
    finally:
        running.stop()


def test_wrong_method_on_a_known_route_is_405_even_with_a_catch_all_route() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="auth/logout", methods=["POST"])
    def logout(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @app.route(route="{*path}", methods=["GET", "POST", "PUT", "DELETE"])
    def not_found(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse('{"error": {"code": "not_found", "message": "-"}}', status_code=404)

    running = start_host(app, settings={}, port=0)
    try:
        with httpx.Client(base_url=running.base_url, timeout=10) as http:
            wrong = http.get("/api/auth/logout")
            unknown = http.get("/api/nothing")
            right = http.post("/api/auth/logout")
    finally:
        running.stop()
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert unknown.status_code == 404
    assert right.status_code == 204


def test_a_path_with_an_encoded_newline_still_gets_the_hosts_json_answer(client: httpx.Client) -> None:
    reply = client.get("/api/nothing%0A/here")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"
    assert client.get("/api/files/a%0Ab").text == "a\nb"


def test_the_listening_socket_says_tcp_so_responses_go_out_without_nagle(host: RunningHost) -> None:
    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket's proto is TCP;
    # otherwise every keep-alive response waits out the client's delayed ACK.
    import socket

    assert host.local_host._socket.proto == socket.IPPROTO_TCP
