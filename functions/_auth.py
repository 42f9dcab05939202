"""Session credentials, cookies and the shared guard every protected endpoint goes through."""

from __future__ import annotations

import functools
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.identity.guard import RequestContext

SESSION_COOKIE = "ics_session"
SIGNIN_FLOW_COOKIE = "ics_signin_flow"
CONSENT_FLOW_COOKIE = "ics_consent_flow"


def read_cookie(req: func.HttpRequest, name: str) -> str | None:
    raw = req.headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is treated as no cookie
        return None
    morsel = jar.get(name)
    return morsel.value if morsel and morsel.value else None


def session_credential(req: func.HttpRequest) -> str | None:
    """The session travels as a Bearer header (API callers) or as the session cookie (browsers)."""
    auth = req.headers.get("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return read_cookie(req, SESSION_COOKIE)


def cookie(name: str, value: str, *, max_age: int, path: str = "/api", same_site: str = "Lax") -> str:
    """HttpOnly, Secure, SameSite. Browsers keep Secure cookies from http://localhost too."""
    return f"{name}={value}; Max-Age={max_age}; Path={path}; HttpOnly; Secure; SameSite={same_site}"


def expired_cookie(name: str, *, path: str = "/api", same_site: str = "Lax") -> str:
    return f"{name}=; Max-Age=0; Path={path}; HttpOnly; Secure; SameSite={same_site}"


Handler = Callable[..., func.HttpResponse]


def requires_session(*, calendar: bool) -> Callable[[Handler], Handler]:
    """The one guard. ``calendar=True`` enforces the two-token rule (session AND tenant consent);
    ``calendar=False`` only a valid session. The handler receives ``ctx`` as a keyword."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(req: func.HttpRequest, *args: Any, **kwargs: Any) -> func.HttpResponse:
            from shared.identity.guard import authenticate_session, require_calendar_access

            deps = get_container()
            credential = session_credential(req)
            ctx: RequestContext = (
                require_calendar_access(deps, credential) if calendar else authenticate_session(deps, credential)
            )
            return handler(req, *args, ctx=ctx, **kwargs)

        # Keep the signature the Functions indexer sees: only the trigger's parameters.
        wrapper.__signature__ = _without_ctx(handler)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _without_ctx(handler: Handler) -> Any:
    import inspect

    sig = inspect.signature(handler)
    return sig.replace(parameters=[p for name, p in sig.parameters.items() if name != "ctx"])
