"""Admin consent: /api/consent/start, /api/consent/callback, /api/consent/request.

Core modules are imported inside the handlers: indexing the app stays cheap (cold start).
"""

from __future__ import annotations

import azure.functions as func

from functions._auth import CONSENT_FLOW_COOKIE, cookie, expired_cookie, read_cookie
from functions._http import http_endpoint, json_response
from functions._pages import error_page, page, redirect
from shared import errors
from shared.bootstrap import get_container

bp = func.Blueprint()
COOKIE_PATH = "/api/consent"


@bp.function_name("consent_start")
@bp.route(route="consent/start", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def consent_start(req: func.HttpRequest) -> func.HttpResponse:
    from shared.identity.consent import start_admin_consent

    deps = get_container()
    start = start_admin_consent(deps, req.params.get("tenant"))
    return redirect(
        start.redirect_url,
        headers={
            "Set-Cookie": cookie(
                CONSENT_FLOW_COOKIE, start.binding, max_age=deps.settings.flow_ttl_seconds, path=COOKIE_PATH
            )
        },
    )


@bp.function_name("consent_callback")
@bp.route(route="consent/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    from shared.identity.consent import APP_PERMISSIONS, complete_admin_consent

    deps = get_container()
    clear = {"Set-Cookie": expired_cookie(CONSENT_FLOW_COOKIE, path=COOKIE_PATH)}
    try:
        tenant = complete_admin_consent(deps, dict(req.params), read_cookie(req, CONSENT_FLOW_COOKIE))
    except errors.ServiceError as err:
        shown = error_page("consent", err, headers=clear)
        if shown is None:
            raise
        return shown
    if tenant.missing_roles:
        return page(
            "Consent is incomplete",
            [
                "Consent was recorded for your tenant, but these application "
                "permissions are missing. Grant consent again so that interview scheduling works:"
            ],
            items=list(tenant.missing_roles),
            headers=clear,
        )
    return page(
        "You're all set",
        [
            "Thank you. Consent was granted for your Office 365 tenant, and recruiters "
            "can now sign in with Office 365 to schedule interviews."
        ],
        items=[f"{name}: {why}" for name, why in APP_PERMISSIONS],
        headers=clear,
    )


@bp.function_name("consent_request")
@bp.route(route="consent/request", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def consent_request(req: func.HttpRequest) -> func.HttpResponse:
    from shared.identity.consent import APP_PERMISSIONS, consent_request_email

    email = consent_request_email(
        get_container().settings, req.params.get("tenant"), requested_by=req.params.get("from")
    )
    return json_response(
        {
            **email,
            "permissions": [{"name": name, "reason": why} for name, why in APP_PERMISSIONS],
        }
    )
