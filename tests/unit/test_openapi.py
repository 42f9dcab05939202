"""Every HTTP function is in openapi.yaml, and nothing in it is missing from the app."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.app_functions import app_functions

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def _normalise(route: str) -> str:
    # {*rest} and {name:int} and {name?} all become {name}
    return "/" + re.sub(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\??\}", r"{\1}", route.strip("/"))


def app_operations() -> set[tuple[str, str]]:
    operations = set()
    for fn in app_functions():
        trigger = fn.get_bindings()[0].get_dict_repr()
        if trigger.get("type") != "httpTrigger":
            continue
        path = _normalise(trigger["route"])
        methods = [str(getattr(m, "value", m)).lower() for m in trigger["methods"]]
        if "{*" in trigger["route"]:
            methods = ["get"]  # the catch-all answers every method the same way; documented once
        operations.update((path, m) for m in methods)
    return operations


def spec_operations() -> set[tuple[str, str]]:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return {(path, method) for path, item in spec["paths"].items() for method in item if method in METHODS}


def test_every_http_function_is_documented() -> None:
    missing = app_operations() - spec_operations()
    assert not missing, f"in the app but not in openapi.yaml: {sorted(missing)}"


def test_nothing_documented_is_missing_from_the_app() -> None:
    extra = spec_operations() - app_operations()
    assert not extra, f"in openapi.yaml but not in the app: {sorted(extra)}"


def test_operation_ids_match_function_names() -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    names = {fn.get_function_name() for fn in app_functions()}
    ids = {op["operationId"] for item in spec["paths"].values() for m, op in item.items() if m in METHODS}
    assert ids - {"auth_callback_form_post"} <= names
