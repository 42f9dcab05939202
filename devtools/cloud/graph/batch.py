"""Graph JSON batching: ``POST /v1.0/$batch`` with up to 20 requests, ``dependsOn`` and 424 cascades.

Each request is dispatched in-process to the cloud's own ASGI app (the app that served the batch),
carrying the batch's Authorization header, so authentication, permissions, throttling, faults and
latency apply to every request on its own; a throttled request answers 429 inside a 200 batch.

Requests without ``dependsOn`` run concurrently, but at most four at a time per mailbox, the way
Graph hands Outlook "up to four individual requests from the batch at a time" (a limit Microsoft's
stored documentation does not state; the cap is kept so that a batch alone never trips the
four-concurrent-requests-per-mailbox limit). Graph also rejects batches that are neither fully
parallel nor fully sequential; so does this one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from devtools.cloud.common import Caller, GraphError
from devtools.cloud.graph.pipeline import IN_BATCH
from devtools.cloud.graph.store import count_request
from devtools.cloud.state import World

logger = logging.getLogger(__name__)

Authenticator = Callable[[World, Request], Caller]

MAX_REQUESTS = 20
MAILBOX_CONCURRENCY = 4
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Hop-by-hop and framing headers describe the inner HTTP exchange, not the batched response.
_DROPPED_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "date", "server"})

NOT_SEQUENTIAL_OR_PARALLEL = "Batch should be either fully sequential or fully parallel."
FAILED_DEPENDENCY = "Failed dependency."


def _default_authenticate(world: World, request: Request) -> Caller:
    from devtools.cloud import tokens

    return tokens.authenticate(world, request)


def _bad_batch(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _error_body(err: GraphError) -> dict[str, Any]:
    body = json.loads(bytes(err.response().body))
    assert isinstance(body, dict)
    return body


def _error_response(request_id: str, err: GraphError) -> dict[str, Any]:
    return {
        "id": request_id,
        "status": err.status,
        "headers": {"Content-Type": "application/json", **err.headers},
        "body": _error_body(err),
    }


def parse_batch(raw: bytes) -> list[dict[str, Any]]:
    """Validate the batch envelope; every problem here makes the whole batch a 400."""
    try:
        body = json.loads(raw or b"null")
    except ValueError as err:
        raise _bad_batch("Unable to read JSON request payload.") from err
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _bad_batch("Invalid batch payload format.")
    requests: list[dict[str, Any]] = body["requests"]
    if not requests:
        raise _bad_batch("Invalid batch payload format.")
    if len(requests) > MAX_REQUESTS:
        raise _bad_batch(f"Number of requests in the batch ({len(requests)}) exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in requests:
        if not isinstance(item, dict):
            raise _bad_batch("Invalid batch payload format.")
        request_id = item.get("id")
        if not isinstance(request_id, str) or not request_id:
            raise _bad_batch("Each request in the batch must have an id.")
        if request_id.lower() in seen:  # ids are not case-sensitive
            raise _bad_batch(f"Request id '{request_id}' is not unique in the batch.")
        seen.add(request_id.lower())
        if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
            raise _bad_batch(f"Request '{request_id}' must have a method and a url.")
        headers = item.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise _bad_batch(f"Request '{request_id}' has invalid headers.")
        depends = item.get("dependsOn")
        if depends is not None and (not isinstance(depends, list) or not all(isinstance(d, str) for d in depends)):
            raise _bad_batch(f"Request '{request_id}' has an invalid dependsOn.")
    for item in requests:
        for dep in item.get("dependsOn") or []:
            if dep.lower() not in seen or dep.lower() == item["id"].lower():
                raise _bad_batch(f"Request '{item['id']}' depends on unknown request '{dep}'.")
    _check_order(requests)
    return requests


def _check_order(requests: list[dict[str, Any]]) -> None:
    """Fully parallel (no dependsOn) or fully sequential (exactly one order satisfies dependsOn)."""
    deps = {r["id"].lower(): {d.lower() for d in r.get("dependsOn") or []} for r in requests}
    if not any(deps.values()):
        return
    order: list[str] = []
    remaining = dict(deps)
    while remaining:
        ready = [k for k, v in remaining.items() if not v - set(order)]
        if len(ready) != 1:
            # Zero ready: a cycle. Several ready: requests that could run side by side, i.e. a mixed batch.
            raise _bad_batch(NOT_SEQUENTIAL_OR_PARALLEL)
        order.append(ready[0])
        del remaining[ready[0]]
    for previous, current in itertools.pairwise(order):
        if previous not in deps[current]:
            raise _bad_batch(NOT_SEQUENTIAL_OR_PARALLEL)


def mailbox_of(world: World, caller: Caller, url: str) -> str | None:
    """The mailbox a request URL reaches (``/me/...`` or ``/users/{id or UPN}/...``), for the concurrency cap."""
    path = url.split("?", 1)[0].strip("/").split("/")
    if not path or not path[0]:
        return None
    head = path[0].lower()
    if head == "me":
        return caller.user_id
    if head == "users" and len(path) > 1 and path[1]:
        user = world.find_user(caller.tenant_id, path[1])
        return user.id if user is not None else path[1].lower()
    return None


def _header(headers: dict[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _encode_body(item: dict[str, Any]) -> tuple[bytes | None, dict[str, str]]:
    """The inner request's body bytes and headers; raises GraphError(400) for this request only."""
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    if "body" not in item or item["body"] is None:
        return None, headers
    content_type = _header(headers, "Content-Type")
    if not content_type:
        raise GraphError(400, "BadRequest", "Content-Type header must be specified when a body is present.")
    body = item["body"]
    if "json" in content_type.lower():
        return json.dumps(body).encode("utf-8"), headers
    if not isinstance(body, str):
        raise GraphError(400, "BadRequest", "A non-JSON body must be base64 encoded.")
    try:
        return base64.b64decode(body, validate=True), headers
    except (binascii.Error, ValueError) as err:
        raise GraphError(400, "BadRequest", "A non-JSON body must be base64 encoded.") from err


def _response_entry(request_id: str, response: httpx.Response) -> dict[str, Any]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED_RESPONSE_HEADERS}
    entry: dict[str, Any] = {"id": request_id, "status": response.status_code, "headers": headers}
    if response.content:
        content_type = response.headers.get("content-type", "")
        if "json" in content_type:
            try:
                entry["body"] = response.json()
            except ValueError:
                entry["body"] = base64.b64encode(response.content).decode("ascii")
        else:
            # Graph returns non-JSON bodies (images, text) base64 encoded inside the JSON batch.
            entry["body"] = base64.b64encode(response.content).decode("ascii")
    return entry


class _BatchRun:
    """One batch's requests, run against the app that served the batch, with their dependencies and caps."""

    def __init__(
        self, world: World, caller: Caller, items: list[dict[str, Any]], *, prefix: str, outer_auth: str
    ) -> None:
        self.world = world
        self.caller = caller
        self.items = items
        self.prefix = prefix
        self.outer_auth = outer_auth
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        self.done: dict[str, asyncio.Event] = {item["id"].lower(): asyncio.Event() for item in items}
        self.succeeded: dict[str, bool] = {}
        self.responses: list[dict[str, Any]] = []

    async def run(self, app: Any, base_url: str) -> list[dict[str, Any]]:
        # An unhandled error inside one request becomes its 500, not the batch's.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        marker = IN_BATCH.set(True)  # the tasks below copy this context: their requests count as batched
        try:
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                await asyncio.gather(*(self._run_one(client, item) for item in self.items))
        finally:
            IN_BATCH.reset(marker)
        return self.responses

    async def _execute(self, client: httpx.AsyncClient, item: dict[str, Any]) -> dict[str, Any]:
        request_id: str = item["id"]
        method = item["method"].upper()
        url: str = item["url"]
        if method not in METHODS:
            raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
        if "://" in url or url.lstrip("/").lower().startswith("$batch"):
            raise GraphError(400, "BadRequest", "Invalid request URL.")
        content, headers = _encode_body(item)
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if self.outer_auth:
            headers["Authorization"] = self.outer_auth  # the batch's caller is every request's caller
        mailbox = mailbox_of(self.world, self.caller, url)
        semaphore = self.semaphores.setdefault(mailbox or "", asyncio.Semaphore(MAILBOX_CONCURRENCY))
        async with semaphore:
            response = await client.request(
                method, f"{self.prefix}/{url.lstrip('/')}", content=content, headers=headers
            )
        return _response_entry(request_id, response)

    async def _run_one(self, client: httpx.AsyncClient, item: dict[str, Any]) -> None:
        key = item["id"].lower()
        try:
            deps = [d.lower() for d in item.get("dependsOn") or []]
            for dep in deps:
                await self.done[dep].wait()
            if not all(self.succeeded.get(dep, False) for dep in deps):
                entry = _error_response(item["id"], GraphError(424, "FailedDependency", FAILED_DEPENDENCY))
            else:
                try:
                    entry = await self._execute(client, item)
                except GraphError as err:
                    entry = _error_response(item["id"], err)
            self.succeeded[key] = 200 <= int(entry["status"]) < 300
            self.responses.append(entry)  # completion order: Graph does not promise request order
        finally:
            self.done[key].set()


def routes(world: World, *, prefix: str = "/v1.0", authenticate: Authenticator | None = None) -> list[BaseRoute]:
    auth = authenticate or _default_authenticate

    async def run_batch(request: Request) -> Response:
        try:
            caller = auth(world, request)
        except GraphError as err:
            count_request(world, request.method, request.url.path, None, False)
            return err.response()
        count_request(
            world, request.method, request.url.path, (caller.tenant_id, caller.client_id, caller.user_id or ""), False
        )
        try:
            items = parse_batch(await request.body())
        except GraphError as err:
            return err.response()
        run = _BatchRun(world, caller, items, prefix=prefix, outer_auth=request.headers.get("authorization", ""))
        responses = await run.run(request.scope["app"], str(request.base_url).rstrip("/"))
        return JSONResponse({"responses": responses}, headers={"OData-Version": "4.0"})

    return [Route(f"{prefix}/$batch", run_batch, methods=["POST"])]
