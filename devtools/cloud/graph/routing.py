"""What Graph's front door does before a handler runs: URL matching without regard to case, and Graph's JSON
error for every path or method the cloud does not model.

- Query option names are matched case-insensitively (``startdatetime`` is ``startDateTime``, ``$SELECT``
  is ``$select``), as OData asks of services and Graph does: ``canonical_query`` rewrites the names of
  the options this cloud reads to one spelling before routing, values untouched.
- Path segments are matched case-insensitively too (``/me/calendarview``): a request no route matches
  exactly is tried again against every route ignoring case.
- A path nothing models answers 400 ``BadRequest`` "Resource not found for the segment '...'", naming
  the first segment no route knows (Graph's answer as reported in microsoftgraph/microsoft-graph-docs
  issues 4052 and 21648 and msgraph-beta-sdk-python issue 764; the error pages list no example).
- A known path with a method it does not take answers 405 (microsoft-graph-docs-contrib concepts/errors.md:
  "405 Method Not Allowed: The HTTP method in the request isn't allowed on the resource."); the error
  code is not documented: this cloud uses ``Request_BadRequest`` "Specified HTTP method is not allowed
  for the request target.", the directory workload's answer, also used inside ``$batch``, with ``Allow``.

Both answers run through the usual pipeline (authentication first, added latency), so they look like
any other Graph error, inside ``$batch`` as well (the batch dispatches to this same app).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, unquote_plus

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from devtools.cloud.common import GraphError
from devtools.cloud.graph.pipeline import GraphContext, graph_endpoint
from devtools.cloud.state import World

GRAPH_PREFIXES = ("/v1.0", "/beta")
# The query options this cloud reads, by their lower-case spelling.
CANONICAL_OPTIONS = {
    name.lower(): name
    for name in (
        "startDateTime",
        "endDateTime",
        "$select",
        "$filter",
        "$top",
        "$skip",
        "$skiptoken",
        "$deltatoken",
        "$orderby",
        "$expand",
        "$count",
        "$search",
        "$format",
    )
}


def canonical_query_string(raw: bytes) -> bytes:
    """``raw`` with the names of known query options in their canonical spelling."""
    if not raw:
        return raw
    parts = []
    for part in raw.split(b"&"):
        key, sep, value = part.partition(b"=")
        name = unquote_plus(key.decode("latin-1"))
        canonical = CANONICAL_OPTIONS.get(name.lower())
        if canonical is not None and canonical != name:
            key = quote(canonical, safe="$").encode("latin-1")
        parts.append(key + sep + value)
    return b"&".join(parts)


def path_keeping_encoded_slashes(raw_path: bytes) -> str:
    """The decoded path, except that a slash sent encoded (%2F) stays ``%2F`` inside its segment.

    ASGI servers decode %2F into "/", which would split ``/users/a%2Fb@contoso.example`` into two segments;
    an address may hold "/" in its local part. ``World.find_user`` reads ``%2F`` back as "/".
    """
    segments = raw_path.decode("latin-1").split("/")
    return "/".join(unquote(segment).replace("/", "%2F") for segment in segments)


class CanonicalQuery:
    """ASGI middleware: Graph requests reach their routes with canonical query option names, and with a slash
    sent encoded kept inside its path segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(GRAPH_PREFIXES):
            raw = scope.get("query_string", b"")
            fixed = canonical_query_string(raw)
            if fixed != raw:
                scope = {**scope, "query_string": fixed}
            raw_path = scope.get("raw_path") or b""
            if b"%2f" in raw_path.lower():
                scope = {**scope, "path": path_keeping_encoded_slashes(raw_path)}
        await self.app(scope, receive, send)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _template_matches(template: str, segment: str) -> bool:
    return (template.startswith("{") and template.endswith("}")) or template.lower() == segment.lower()


def unknown_segment(path: str, templates: Iterable[str]) -> str:
    """The first segment of ``path`` (after the version) that no route template knows at that place."""
    wanted = _segments(path)[1:]  # after the version (/v1.0 or /beta: the templates are the same)
    best = 0
    for template in templates:
        matched = 0
        for have, want in zip(_segments(template)[1:], wanted, strict=False):
            if not _template_matches(have, want):
                break
            matched += 1
        best = max(best, matched)
    return wanted[best] if best < len(wanted) else (wanted[-1] if wanted else "")


def fallback_routes(world: World, modelled: list[BaseRoute]) -> list[BaseRoute]:
    """Routes to put after every Graph route: case-insensitive retry, then Graph's 405 or 400."""
    routes = [r for r in modelled if isinstance(r, Route) and r.path.startswith(GRAPH_PREFIXES)]
    loose = [(route, re.compile(route.path_regex.pattern, re.IGNORECASE)) for route in routes]
    templates = [route.path for route in routes]

    async def not_modelled(ctx: GraphContext) -> Response:
        path = ctx.request.url.path
        allowed = sorted({m for route, regex in loose if regex.match(path) for m in (route.methods or ())})
        if allowed:
            raise GraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
                headers={"Allow": ", ".join(allowed)},
            )
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{unknown_segment(path, templates)}'.")

    answer = graph_endpoint(world, not_modelled)

    async def fallback(request: Request) -> Response:
        path = request.url.path
        method = request.method
        for route, regex in loose:
            match = regex.match(path)
            if match is None or (route.methods is not None and method not in route.methods):
                continue
            params = {k: route.param_convertors[k].convert(v) for k, v in match.groupdict().items()}
            inner = Request({**request.scope, "path_params": params}, request.receive)
            response: Response = await route.endpoint(inner)
            return response
        return await answer(request)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return [Route(f"{prefix}/{{rest:path}}", fallback, methods=methods) for prefix in GRAPH_PREFIXES]
