"""Microsoft Graph v1.0 for the local cloud: directory, mailbox settings, calendars, events, subscriptions, $batch.

``routes(world)`` is every Graph route under ``/v1.0``; ``control_routes(world)`` the Graph controls
under ``/_control/graph``. The app mounts both.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from devtools.cloud.state import World


def routes(world: World) -> list[BaseRoute]:
    # Imported here so that importing the package (e.g. for graph.fixtures from the seed loader)
    # stays cheap and free of cycles.
    from devtools.cloud.graph import calendar, directory, events, subscriptions

    result: list[BaseRoute] = []
    result += subscriptions.routes(world)
    result += directory.routes(world)
    result += calendar.routes(world)
    result += events.routes(world)
    try:
        from devtools.cloud.graph import batch
    except ModuleNotFoundError as err:
        if err.name != "devtools.cloud.graph.batch":
            raise
    else:
        result += batch.routes(world)
    return result


def control_routes(world: World) -> list[BaseRoute]:
    from devtools.cloud.graph import controls

    return controls.control_routes(world)
