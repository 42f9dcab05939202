"""The request pipeline every Graph route runs through: authentication, permissions, tenant walls, switches.

Order for one request: failure-free latency bookkeeping aside, the caller is authenticated
(``tokens.authenticate``, 401), the global throttle and fault switches are consumed, then the handler
runs. Handlers reach a mailbox only through ``GraphContext.mailbox`` which, in order, checks the
token's permissions (403), resolves the user inside the caller's tenant only (404), applies the
application access policy (403), the on-premises mailbox (404), the mailbox's throttle and fault
switches, and takes one of the four concurrent-request slots Outlook grants an app per mailbox (429).
Added latency is slept while the slot is held, so slow requests pile up the way they do in Exchange.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.cloud import tokens
from devtools.cloud.common import Caller, GraphError
from devtools.cloud.graph import delegation, switches
from devtools.cloud.graph.store import count_request, graph_state
from devtools.cloud.graph.timezones import prefer_timezone
from devtools.cloud.state import User, World

logger = logging.getLogger(__name__)

MAILBOX_CONCURRENCY = 4  # "Four concurrent requests" per app ID and mailbox (Outlook service limits)

ACCESS_DENIED = "Access is denied. Check credentials and try again."

# Permissions, from the permission tables of each API's reference page.
DIRECTORY_OTHERS_DELEGATED = frozenset(
    {
        "user.readbasic.all",
        "user.read.all",
        "user.readwrite.all",
        "directory.read.all",
        "directory.readwrite.all",
        "directory.accessasuser.all",
    }
)
DIRECTORY_SELF_DELEGATED = DIRECTORY_OTHERS_DELEGATED | {"user.read", "user.readwrite"}
DIRECTORY_APP = frozenset(
    {"user.readbasic.all", "user.read.all", "user.readwrite.all", "directory.read.all", "directory.readwrite.all"}
)
MAILBOX_SETTINGS = frozenset({"mailboxsettings.read", "mailboxsettings.readwrite"})
CALENDAR_READ = frozenset({"calendars.read", "calendars.readwrite"})
CALENDAR_WRITE = frozenset({"calendars.readwrite"})
CALENDAR_READ_SHARED = frozenset({"calendars.read.shared", "calendars.readwrite.shared"})
CALENDAR_WRITE_SHARED = frozenset({"calendars.readwrite.shared"})
SCHEDULE = frozenset({"calendars.readbasic", "calendars.read", "calendars.readwrite"})

MAILBOX_ACCESS = ("read", "write", "schedule", "settings")

# True while a $batch runs its requests (they reach the routes below in the batch's own context), so
# the request log can tell round trips from requests carried inside one.
IN_BATCH: ContextVar[bool] = ContextVar("graph_in_batch", default=False)


def _normalize(values: frozenset[str]) -> frozenset[str]:
    # Scopes may arrive as "https://graph.microsoft.com/Calendars.Read"; Graph compares names only.
    return frozenset(v.rsplit("/", 1)[-1].lower() for v in values)


def access_denied() -> GraphError:
    return GraphError(403, "ErrorAccessDenied", ACCESS_DENIED)


def directory_denied() -> GraphError:
    # Directory (Azure AD) endpoints answer missing permissions with their own code.
    return GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def directory_not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
    )


def mailbox_user_not_found(key: str) -> GraphError:
    # Exchange's answer for /users/{x}/events, calendarView, mailboxSettings when x is nobody in the tenant.
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")


def mailbox_on_premises_error() -> GraphError:
    # No official text: this is the answer observed from Graph for a hybrid mailbox it cannot reach.
    return GraphError(
        404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise."
    )


def throttled(retry_after: float) -> GraphError:
    seconds = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
    return GraphError(
        429,
        "TooManyRequests",
        "Too many requests. Please try again later.",
        headers={"Retry-After": seconds},
    )


def mailbox_concurrency_exceeded() -> GraphError:
    return GraphError(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        headers={"Retry-After": "1"},
    )


def fault(status: int) -> GraphError:
    codes = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceNotAvailable", 504: "GatewayTimeout"}
    headers = {"Retry-After": "1"} if status == 503 else None
    return GraphError(
        status, codes.get(status, "UnknownError"), "The service is temporarily unavailable.", headers=headers
    )


@dataclass
class GraphContext:
    """One Graph request: the world, the HTTP request, the authenticated caller, and the slots it holds."""

    world: World
    request: Request
    caller: Caller
    slots: list[tuple[str, str]] = field(default_factory=list)
    slots_taken_at: float = 0.0
    _body: Any = None

    @property
    def scopes(self) -> frozenset[str]:
        return _normalize(self.caller.scopes)

    @property
    def roles(self) -> frozenset[str]:
        return _normalize(self.caller.roles)

    @property
    def prefer_tz(self) -> str | None:
        return prefer_timezone(self.request.headers)

    async def json(self) -> dict[str, Any]:
        if self._body is None:
            raw = await self.request.body()
            try:
                self._body = json.loads(raw or b"{}")
            except ValueError as err:
                raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from err
            if not isinstance(self._body, dict):
                raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
        assert isinstance(self._body, dict)
        return self._body

    def me(self) -> User:
        if self.caller.user_id is None:
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        with self.world.lock:
            found = self.world.users.get(self.caller.user_id)
        if found is None:
            raise directory_not_found(self.caller.user_id)
        return found

    def directory_user(self, key: str | None) -> User:
        """A directory read of a user (``None`` is /me): permission, then lookup inside the caller's tenant."""
        if key is None:
            me = self.me()
            if not self.scopes & DIRECTORY_SELF_DELEGATED:
                raise directory_denied()
            return me
        user = self.world.find_user(self.caller.tenant_id, key)
        if self.caller.app_only:
            if not self.roles & DIRECTORY_APP:
                raise directory_denied()
        else:
            is_self = user is not None and user.id == self.caller.user_id
            allowed = DIRECTORY_SELF_DELEGATED if is_self else DIRECTORY_OTHERS_DELEGATED
            if not self.scopes & allowed:
                raise directory_denied()
        if user is None:
            raise directory_not_found(key)
        return user

    def require_directory_list(self) -> None:
        granted = self.roles & DIRECTORY_APP if self.caller.app_only else self.scopes & DIRECTORY_OTHERS_DELEGATED
        if not granted:
            raise directory_denied()

    def user_or_me(self, key: str | None, not_found: Callable[[str], GraphError]) -> User:
        """The signed-in user for ``None``, else the user ``key`` names in the caller's tenant (``not_found``
        is the error for none)."""
        if key is None:
            return self.me()
        found = self.world.find_user(self.caller.tenant_id, key)
        if found is None:
            raise not_found(key)
        return found

    def mailbox(self, key: str | None, access: str) -> User:
        """Enter a mailbox (``None`` is /me) for ``access`` in read | write | schedule | settings."""
        assert access in MAILBOX_ACCESS
        own = {
            "read": CALENDAR_READ | CALENDAR_READ_SHARED,
            "write": CALENDAR_WRITE | CALENDAR_WRITE_SHARED,
            "schedule": SCHEDULE,
            "settings": MAILBOX_SETTINGS,
        }[access]
        if self.caller.app_only:
            app_needed = {
                "read": CALENDAR_READ,
                "write": CALENDAR_WRITE,
                "schedule": SCHEDULE,
                "settings": MAILBOX_SETTINGS,
            }[access]
            if not self.roles & app_needed:
                raise access_denied()
        elif not self.scopes & own:
            raise access_denied()

        user = self.user_or_me(key, mailbox_user_not_found)

        if not self.caller.app_only and user.id != self.caller.user_id and access != "schedule":
            # Another user's mailbox with a delegated token: the .Shared permission and a share or Full
            # Access (directly or through a group, see graph/delegation.py) are both needed.
            shared = {"read": CALENDAR_READ_SHARED, "write": CALENDAR_WRITE_SHARED}.get(access, frozenset())
            shares = delegation.may_open(self.world, user, self.caller.user_id)
            if not (self.scopes & shared) or not shares:
                raise access_denied()

        self.enter(user)
        return user

    def enter(self, user: User) -> None:
        """What every request that reaches a mailbox meets once its permissions are checked: the application
        access policy, an on-premises mailbox, the mailbox's throttle and fault switches, and a concurrency slot."""
        with self.world.lock:
            blocked = user.id in self.world.switches.access_policy_blocked
            on_premises = user.mailbox_on_premises
        if blocked and self.caller.app_only:
            # Application access policies scope app-only access; delegated access is not affected.
            raise GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")
        if on_premises:
            raise mailbox_on_premises_error()
        retry_after = switches.take_throttle(self.world, user.id)
        if retry_after is not None:
            raise throttled(retry_after)
        status = switches.take_fault(self.world, user.id)
        if status is not None:
            raise fault(status)
        self._take_slot(user.id)

    def _take_slot(self, mailbox_id: str) -> None:
        key = (self.caller.client_id, mailbox_id)
        if key in self.slots:
            return
        state = graph_state(self.world)
        with self.world.lock:
            busy = state.in_flight.get(key, 0)
            if self.world.switches.enforce_mailbox_concurrency and busy >= MAILBOX_CONCURRENCY:
                raise mailbox_concurrency_exceeded()
            state.in_flight[key] = busy + 1
        if not self.slots:
            self.slots_taken_at = time.monotonic()
        self.slots.append(key)

    def release(self) -> None:
        state = graph_state(self.world)
        with self.world.lock:
            if self.slots:
                state.slot_seconds += (time.monotonic() - self.slots_taken_at) * len(self.slots)
            for key in self.slots:
                left = state.in_flight.get(key, 0) - 1
                if left > 0:
                    state.in_flight[key] = left
                else:
                    state.in_flight.pop(key, None)
        self.slots.clear()


Handler = Callable[[GraphContext], Awaitable[Response]]


def graph_endpoint(world: World, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler in the Graph pipeline; every GraphError becomes Graph's error body."""

    async def endpoint(request: Request) -> Response:
        ctx: GraphContext | None = None
        who: tuple[str, str, str] | None = None
        try:
            try:
                caller = tokens.authenticate(world, request)
                who = (caller.tenant_id, caller.client_id, caller.user_id or "")
                retry_after = switches.take_throttle(world, None)
                if retry_after is not None:
                    raise throttled(retry_after)
                status = switches.take_fault(world, None)
                if status is not None:
                    raise fault(status)
                ctx = GraphContext(world, request, caller)
                response = await handler(ctx)
                if request.method == "POST" and response.status_code < 400:
                    lost = switches.take_lost_answer(world)
                    if lost is not None:
                        raise fault(lost)  # the write stands; the caller only sees the fault
                if ctx.prefer_tz is not None:
                    response.headers.setdefault("Preference-Applied", f'outlook.timezone="{ctx.prefer_tz}"')
            except GraphError as err:
                response = err.response()
            count_request(world, request.method, request.url.path, who, IN_BATCH.get())
            state = graph_state(world)
            with world.lock:
                latency = world.switches.latency_seconds
                state.answered += 1
                state.throttled += response.status_code == 429
            if latency > 0:
                # Slept while any mailbox slot is still held, so slow requests count as concurrent.
                await asyncio.sleep(latency)
            return response
        finally:
            if ctx is not None:
                ctx.release()

    return endpoint


def graph_route(world: World, path: str, handler: Handler, methods: list[str]) -> Route:
    return Route("/v1.0" + path, graph_endpoint(world, handler), methods=methods)


class _FastJSONResponse(JSONResponse):
    """Starlette's JSONResponse written by orjson: the same compact UTF-8 text, several times faster (a
    getSchedule answer for 20 people is about 70 KB, and the cloud's CPU is every caller's latency)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return _FastJSONResponse(body, status_code=status, headers=headers)
