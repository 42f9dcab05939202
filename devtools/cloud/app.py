"""The local Microsoft cloud as one ASGI app: Entra ID at the root, Graph under ``/v1.0``, controls at ``/_control``."""

from __future__ import annotations

from starlette.applications import Starlette

from devtools.cloud import control, graph, identity
from devtools.cloud.state import World


def build_app(world: World) -> Starlette:
    """Compose the cloud for ``world``; the identity and Graph hosts are one host, as the service sees it."""
    # Controls and Graph come first: identity's "/{tenant}/..." patterns would swallow their paths.
    return Starlette(
        routes=[*control.routes(world), *graph.routes(world), *identity.routes(world)],
        middleware=graph.middleware(),
    )
