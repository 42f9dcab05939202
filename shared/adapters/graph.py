"""Microsoft Graph over httpx: one client per worker, explicit timeouts, bounded retries.

Graph's error JSON is read here and turned into ``NotFound`` or
``GraphRequestFailed`` with a ``reason``; raw Graph JSON goes no further.
Retries: 429 and 503 honour ``Retry-After`` (capped), other 5xx retry with a short
exponential backoff; at most ``max_retries`` extra attempts.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from shared.config import Settings
from shared.errors import GraphRequestFailed, NotFound, UpstreamUnavailable
from shared.models import AccessToken, DirectoryUser

logger = logging.getLogger(__name__)

ON_PREMISES_CODES = frozenset({"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"})
ON_PREMISES_MARKERS = ("on premises", "on-premise", "hybrid", "REST API is not yet supported")
USER_SELECT = "id,userPrincipalName,displayName,mail"


def classify(status: int, code: str, message: str) -> str:
    """Map a Graph error to a GraphRequestFailed reason. Codes first; messages only where the
    documentation gives no distinct code (the application access policy and on-premises cases)."""
    if status == 429 or code in {"TooManyRequests", "ApplicationThrottled"}:
        return "throttled"
    if code in ON_PREMISES_CODES or any(m.lower() in message.lower() for m in ON_PREMISES_MARKERS):
        return "on_premises"
    if status == 403 and "Access to OData is disabled" in message:
        return "access_policy"
    if status == 403:
        return "forbidden"
    if status == 401:
        return "unauthorized"
    if status >= 500:
        return "unavailable"
    return "other"


class GraphClient:
    """GraphGateway over httpx."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 2,
        max_retry_after: float = 10.0,
        sleep: Any = time.sleep,
    ) -> None:
        self._client = httpx.Client(
            base_url=settings.graph_base_url + "/",
            timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    # ---- transport -----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        token: AccessToken,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = {"Authorization": f"Bearer {token.token}", **(headers or {})}
        attempt = 0
        while True:
            try:
                response = self._client.request(method, path.lstrip("/"), params=params, json=json, headers=all_headers)
            except httpx.HTTPError as err:
                if attempt < self._max_retries:
                    attempt += 1
                    self._sleep(0.5 * 2**attempt)
                    continue
                raise UpstreamUnavailable(f"Microsoft Graph did not answer ({type(err).__name__}).") from err
            if response.status_code < 400:
                return response.json() if response.content else {}
            retry_after = self._retry_after(response)
            if retry_after is not None and attempt < self._max_retries:
                attempt += 1
                logger.info(
                    "Graph answered %s for %s %s; retrying in %.1f s",
                    response.status_code,
                    method,
                    path.split("?")[0],
                    retry_after,
                )
                self._sleep(retry_after)
                continue
            raise self._error(response)

    def _retry_after(self, response: httpx.Response) -> float | None:
        if response.status_code not in (429, 500, 502, 503, 504):
            return None
        header = response.headers.get("Retry-After")
        try:
            wait = float(header) if header else 1.0
        except ValueError:
            wait = 1.0
        return min(max(wait, 0.0), self._max_retry_after)

    @staticmethod
    def _error(response: httpx.Response) -> Exception:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        if response.status_code == 404 and code not in ON_PREMISES_CODES and "REST API" not in message:
            return NotFound("Microsoft Graph has no such user or item.", graph_code=code)
        reason = classify(response.status_code, code, message)
        return GraphRequestFailed(
            f"Microsoft Graph answered HTTP {response.status_code} ({code or 'no code'}).",
            status=response.status_code,
            reason=reason,
            graph_code=code,
        )

    # ---- calls ---------------------------------------------------------------------------------
    @staticmethod
    def _user(raw: dict[str, Any]) -> DirectoryUser:
        return DirectoryUser(
            user_id=str(raw.get("id", "")),
            user_principal_name=str(raw.get("userPrincipalName", "")),
            display_name=str(raw.get("displayName") or ""),
            mail=raw.get("mail"),
        )

    def get_user(self, token: AccessToken, user: str) -> DirectoryUser:
        raw = self.request("GET", f"users/{quote(user, safe='@')}", token, params={"$select": USER_SELECT})
        return self._user(raw)

    def list_users(self, token: AccessToken, *, top: int) -> list[DirectoryUser]:
        raw = self.request("GET", "users", token, params={"$select": USER_SELECT, "$top": str(top)})
        return [self._user(u) for u in raw.get("value", [])]

    def probe_calendar(self, token: AccessToken, mailbox: str | None) -> None:
        start = datetime.now(UTC).replace(microsecond=0)
        params = {
            "startDateTime": start.isoformat().replace("+00:00", "Z"),
            "endDateTime": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "$top": "1",
            "$select": "id",
        }
        path = "me/calendarView" if mailbox is None else f"users/{quote(mailbox, safe='@')}/calendarView"
        self.request("GET", path, token, params=params)
