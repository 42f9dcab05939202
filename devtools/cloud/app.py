"""The local Microsoft cloud as one ASGI app: Entra ID at the root, Graph under ``/v1.0``, controls under ``/_control``."""

from __future__ import annotations

import importlib

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from devtools.cloud import control, identity
from devtools.cloud.state import World


def _graph_routes(world: World) -> list[BaseRoute]:
    graph = importlib.import_module("devtools.cloud.graph")
    build = getattr(graph, "routes", None)
    if build is None:
        return []
    found: list[BaseRoute] = build(world)
    return found


def build_app(world: World) -> Starlette:
    """Compose the cloud for ``world``; the identity and Graph hosts are one host, as the service sees it."""
    # Controls and Graph come first: identity's "/{tenant}/..." patterns would swallow their paths.
    return Starlette(routes=[*control.routes(world), *_graph_routes(world), *identity.routes(world)])
