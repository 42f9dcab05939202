"""Timers that keep change notifications flowing, and the subscriptions health view (tenant admins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._auth import requires_session
from functions._http import http_endpoint, json_response
from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.identity.guard import RequestContext

bp = func.Blueprint()


@bp.function_name("renew_subscriptions")
@bp.timer_trigger(schedule="%RENEWAL_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def renew_subscriptions(timer: func.TimerRequest) -> None:
    from shared.sync.renewal import renew_subscriptions as renew

    renew(get_container())


@bp.function_name("reconcile_subscriptions")
@bp.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def reconcile_subscriptions(timer: func.TimerRequest) -> None:
    from shared.sync.reconcile import reconcile

    reconcile(get_container())


@bp.function_name("subscriptions_health")
@bp.route(route="subscriptions/health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=False)
def subscriptions_health(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from shared.errors import Forbidden
    from shared.sync.report import subscriptions_health as health

    if not ctx.user.is_tenant_admin:
        raise Forbidden("Only an administrator of your Office 365 tenant can see the subscriptions' health.")
    from functions._views import subscriptions_health_json

    return json_response(subscriptions_health_json(health(get_container(), ctx.tenant_id)))
