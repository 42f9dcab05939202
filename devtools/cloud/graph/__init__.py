"""Microsoft Graph v1.0 for the local cloud: directory, groups, mailbox settings, calendars, events, mail,
subscriptions, $batch.

``routes(world)`` is every Graph route under ``/v1.0`` (with ``middleware()`` around them);
``control_routes(world)`` the Graph controls under ``/_control/graph``. The app mounts both.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from devtools.cloud.state import World


def routes(world: World) -> list[BaseRoute]:
    # Imported here so that importing the package (e.g. graph.fixtures from the seed loader) stays
    # cheap and free of import cycles.
    from devtools.cloud.graph import (
        batch,
        calendar,
        calendars,
        directory,
        events,
        groups,
        mail,
        mailbox_settings,
        routing,
        subscriptions,
    )

    modelled = [
        *subscriptions.routes(world),
        *batch.routes(world),
        *directory.routes(world),
        *mailbox_settings.routes(world),
        *calendar.routes(world),
        *calendars.routes(world),
        *events.routes(world),
        *groups.routes(world),
        *mail.routes(world),
    ]
    # Last: what no route above takes gets Graph's JSON error (or a case-insensitive second match).
    return [*modelled, *routing.fallback_routes(world, modelled)]


def middleware() -> list[Middleware]:
    """ASGI middleware the Graph routes expect around them (query option names in one spelling)."""
    from devtools.cloud.graph.routing import CanonicalQuery

    return [Middleware(CanonicalQuery)]


def control_routes(world: World) -> list[BaseRoute]:
    from devtools.cloud.graph import controls, subscriptions

    return controls.control_routes(world) + subscriptions.control_routes(world)
