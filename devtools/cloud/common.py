"""Types shared by every part of the local cloud: the authenticated caller and Graph's error shape."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from starlette.responses import JSONResponse

from devtools.cloud.state import utcnow


@dataclass(frozen=True)
class Caller:
    """Who a Graph request comes from, proven by a signed access token."""

    tenant_id: str
    client_id: str
    user_id: str | None  # None for an app-only (client credentials) token
    scopes: frozenset[str] = field(default_factory=frozenset)  # delegated: the token's scp
    roles: frozenset[str] = field(default_factory=frozenset)  # application: the token's roles

    @property
    def app_only(self) -> bool:
        return self.user_id is None


class GraphError(Exception):
    """A Graph error answer: ``{"error": {"code", "message", "innerError": {...}}}``."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        now = utcnow().strftime("%Y-%m-%dT%H:%M:%S")
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {"date": now, "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())},
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)
