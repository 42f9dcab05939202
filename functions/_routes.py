"""The app's route table for the catch-all's 405 answers, handed over by ``function_app`` when it registers
the blueprints, so that no function module imports the app it belongs to."""

from __future__ import annotations

from collections.abc import Iterable

import azure.functions as func


class RouteTable:
    """Which methods each registered route serves; read from the blueprints once, on first use."""

    def __init__(self) -> None:
        self._blueprints: tuple[func.Blueprint, ...] = ()
        self._table: list[tuple[tuple[str, ...], frozenset[str]]] | None = None

    def serve(self, blueprints: Iterable[func.Blueprint]) -> None:
        self._blueprints = tuple(blueprints)
        self._table = None

    def _routes(self) -> list[tuple[tuple[str, ...], frozenset[str]]]:
        if self._table is None:
            table = []
            # Built from the registered builders: get_functions() may run only once per app (the indexer's).
            for blueprint in self._blueprints:
                for builder in blueprint._function_builders:
                    trigger = builder.build(func.AuthLevel.FUNCTION).get_trigger()
                    route = getattr(trigger, "route", None)
                    if not route or route.startswith("{*"):
                        continue
                    methods = getattr(trigger, "methods", None) or ()
                    table.append(
                        (
                            tuple(route.strip("/").split("/")),
                            frozenset(str(getattr(m, "value", m)).upper() for m in methods),
                        )
                    )
            self._table = table
        return self._table

    def methods_for(self, path: str) -> list[str]:
        """The methods the app's routes serve at ``path`` (relative to /api), the catch-all aside."""
        segments = tuple(path.strip("/").split("/"))
        allowed: set[str] = set()
        for template, methods in self._routes():
            if len(template) == len(segments) and all(
                (t.startswith("{") and t.endswith("}") and s) or t.lower() == s.lower()
                for t, s in zip(template, segments, strict=True)
            ):
                allowed |= methods
        return sorted(allowed)


routes = RouteTable()
