"""The HTTP side of the local host: every HTTP trigger of a FunctionApp as a Starlette app.

``build_asgi_app(function_app, settings=...)`` serves each HTTP trigger at
``/<routePrefix>/<route>`` (routePrefix "api" unless host.json says otherwise) with
ASP.NET route templates and precedence (see ``routing``), checks the function keys the
way the platform does, enforces the documented request limits and turns the returned
``func.HttpResponse`` back into HTTP.

Keys come from app settings, never from a file the host writes:
``FUNCTION_KEY`` (default key of every function), ``FUNCTION_KEY_<FUNCTIONNAME>``
(one function; name upper-cased) and ``MASTER_KEY`` (admin level, valid everywhere).
A caller presents a key in ``?code=`` or the ``x-functions-key`` header.

Errors the host itself produces are JSON ``{"error": {"code": ..., "message": ...}}``:
401 unauthorized, 404 not_found, 405 method_not_allowed, 413 payload_too_large,
414 uri_too_long, 500 function_failed.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import FunctionRegister
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from devtools.host.config import HostConfigurationError, HostOptions
from devtools.host.functions import HTTP_TRIGGER, FunctionSpec, Invoker, index_functions
from devtools.host.routing import RouteMatch, RouteTable, RouteTemplate, split_path

logger = logging.getLogger(__name__)
# One line per request: method, route template, status, milliseconds. Never the path's values or
# the query string (it may carry ?code= keys), so the template stands for the path.
access_logger = logging.getLogger("devtools.host.access")
NO_ROUTE = "(no matching route)"
_METHOD = re.compile(r"[A-Z]{1,16}")

# Documented limits of the Functions HTTP front end (platform-facts.md).
MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024
MAX_URL_LENGTH = 8192
MAX_QUERY_LENGTH = 4096

ANONYMOUS = "anonymous"
FUNCTION = "function"
ADMIN = "admin"
KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
FUNCTION_KEY_SETTING = "FUNCTION_KEY"
MASTER_KEY_SETTING = "MASTER_KEY"


# A response as the host sends it: status, raw headers, body.
Parts = tuple[int, list[tuple[bytes, bytes]], bytes]


def function_key_setting(function_name: str) -> str:
    return f"{FUNCTION_KEY_SETTING}_{function_name.upper()}"


class _Endpoint:
    """One HTTP-triggered function and the keys that open it."""

    def __init__(self, spec: FunctionSpec, settings: Mapping[str, str]) -> None:
        self.spec = spec
        self.auth_level = str(spec.trigger.get("authLevel", FUNCTION)).lower()
        if self.auth_level not in (ANONYMOUS, FUNCTION, ADMIN):
            raise HostConfigurationError(f"Function '{spec.name}' has an unknown authLevel '{self.auth_level}'.")
        names = [MASTER_KEY_SETTING]
        if self.auth_level == FUNCTION:
            names = [
                function_key_setting(spec.name),
                FUNCTION_KEY_SETTING,
                MASTER_KEY_SETTING,
            ]
        self._keys = [settings[n].encode("utf-8") for n in names if settings.get(n)]

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    def authorises(self, presented: str | None) -> bool:
        if self.auth_level == ANONYMOUS:
            return True
        if not presented or not self._keys:
            return False
        candidate = presented.encode("utf-8")
        # Compare against every key, without stopping early, so timing says nothing about which one matched.
        results = [hmac.compare_digest(candidate, key) for key in self._keys]
        return any(results)


def access_line(method: str, template: str | None, status: int, started: float, now: float | None = None) -> str:
    """``GET /api/users/{id} 200 12 ms``: the route template, not the path, and no query string."""
    elapsed_ms = ((time.perf_counter() if now is None else now) - started) * 1000
    shown_method = method if _METHOD.fullmatch(method) else "?"
    return f"{shown_method} {template or NO_ROUTE} {status} {elapsed_ms:.0f} ms"


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Parts:
    body = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
    raw = [(b"content-type", b"application/json; charset=utf-8")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return status, raw, body


def _size_problem(request: Request, path: str) -> Parts | None:
    """The 414 or 413 answer for a query, URL or declared body over the platform's limits; None when within."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    if len(query) > MAX_QUERY_LENGTH:
        return _error(
            414,
            "uri_too_long",
            f"The query string is longer than {MAX_QUERY_LENGTH} characters.",
        )
    if len(path) + (len(query) + 1 if query else 0) > MAX_URL_LENGTH:
        return _error(
            414,
            "uri_too_long",
            f"The request URL is longer than {MAX_URL_LENGTH} characters.",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_REQUEST_BODY_BYTES:
        return _error(413, "payload_too_large", "The request body is larger than 100 MB.")
    return None


def _joined(items: list[tuple[str, str]]) -> dict[str, str]:
    # The host hands the worker one string per name; repeated values are comma-joined as .NET's StringValues does.
    merged: dict[str, str] = {}
    for key, value in items:
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


def _response_parts(result: Any) -> Parts:
    if isinstance(result, str):
        return (
            200,
            [(b"content-type", b"text/plain; charset=utf-8")],
            result.encode("utf-8"),
        )
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(result).__name__}")
    headers: list[tuple[bytes, bytes]] = []
    has_content_type = False
    for name, value in result.headers.items():
        lower = name.lower()
        if lower in ("content-length", "transfer-encoding"):
            continue  # recomputed from the body
        has_content_type = has_content_type or lower == "content-type"
        headers.append((lower.encode("latin-1"), str(value).encode("latin-1")))
    if not has_content_type:
        # Same rule as the worker's HttpResponseConverter: charset only for text/* types.
        mimetype = result.mimetype
        content_type = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        headers.append((b"content-type", content_type.encode("latin-1")))
    return int(result.status_code), headers, result.get_body()


class _BodyTooLarge(Exception):
    pass


class FunctionsHttpApp:
    """Raw ASGI app: limits, routing, keys, invocation."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        *,
        settings: Mapping[str, str],
        options: HostOptions,
        invoker: Invoker,
    ) -> None:
        self._invoker = invoker
        self._route_prefix = options.route_prefix
        entries: list[tuple[RouteTemplate, list[str] | None, _Endpoint]] = []
        for spec in specs:
            if spec.trigger_type != HTTP_TRIGGER:
                continue
            route = str(spec.trigger.get("route") or spec.name)
            template = RouteTemplate.parse(route, prefix=options.route_prefix)
            methods = [str(m).upper() for m in spec.trigger.get("methods") or []] or None
            entries.append((template, methods, _Endpoint(spec, settings)))
        self.table: RouteTable[_Endpoint] = RouteTable.build(entries)
        function_level = [r.target for r in self.table.routes if r.target.auth_level == FUNCTION]
        if function_level and not settings.get(FUNCTION_KEY_SETTING):
            refusing = sorted(e.spec.name for e in function_level if not e.has_keys)
            logger.warning(
                "The app setting %s is not set: function-level HTTP functions accept only a "
                "%s_<NAME> key of their own or %s. Refusing every request: %s",
                FUNCTION_KEY_SETTING,
                FUNCTION_KEY_SETTING,
                MASTER_KEY_SETTING,
                ", ".join(refusing) or "(none)",
            )
        admin_level = [r.target.spec.name for r in self.table.routes if r.target.auth_level == ADMIN]
        if admin_level and not settings.get(MASTER_KEY_SETTING):
            logger.warning(
                "The app setting %s is not set: admin-level HTTP functions refuse every request: %s",
                MASTER_KEY_SETTING,
                ", ".join(sorted(admin_level)),
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        started = time.perf_counter()
        route: list[str] = []
        status, headers, body = await self._handle(request, route)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": body if request.method != "HEAD" else b"",
            }
        )
        access_logger.info(access_line(request.method, route[0] if route else None, status, started))

    async def _handle(self, request: Request, route: list[str]) -> Parts:
        """Answer one request; ``route`` receives the matched route template."""
        scope = request.scope
        path = (scope.get("raw_path") or scope["path"].encode("utf-8")).decode("latin-1")
        too_large = _size_problem(request, path)
        if too_large is not None:
            return too_large
        resolved = self.table.resolve(request.method, split_path(path))
        if resolved is None:
            return _error(
                404,
                "not_found",
                f"No function serves {request.method} {scope['path']}.",
            )
        if not isinstance(resolved, RouteMatch):
            allow = ", ".join(sorted(resolved))
            return _error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {allow}.",
                {"allow": allow},
            )
        route.append("/" + resolved.route.template.text)
        presented = request.headers.get(KEY_HEADER) or request.query_params.get(KEY_QUERY)
        if not resolved.route.target.authorises(presented):
            return _error(401, "unauthorized", "A valid function key is required.")
        return await self._invoke(request, resolved)

    async def _invoke(self, request: Request, resolved: RouteMatch[_Endpoint]) -> Parts:
        """Run the matched function on the request, as the worker would hand it over."""
        endpoint = resolved.route.target
        try:
            body = await self._read_body(request)
        except _BodyTooLarge:
            return _error(413, "payload_too_large", "The request body is larger than 100 MB.")
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=_joined(request.headers.items()),
            params=_joined(request.query_params.multi_items()),
            route_params=resolved.values,
            body=body,
        )
        try:
            result = await self._invoker.invoke(
                endpoint.spec,
                http_request,
                reason="This function was programmatically called via the host APIs.",
            )
            return _response_parts(result)
        except Exception:
            logger.exception("Function '%s' failed", endpoint.spec.name)
            return _error(500, "function_failed", "The function failed; see the host log.")

    @staticmethod
    async def _read_body(request: Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_REQUEST_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)


def build_asgi_app(
    function_app: FunctionRegister,
    *,
    settings: Mapping[str, str],
    options: HostOptions | None = None,
    invoker: Invoker | None = None,
    specs: list[FunctionSpec] | None = None,
) -> Starlette:
    """A Starlette app serving the HTTP triggers of ``function_app``.

    ``options`` default to the platform defaults (route prefix "api"); ``invoker`` is
    shared with the timers and queue pollers when the whole host runs, else the app
    owns one and closes it on shutdown. Raises HostConfigurationError for bindings the
    host does not serve and for invalid route templates.
    """
    options = options or HostOptions()
    if specs is None:
        specs = index_functions(function_app, settings=settings)
    own_invoker = invoker is None
    active = invoker or Invoker()
    http_app = FunctionsHttpApp(specs, settings=settings, options=options, invoker=active)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if own_invoker:
            active.shutdown()

    app = Starlette(lifespan=lifespan)
    # Every request goes to the host app: a Mount would match paths with a regex whose "." stops at
    # a decoded newline, and answer /api/x%0A with Starlette's own text/plain 404.
    app.router.default = http_app
    return app
