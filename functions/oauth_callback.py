"""Recruiter sign-in: /api/auth/login, /api/auth/callback (GET and form_post), /api/auth/logout, /api/me.

Core modules are imported inside the handlers: indexing the app stays cheap (cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import azure.functions as func

from functions._auth import (
    SESSION_COOKIE,
    SIGNIN_FLOW_COOKIE,
    cookie,
    expired_cookie,
    read_cookie,
    requires_session,
    session_credential,
)
from functions._http import http_endpoint, json_response
from functions._pages import error_page, page, redirect
from shared import errors
from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.identity.guard import RequestContext


bp = func.Blueprint()
FLOW_COOKIE_PATH = "/api/auth"


@bp.function_name("auth_login")
@bp.route(route="auth/login", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def auth_login(req: func.HttpRequest) -> func.HttpResponse:
    from shared.identity.signin import parse_features, start_signin

    deps = get_container()
    start = start_signin(
        deps,
        features=parse_features(req.params.get("features")),
        return_to=req.params.get("return_to"),
        login_hint=req.params.get("login_hint"),
        prompt=req.params.get("prompt"),
    )
    # SameSite=None so the cookie also comes back with a response_mode=form_post callback (a cross-site POST).
    return redirect(
        start.redirect_url,
        headers={
            "Set-Cookie": cookie(
                SIGNIN_FLOW_COOKIE,
                start.binding,
                max_age=deps.settings.flow_ttl_seconds,
                path=FLOW_COOKIE_PATH,
                same_site="None",
            )
        },
    )


def _callback_params(req: func.HttpRequest) -> dict[str, str]:
    if req.method == "POST":
        content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise errors.UnsupportedMediaType("The callback takes a form post.")
        body = req.get_body() or b""
        if len(body) > 64 * 1024:
            raise errors.PayloadTooLarge("The callback form is too large.")
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return dict(req.params)


@bp.function_name("auth_callback")
@bp.route(route="auth/callback", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def auth_callback(req: func.HttpRequest) -> func.HttpResponse:
    from shared.identity.signin import complete_signin
    from shared.urls import login_url

    deps = get_container()
    clear = {"Set-Cookie": expired_cookie(SIGNIN_FLOW_COOKIE, path=FLOW_COOKIE_PATH, same_site="None")}
    try:
        outcome = complete_signin(deps, _callback_params(req), read_cookie(req, SIGNIN_FLOW_COOKIE))
    except errors.ServiceError as err:
        shown = error_page("signin", err, links={"login": login_url(deps.settings)}, headers=clear)
        if shown is None:
            raise
        return shown
    session_cookie = cookie(
        SESSION_COOKIE, outcome.session_credential, max_age=deps.settings.session_ttl_seconds, path="/"
    )
    headers = {"Set-Cookie": session_cookie}
    if outcome.return_to:
        return redirect(outcome.return_to, headers=headers)
    return page("You're signed in", [f"Signed in as {outcome.user.username}. You can close this tab."], headers=headers)


@bp.function_name("auth_logout")
@bp.route(route="auth/logout", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def auth_logout(req: func.HttpRequest) -> func.HttpResponse:
    """Ends this session; ``?everywhere=true`` ends all of the user's sessions and their token cache."""
    from shared.identity.signin import logout

    everywhere = (req.params.get("everywhere") or "false").strip().lower()
    if everywhere not in {"true", "false"}:
        raise errors.InvalidRequest("everywhere must be true or false.", parameter="everywhere")
    logout(get_container(), session_credential(req), everywhere=everywhere == "true")
    return func.HttpResponse(
        status_code=204, headers={"Set-Cookie": expired_cookie(SESSION_COOKIE, path="/"), "Cache-Control": "no-store"}
    )


@bp.function_name("me")
@bp.route(route="me", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=False)
def me(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from functions._views import me_json
    from shared.identity.signin import describe_me

    return json_response(me_json(describe_me(get_container(), ctx)))
