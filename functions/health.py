"""GET /api/health: reachability of storage, the key source, Graph and the authority host."""

from __future__ import annotations

import azure.functions as func

from functions._http import error_body, http_endpoint, json_response
from shared.bootstrap import get_container

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.health import check_health  # imported on first call: cold start

    results = check_health(get_container())
    healthy = all(r.ok for r in results)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "checks": {r.name: {"ok": r.ok, "latency_ms": r.latency_ms, "detail": r.detail} for r in results},
    }
    return json_response(body, status=200 if healthy else 503)


@bp.function_name("not_found")
@bp.route(
    route="{*path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
def not_found(req: func.HttpRequest) -> func.HttpResponse:
    """Routes with literal segments take precedence; this answers every other path under /api."""
    return json_response(error_body("not_found", "No endpoint at this path."), status=404)
