"""Graph's validation handshake: before a subscription exists, each notification endpoint must echo a token.

The endpoint gets a POST to ``{url}?validationToken=...`` and must answer 200, ``text/plain`` and the
decoded token within the validation timeout; every attempt is written to the delivery log.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from urllib.parse import quote_plus, urlsplit

import httpx

from devtools.cloud import notify
from devtools.cloud.common import GraphError
from devtools.cloud.state import World

logger = logging.getLogger(__name__)

VALIDATION_NOT_OK = (
    "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
)
VALIDATION_MISMATCH = (
    "Subscription validation request failed. Response must exactly match validationToken query parameter."
)
VALIDATION_TIMEOUT = "Subscription validation request timed out."


def new_validation_token() -> str:
    # Graph's tokens contain spaces and colons, so an endpoint that echoes the raw query value
    # (still URL-encoded) fails exactly as it would against Graph.
    return f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"


def validation_client() -> httpx.AsyncClient:
    """The HTTP client of the handshake. It has no timeout of its own (httpx's default would end the wait
    after 5 seconds): the endpoint gets the documented 10 seconds (``validation_timeout_seconds``),
    applied around the request."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=None)


async def _ask(world: World, url: str, token: str) -> tuple[int | None, GraphError | None]:
    """POST the token to the endpoint; its status (None: no answer) and what was wrong with the answer."""
    separator = "&" if urlsplit(url).query else "?"
    target = f"{url}{separator}validationToken={quote_plus(token)}"
    timeout = world.switches.validation_timeout_seconds
    status: int | None = None
    error: GraphError | None = None
    async with validation_client() as client:
        try:
            response = await asyncio.wait_for(
                client.post(target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"}), timeout
            )
            status = response.status_code
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if status != 200:
                error = GraphError(400, "ValidationError", VALIDATION_NOT_OK)
            elif content_type != "text/plain" or response.text != token:
                error = GraphError(400, "ValidationError", VALIDATION_MISMATCH)
        except (TimeoutError, httpx.TimeoutException):
            error = GraphError(400, "InvalidRequest", VALIDATION_TIMEOUT)
        except httpx.HTTPError:
            error = GraphError(400, "ValidationError", VALIDATION_NOT_OK)
    return status, error


async def validate_endpoint(world: World, url: str, subscription_id: str) -> None:
    """POST ``{url}?validationToken=...`` and require 200, text/plain and the decoded token, in time."""
    started = asyncio.get_running_loop().time()
    status, error = await _ask(world, url, new_validation_token())
    elapsed = asyncio.get_running_loop().time() - started
    with world.lock:
        notify.state(world).log.append(
            notify.DeliveryRecord(
                "validation",
                url,
                "rejected" if error else "validated",
                status,
                1,
                (subscription_id,),
                None,
                world.now(),
                elapsed,
                error.message if error else None,
            )
        )
    if error is not None:
        logger.warning("validation of notification endpoint %s failed: %s", url, error.message)
        raise error
