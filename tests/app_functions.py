"""The app's functions, indexed the way the Functions worker does it.

``FunctionApp.get_functions()`` records names to reject duplicates and so fails
when called twice in one process; reset that record so tests can index freely.
"""

from __future__ import annotations

from typing import Any

import function_app


def app_functions() -> list[Any]:
    function_app.app.functions_bindings = {}
    return list(function_app.app.get_functions())
