"""The console's server: the scheduling app's own backend, in front of the calendar service.

Design (the README's "The console" section explains it for readers):

* The console's origin is the service's public origin (``PUBLIC_BASE_URL``). The browser legs of
  the service (``/api/auth/*``, ``/api/consent/*``, and anything else under ``/api/``) pass through
  unchanged and **without** the function key, so the service's HttpOnly ``ics_session`` cookie is
  set on the console's origin and the sign-in ``return_to`` is a console page. Requests that need a
  function key are refused by the service, exactly as if the browser had called it directly.
* The page's script never sees the session or the key. It calls the console's own JSON routes
  under ``/app/``; for each one the console reads the session cookie from the request and calls
  the service server-side with ``x-functions-key`` and ``Authorization: Bearer <session>``.
* ``/app/`` only forwards a fixed list of (method, route) pairs; a request that changes anything
  must come from the console's own pages (``Origin`` or ``Sec-Fetch-Site`` say so), so another site
  cannot make a signed-in browser book interviews (the cookie is SameSite=Lax as well).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "ics_session"
# Each page is its content, framed by layout.html (head, navigation and scripts are the same for all).
PAGES = {
    "/": ("status", "Status"),
    "/availability": ("availability", "Availability"),
    "/bookings": ("bookings", "Bookings"),
}


def render_page(name: str, title: str) -> str:
    layout = (STATIC / "layout.html").read_text(encoding="utf-8")
    content = (STATIC / f"{name}.html").read_text(encoding="utf-8")
    return layout.replace("{{title}}", title).replace("{{page}}", name).replace("{{content}}", content)


# Request headers a browser leg may carry to the service; the rest (hop-by-hop, Host) are dropped.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
# Set again by the console's own server.
OWN_RESPONSE_HEADERS = {"date", "server", "content-encoding"}
# What the console's pages may ask the service for: (method, console route) -> service route.
FORWARDED: dict[tuple[str, str], str] = {
    ("GET", "me"): "me",
    ("GET", "readiness"): "tenants/me/readiness",
    ("GET", "settings"): "tenants/me/settings",
    ("PUT", "settings"): "tenants/me/settings",
    ("POST", "availability"): "availability",
    ("POST", "bookings"): "bookings",
    ("GET", "bookings"): "bookings",
}
BOOKING_ROUTE = re.compile(r"bookings/[A-Za-z0-9_-]{1,128}(?:/emails)?")  # a booking, or its email trail
FORWARDED_REQUEST_HEADERS = ("content-type", "idempotency-key", "if-match", "accept")
FORWARDED_RESPONSE_HEADERS = ("content-type", "etag", "retry-after", "location")
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class ConsoleConfig:
    service_url: str  # where the console reaches the service, e.g. http://127.0.0.1:7071
    function_key: str  # held here, never sent to the browser
    tenant_hint: str = ""  # prefilled in the admin-consent form (the demo tenant locally)
    poll_seconds: float = 5.0  # how often the bookings page refreshes


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _same_origin(request: Request) -> bool:
    """True when the request comes from the console's own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme == request.url.scheme


def build_app(config: ConsoleConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    client = httpx.AsyncClient(
        base_url=config.service_url.rstrip("/"), timeout=60, follow_redirects=False, transport=transport
    )

    async def page(request: Request) -> Response:
        name, title = PAGES[request.url.path]
        return HTMLResponse(render_page(name, title), headers={"Cache-Control": "no-store"})

    async def settings(request: Request) -> Response:
        # Only what the pages need to draw themselves: no key, no session.
        return JSONResponse({"tenant_hint": config.tenant_hint, "poll_seconds": config.poll_seconds})

    async def forward_app(request: Request) -> Response:
        """The pages' JSON calls: to the service with the function key and the session as Bearer."""
        route = request.path_params["route"]
        target = FORWARDED.get((request.method, route))
        if target is None and request.method == "GET" and BOOKING_ROUTE.fullmatch(route):
            target = route
        if target is None:
            return _error(404, "not_found", "The console does not serve this route.")
        if request.method != "GET" and not _same_origin(request):
            return _error(403, "cross_site_request", "Changes are accepted only from the console's own pages.")
        session = request.cookies.get(SESSION_COOKIE)
        if not session:
            return _error(401, "signin_required", "Sign in with Office 365 first.")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "payload_too_large", "The request body is too large.")
        headers = {k: v for k in FORWARDED_REQUEST_HEADERS if (v := request.headers.get(k)) is not None}
        headers["x-functions-key"] = config.function_key
        headers["authorization"] = f"Bearer {session}"
        try:
            answer = await client.request(
                request.method,
                f"/api/{target}",
                params=list(request.query_params.multi_items()),
                content=body or None,
                headers=headers,
            )
        except httpx.TransportError:
            return _error(502, "service_unreachable", "The calendar service did not answer.")
        kept = {k: v for k in FORWARDED_RESPONSE_HEADERS if (v := answer.headers.get(k)) is not None}
        kept["Cache-Control"] = "no-store"
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    async def pass_through(request: Request) -> Response:
        """The service's browser legs, as the browser sent them: no key is added."""
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        body = await request.body()
        try:
            answer = await client.request(
                request.method,
                request.url.path,
                params=list(request.query_params.multi_items()),
                content=body or None,
                headers=headers,
            )
        except httpx.TransportError:
            return _error(502, "service_unreachable", "The calendar service did not answer.")
        response = Response(answer.content, status_code=answer.status_code)
        for name, value in answer.headers.multi_items():
            if name.lower() not in HOP_BY_HOP | OWN_RESPONSE_HEADERS:
                response.headers.append(name, value)
        return response

    routes: list[Any] = [
        *(Route(path, page, methods=["GET"]) for path in PAGES),
        Route("/app/config", settings, methods=["GET"]),
        Route("/app/{route:path}", forward_app, methods=["GET", "POST", "PUT"]),
        Route("/api/{rest:path}", pass_through, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
