"""What the Graph mixins (events, subscriptions) call on ``GraphClient``: its one request method."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.models import AccessToken


class GraphRequests:
    """Base of the Graph mixins. ``GraphClient.request`` is the implementation (retries, deadlines,
    Graph's errors translated); the mixins build paths and bodies and read the answers."""

    if TYPE_CHECKING:

        def request(
            self,
            method: str,
            path: str,
            token: AccessToken,
            *,
            params: dict[str, str] | None = None,
            json: Any = None,
            headers: dict[str, str] | None = None,
            retry_safe: bool | None = None,
            deadline: float | None = None,
            max_retries: int | None = None,
        ) -> dict[str, Any]: ...

        def _relative(self, link: str) -> str:
            """A nextLink relative to the client's base URL (``GraphSubscriptionsMixin``)."""
            ...
