"""Helpers for subscription tests: a local webhook receiver that records requests and answers as scripted."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from devtools.cloud import tokens
from devtools.cloud.state import World
from tests.kit import stack_now

TENANT_A = "11111111-1111-4111-8111-111111111111"
TENANT_B = "22222222-2222-4222-8222-222222222222"
APP = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER_APP = "aaaaaaaa-0000-4000-8000-000000000002"
ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"
CAROL = "ca401000-0000-4000-8000-000000000003"  # tenant B


def in_minutes(minutes: float) -> str:
    """An ISO 8601 UTC time ``minutes`` from now, as clients send expirationDateTime."""
    return (stack_now() + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def is_validation(self) -> bool:
        return "validationToken" in self.query

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    """How one path answers: the handshake (echo / wrong / status) and a script of notification answers."""

    validation: str = "echo"  # echo | encoded | status500 | slow
    validation_delay: float = 0.0
    # Answers for notification POSTs in order; the last one repeats. (status, delay seconds)
    answers: list[tuple[int, float]] = field(default_factory=lambda: [(202, 0.0)])


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that records every request and answers as scripted per path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.behaviour: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def notifications(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if not r.is_validation and (path is None or r.path == path)]

    def validations(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.is_validation]

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        received = Received(path, parse_qs(request.url.query), dict(request.headers), await request.body())
        with self._lock:
            self.requests.append(received)
            behaviour = self.behaviour.setdefault(path, Behaviour())
            if not received.is_validation:
                count = len([r for r in self.requests if r.path == path and not r.is_validation])
                status, delay = behaviour.answers[min(count - 1, len(behaviour.answers) - 1)]
        if received.is_validation:
            token = received.query["validationToken"][0]  # parse_qs decodes it
            await asyncio.sleep(behaviour.validation_delay)
            if behaviour.validation == "status500":
                return PlainTextResponse("boom", status_code=500)
            if behaviour.validation == "encoded":
                return PlainTextResponse(urlsplit(str(request.url)).query.split("validationToken=")[1])
            return PlainTextResponse(token)
        await asyncio.sleep(delay)
        return Response(status_code=status)


# ---- tokens and a subscription, as the subscription tests ask for them --------------------------------
def app_token(
    world: World, tenant_id: str = TENANT_A, client_id: str = APP, roles: tuple[str, ...] = ("Calendars.Read",)
) -> dict[str, str]:
    token = tokens.issue_access_token(world, tenant_id=tenant_id, client_id=client_id, roles=set(roles))
    return {"Authorization": f"Bearer {token}"}


def user_token(
    world: World, user_id: str, scopes: tuple[str, ...] = ("Calendars.Read",), client_id: str = APP
) -> dict[str, str]:
    tenant_id = world.users[user_id].tenant_id
    token = tokens.issue_access_token(
        world, tenant_id=tenant_id, client_id=client_id, user_id=user_id, scopes=set(scopes)
    )
    return {"Authorization": f"Bearer {token}"}


def create(client: TestClient, headers: dict[str, str], receiver: Receiver, **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url("/notify?tenant=contoso"),
        "lifecycleNotificationUrl": receiver.url("/lifecycle"),
        "resource": f"/users/{ALICE}/events",
        "expirationDateTime": in_minutes(60 * 24),
        "clientState": "s3cret-state",
    }
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    return client.post("/v1.0/subscriptions", json=body, headers=headers)
