"""Admin consent: /api/consent/start, /api/consent/callback, /api/consent/request.

Core modules are imported inside the handlers: indexing the app stays cheap (cold start).
"""

from __future__ import annotations

import azure.functions as func

from functions._auth import CONSENT_FLOW_COOKIE, cookie, expired_cookie, read_cookie
from functions._http import http_endpoint, json_response, status_for
from functions._pages import page, redirect
from shared import errors
from shared.bootstrap import get_container

bp = func.Blueprint()
COOKIE_PATH = "/api/consent"


@bp.function_name("consent_start")
@bp.route(route="consent/start", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def consent_start(req: func.HttpRequest) -> func.HttpResponse:
    from shared.consent import start_admin_consent

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
    from shared.consent import APP_PERMISSIONS, complete_admin_consent

    deps = get_container()
    clear = {"Set-Cookie": expired_cookie(CONSENT_FLOW_COOKIE, path=COOKIE_PATH)}
    try:
        tenant = complete_admin_consent(deps, dict(req.params), read_cookie(req, CONSENT_FLOW_COOKIE))
    except errors.InvalidFlowState as err:
        return page(
            "This consent link has expired",
            [err.message, "Nothing was recorded. Open the consent link from the email again."],
            status=status_for(err),
            headers=clear,
        )
    except errors.SigninDenied as err:
        retry = err.details.get("retry_url")
        return page(
            "Consent was not granted",
            [
                err.message,
                "Nothing was recorded. You can try again; an Office 365 administrator must sign in and accept.",
            ],
            status=status_for(err),
            links=[("Try again", retry)] if retry else None,
            headers=clear,
        )
    except (errors.TenantMismatch, errors.NotFound) as err:
        return page(
            "Consent could not be verified",
            [err.message, "Nothing was recorded."],
            status=status_for(err),
            headers=clear,
        )
    except errors.AdminConsentRequired as err:
        return page(
            "Consent could not be verified",
            [
                "Microsoft did not give the app a token for your "
                "tenant, so the consent could not be confirmed. Nothing was recorded. Try again in a "
                "few minutes."
            ],
            status=status_for(err),
            headers=clear,
        )
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
    from shared.consent import APP_PERMISSIONS, consent_request_email

    email = consent_request_email(
        get_container().settings, req.params.get("tenant"), requested_by=(req.params.get("from") or "")[:200] or None
    )
    return json_response(
        {
            **email,
            "permissions": [{"name": name, "reason": why} for name, why in APP_PERMISSIONS],
        }
    )
