"""Each function with a JSON request body in openapi.yaml checks that body against the document (through
functions/_contract.py) before anything else reads it: a new endpoint cannot skip the check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from functions import _contract
from shared.errors import InvalidRequest
from tests.app_functions import app_functions
from tests.kit import ADMIN, FakeDeps, consented, error_of, request, sign_in

ROUTE_VALUES = {"booking_id": "a" * 26, "name": "invitation"}


def _url(route: str) -> str:
    for name, value in ROUTE_VALUES.items():
        route = route.replace("{" + name + "}", value)
    return f"http://localhost/api/{route}"


@pytest.mark.parametrize("operation_id", sorted(_contract.json_operations()))
def test_the_function_checks_its_body_against_its_operation_in_openapi_yaml(
    operation_id: str, deps: FakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    consented(deps)
    credential = sign_in(deps, ADMIN)
    checked: list[str] = []

    def spy(operation: str, body: Mapping[str, Any]) -> dict[str, Any]:
        checked.append(operation)
        raise InvalidRequest("checked", field="probe")

    monkeypatch.setattr(_contract, "check_body", spy)
    [function] = [fn for fn in app_functions() if fn.get_function_name() == operation_id]
    trigger = function.get_bindings()[0].get_dict_repr()
    method = str(getattr(trigger["methods"][0], "value", trigger["methods"][0]))
    response = function.get_user_function()(
        request(
            method,
            _url(trigger["route"]),
            body=b'{"probe": true}',
            headers={
                "Authorization": f"Bearer {credential}",
                "Content-Type": "application/json",
                "Idempotency-Key": "probe-key-0001",
                "If-Match": '"1"',
            },
            route_params=ROUTE_VALUES,
        )
    )
    assert checked == [operation_id]
    assert (response.status_code, error_of(response)["field"]) == (400, "probe")
