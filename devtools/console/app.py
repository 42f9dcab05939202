"""The console's server: the scheduling app's own backend, in front of the calendar service.

Design (docs/local-cloud.md, "The console", explains it for readers):

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
* On the local stack only (``local_cloud_url`` set), ``POST /app/local/respond`` answers an invitation
  as an attendee would in Outlook, through the local cloud's control: the demo's stand-in for people.
"""

from __future__ import annotations

import html
import json
import re
import ssl
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
# A booking's own page (its history, event id, move and cancel), under the Bookings tab.
BOOKING_PAGE = ("booking", "Booking")


def render_page(name: str, title: str, content: str | None = None, *, script: bool = True) -> str:
    layout = (STATIC / "layout.html").read_text(encoding="utf-8")
    if content is None:
        content = (STATIC / f"{name}.html").read_text(encoding="utf-8")
    page = layout.replace("{{title}}", html.escape(title)).replace("{{content}}", content)
    if not script:
        page = page.replace('<script src="/static/{{page}}.js"></script>\n', "")
    return page.replace("{{page}}", name)


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
# Routes with a value in them: a booking (read, move, cancel) and a directory user (attendees' names).
BOOKING_ROUTE = re.compile(r"bookings/[A-Za-z0-9_-]{1,128}(?:/emails)?")  # a booking, or its email trail
DIRECTORY_ROUTE = re.compile(r"directory/users/[A-Za-z0-9._%+'@-]{1,256}")
PATTERN_ROUTES = {"GET": (BOOKING_ROUTE, DIRECTORY_ROUTE), "PATCH": (BOOKING_ROUTE,), "DELETE": (BOOKING_ROUTE,)}
# The answers an attendee can give in Outlook, as the local cloud's respond control takes them.
LOCAL_RESPONSES = ("accepted", "tentativelyAccepted", "declined")
FORWARDED_REQUEST_HEADERS = ("content-type", "idempotency-key", "if-match", "accept")
FORWARDED_RESPONSE_HEADERS = ("content-type", "etag", "retry-after", "location")
MAX_BODY = 1024 * 1024
# The domain an admin typed to grant consent (set by the Status page), and what the console then remembers.
CONSENT_TENANT_COOKIE = "console_consent_tenant"
CONSENT_SEEN_COOKIE = "console_consent_seen"
_CONSENT_TENANT = re.compile(r"[A-Za-z0-9.-]{1,253}")


def _consent_seen(request: Request) -> str | None:
    seen = request.cookies.get(CONSENT_SEEN_COOKIE, "")
    if not _CONSENT_TENANT.fullmatch(seen):
        return None
    return "your organisation" if seen == "granted" else seen


@dataclass(frozen=True)
class ConsoleConfig:
    service_url: str  # where the console reaches the service, e.g. http://127.0.0.1:7071
    function_key: str  # held here, never sent to the browser
    tenant_hint: str = ""  # prefilled in the admin-consent form (the demo tenant locally)
    poll_seconds: float = 0.5  # how often the bookings pages refresh (a cheap read of the service's tables)
    # The local Microsoft cloud (the local stack only): the pages then offer "answer as this attendee".
    local_cloud_url: str = ""
    local_ca_bundle: str = ""


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


def _respond_request(body: Any) -> tuple[str, str, str] | JSONResponse:
    """The event, attendee and answer of a ``/app/local/respond`` body, or the 400 that refuses it."""
    if not isinstance(body, dict):
        return _error(400, "invalid_request", "Send a JSON object.")
    event_id, attendee, answer = body.get("event_id"), body.get("attendee"), body.get("response")
    if not isinstance(event_id, str) or not re.fullmatch(r"[A-Za-z0-9_=-]{1,256}", event_id):
        return _error(400, "invalid_request", "`event_id` is not an event id.")
    if not isinstance(attendee, str) or not re.fullmatch(r"[^@\s]{1,128}@[^@\s]{1,128}", attendee):
        return _error(400, "invalid_request", "`attendee` is not an address.")
    if answer not in LOCAL_RESPONSES:
        return _error(400, "invalid_request", f"`response` is one of {', '.join(LOCAL_RESPONSES)}.")
    return event_id, attendee, str(answer)


def _consent_request_html(subject: str, body: str) -> str:
    text = f"Subject: {subject}\n\n{body}"
    content = (
        "<h1>Ask your administrator for consent</h1><section class='card'>"
        "<p>Send this email to your Office 365 administrator. Only they can grant the consent; "
        "once they have, come back here and sign in.</p>"
        f"<p><strong>Subject:</strong> <span id='email-subject'>{html.escape(subject)}</span></p>"
        f"<pre id='email-body' class='email'>{html.escape(body)}</pre>"
        "<button id='copy-email' type='button'>Copy the email</button> "
        "<span id='copied' class='muted' hidden>Copied.</span> "
        "<a class='button secondary' href='/'>Back to the console</a>"
        f"<textarea id='email-text' hidden>{html.escape(text)}</textarea></section>"
        "<script src='/static/consent-request.js'></script>"
    )
    return render_page("consent-request", "Consent request", content, script=False)


def _remember_consent(request: Request, response: Response) -> None:
    """The app remembers, in this browser, that its organisation granted consent: the Status page
    then says so before anyone signs in. It names the domain the admin typed, nothing secret."""
    tenant = _CONSENT_TENANT.fullmatch(request.cookies.get(CONSENT_TENANT_COOKIE, "") or "")
    response.set_cookie(
        CONSENT_SEEN_COOKIE,
        tenant.group(0) if tenant else "granted",
        max_age=365 * 86400,
        httponly=True,
        samesite="lax",
        path="/",
    )


class _Console:
    """The console's handlers, with the clients they reach the service (and the local cloud) through."""

    def __init__(self, config: ConsoleConfig, transport: httpx.AsyncBaseTransport | None) -> None:
        self.config = config
        self.client = httpx.AsyncClient(
            base_url=config.service_url.rstrip("/"), timeout=60, follow_redirects=False, transport=transport
        )
        self.cloud = (
            httpx.AsyncClient(
                base_url=config.local_cloud_url.rstrip("/"),
                timeout=30,
                verify=ssl.create_default_context(cafile=config.local_ca_bundle) if config.local_ca_bundle else True,
                transport=transport,
            )
            if config.local_cloud_url
            else None
        )

    # ---- the pages -------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        name, title = PAGES[request.url.path]
        return HTMLResponse(render_page(name, title), headers={"Cache-Control": "no-store"})

    async def booking_page(self, request: Request) -> Response:
        name, title = BOOKING_PAGE
        return HTMLResponse(render_page(name, title), headers={"Cache-Control": "no-store"})

    async def settings(self, request: Request) -> Response:
        # Only what the pages need to draw themselves: no key, no session.
        return JSONResponse(
            {
                "tenant_hint": self.config.tenant_hint,
                "poll_seconds": self.config.poll_seconds,
                "local_cloud": self.cloud is not None,
                "consent_seen": _consent_seen(request),
            }
        )

    async def consent_request_page(self, request: Request) -> Response:
        """The consent request a recruiter sends their administrator, as a page to read and copy."""
        try:
            answer = await self.client.get("/api/consent/request", params=list(request.query_params.multi_items()))
        except httpx.TransportError:
            return _error(502, "service_unreachable", "The calendar service did not answer.")
        data = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code != 200:
            message = (data.get("error") or {}).get("message") or "The consent request could not be written."
            content = f"<h1>The consent request</h1><p class='error'>{html.escape(message)}</p>"
            return HTMLResponse(render_page("consent-request", "Consent request", content, script=False), 400)
        page_html = _consent_request_html(data["subject"], data["body"])
        return HTMLResponse(page_html, headers={"Cache-Control": "no-store"})

    # ---- the local stand-in for attendees --------------------------------------------------------
    async def local_respond(self, request: Request) -> Response:
        """Answer an invitation as one of its attendees would in Outlook (the local cloud's control)."""
        if self.cloud is None:
            return _error(404, "not_found", "The console does not serve this route.")
        if not _same_origin(request):
            return _error(403, "cross_site_request", "Changes are accepted only from the console's own pages.")
        if not request.cookies.get(SESSION_COOKIE):
            return _error(401, "signin_required", "Sign in with Office 365 first.")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        parsed = _respond_request(body)
        if isinstance(parsed, JSONResponse):
            return parsed
        event_id, attendee, answer = parsed
        try:
            answered = await self.cloud.post(
                f"/_control/graph/events/{event_id}/respond", json={"attendee": attendee, "response": answer}
            )
        except httpx.TransportError:
            return _error(502, "cloud_unreachable", "The local Microsoft cloud did not answer.")
        if answered.status_code != 200:
            return _error(answered.status_code, "not_answered", answered.text[:300])
        return JSONResponse({"event_id": event_id, "attendee": attendee, "response": answer})

    # ---- to the service ----------------------------------------------------------------------------
    async def forward_app(self, request: Request) -> Response:
        """The pages' JSON calls: to the service with the function key and the session as Bearer."""
        route = request.path_params["route"]
        target = FORWARDED.get((request.method, route))
        if target is None and any(p.fullmatch(route) for p in PATTERN_ROUTES.get(request.method, ())):
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
        headers["x-functions-key"] = self.config.function_key
        headers["authorization"] = f"Bearer {session}"
        try:
            answer = await self.client.request(
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

    async def pass_through(self, request: Request) -> Response:
        """The service's browser legs, as the browser sent them: no key is added."""
        if (
            request.url.path == "/api/consent/request"
            and request.method == "GET"
            and "text/html" in request.headers.get("accept", "")
        ):
            return await self.consent_request_page(request)  # a browser opening the link: a page, not JSON
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        body = await request.body()
        try:
            answer = await self.client.request(
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
        if request.url.path == "/api/consent/callback" and answer.status_code == 200 and b"all set" in answer.content:
            _remember_consent(request, response)
        return response


def build_app(config: ConsoleConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    console = _Console(config, transport)
    routes: list[Any] = [
        *(Route(path, console.page, methods=["GET"]) for path in PAGES),
        Route("/bookings/{booking_id}", console.booking_page, methods=["GET"]),
        Route("/app/config", console.settings, methods=["GET"]),
        Route("/app/local/respond", console.local_respond, methods=["POST"]),
        Route("/app/{route:path}", console.forward_app, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route(
            "/api/{rest:path}",
            console.pass_through,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
