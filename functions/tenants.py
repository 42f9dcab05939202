"""The signed-in user's tenant: readiness checks and tenant settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._auth import requires_session
from functions._contract import read_body
from functions._http import http_endpoint, json_response
from functions._views import readiness_json, tenant_settings_json
from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.identity.guard import RequestContext

bp = func.Blueprint()


@bp.function_name("tenant_readiness")
@bp.route(route="tenants/me/readiness", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=False)
def tenant_readiness(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.identity.readiness import run_readiness

    return json_response(readiness_json(run_readiness(get_container(), ctx)))


@bp.function_name("tenant_settings_get")
@bp.route(route="tenants/me/settings", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def tenant_settings_get(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.identity.tenant_settings import settings_of

    return json_response(tenant_settings_json(settings_of(ctx.tenant)))


@bp.function_name("tenant_settings_put")
@bp.route(route="tenants/me/settings", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def tenant_settings_put(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.identity.tenant_settings import require_settings_admin, update_tenant_settings
    from shared.sync.subscriptions import subscribe_tenant_mailboxes

    require_settings_admin(ctx)  # before the body is read: a caller who may not write hears 403 first
    view = update_tenant_settings(get_container(), ctx, read_body(req, "tenant_settings_put"))
    subscribe_tenant_mailboxes(get_container(), ctx.tenant_id)  # never raises: the renewal timer retries
    return json_response(tenant_settings_json(view))
