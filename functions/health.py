"""GET /api/health (liveness, anonymous) and GET /api/health/details (each dependency, function key)."""

from __future__ import annotations

import azure.functions as func

from functions._http import error_body, http_endpoint, json_response
from functions._routes import routes
from shared.bootstrap import get_container

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for anyone: ok or failing, nothing about what failed or where."""
    from shared.health import check_liveness  # imported on first call: cold start

    alive = check_liveness(get_container())
    return json_response({"status": "ok" if alive else "failing"}, status=200 if alive else 503)


@bp.function_name("health_details")
@bp.route(route="health/details", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
def health_details(req: func.HttpRequest) -> func.HttpResponse:
    """Each dependency with its detail (key version, endpoints): behind a function key."""
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
    """Routes with literal segments take precedence; this answers every other path under /api, and a
    known path asked with a method it does not serve (405 with ``Allow``, as the local host does)."""
    allowed = routes.methods_for(req.route_params.get("path") or "")
    if allowed:
        return json_response(
            error_body("method_not_allowed", f"This endpoint answers {', '.join(allowed)}."),
            status=405,
            headers={"Allow": ", ".join(allowed)},
        )
    return json_response(error_body("not_found", "No endpoint at this path."), status=404)
