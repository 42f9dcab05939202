"""Request bodies are checked against openapi.yaml in one place (functions/_contract.py): every documented
JSON body belongs to the function of the same name and route, and a wrong shape is a 400 naming the field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from functions._contract import check_body, document, json_operations
from functions._http import status_for
from shared.errors import InvalidRequest
from tests.app_functions import app_functions
from tests.unit.test_openapi import _normalise

ROOT = Path(__file__).resolve().parents[2]
START, END = "2030-12-02T09:00:00-05:00", "2030-12-02T17:00:00-05:00"
AVAILABILITY = {"start": START, "end": END, "duration_minutes": 60, "interviewers": ["ann@contoso.example"]}
LOOPS = {"start": START, "end": END, "sessions": [{"duration_minutes": 60, "interviewers": ["ann@contoso.example"]}]}
BOOKING = {"start": START, "end": END, "interviewers": ["ann@contoso.example"]}


def _documented_route(operation_id: str) -> tuple[str, str]:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return path, method
    raise AssertionError(f"{operation_id} is not in openapi.yaml")


def test_every_documented_json_body_belongs_to_the_function_of_that_name_and_route() -> None:
    functions = {fn.get_function_name(): fn for fn in app_functions()}
    operations = json_operations()
    assert len(operations) >= 11
    for operation_id in operations:
        assert operation_id in functions, f"openapi.yaml documents a body for {operation_id}, which the app lacks"
        trigger = functions[operation_id].get_bindings()[0].get_dict_repr()
        methods = {str(getattr(m, "value", m)).lower() for m in trigger["methods"]}
        path, method = _documented_route(operation_id)
        assert (_normalise(trigger["route"]), method in methods) == (path, True), operation_id


def test_every_documented_request_body_is_json_but_microsoft_s_form_post() -> None:
    """The one other body is Microsoft's sign-in answer (response_mode=form_post): parsed form values are
    text whatever is sent, and none is required, so its schema has nothing to refuse."""
    bodies = {
        operation["operationId"]: set(operation["requestBody"]["content"])
        for item in document()["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "requestBody" in operation
    }
    others = {name for name, types in bodies.items() if types != {"application/json"}}
    assert others == {"auth_callback_form_post"}
    assert set(bodies) - others == set(json_operations())


def test_no_handler_reads_a_json_body_around_the_contract() -> None:
    """Every handler reads its body with ``read_body``, naming an operation with a documented JSON body
    (tests/functions/test_body_contract.py calls each such function and sees the check)."""
    for path in (ROOT / "functions").glob("*.py"):
        if path.name in {"_http.py", "_contract.py"}:
            continue
        source = path.read_text()
        assert "read_json" not in source, f"{path.name} reads a JSON body without checking it against openapi.yaml"
        for named in re.findall(r'read_body\(\s*req,\s*"([a-z_]+)"', source):
            assert named in json_operations(), f"{path.name}: {named} has no JSON request body in openapi.yaml"


def test_the_schemas_are_json_schema_2020_12() -> None:
    assert document()["openapi"].startswith("3.1")
    for schema in document()["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


REFUSED = [
    ("availability", {**AVAILABILITY, "duration_minutes": "60"}, "duration_minutes"),
    ("availability", {k: v for k, v in AVAILABILITY.items() if k != "duration_minutes"}, "duration_minutes"),
    ("availability", {**AVAILABILITY, "interval_minutes": 4}, "interval_minutes"),
    ("availability", {**AVAILABILITY, "max_slots": 1001}, "max_slots"),
    ("availability", {**AVAILABILITY, "freshness": "stale"}, "freshness"),
    ("availability", {**AVAILABILITY, "interviewers": [{"required": False}]}, "interviewers[0].email"),
    ("availability", {**AVAILABILITY, "pools": [{"name": "p", "members": []}]}, "pools[0].members"),
    ("availability", {k: v for k, v in AVAILABILITY.items() if k != "start"}, "start"),
    ("availability_loops", {**LOOPS, "sessions": [{}]}, "sessions[0].duration_minutes"),
    ("availability_loops", {**LOOPS, "sessions": [LOOPS["sessions"][0]] * 9}, "sessions"),
    ("availability_loops", {**LOOPS, "candidate_windows": [{"start": START}]}, "candidate_windows[0].end"),
    ("availability_loops", {**LOOPS, "same_day": "yes"}, "same_day"),
    ("booking_create", {**BOOKING, "online_meeting": 1}, "online_meeting"),
    ("booking_create", {**BOOKING, "colour": "blue"}, "colour"),
    ("booking_create", {**BOOKING, "candidate": {"name": "Sam"}}, "candidate.email"),
    ("booking_create", {**BOOKING, "interviewers": "ann@contoso.example"}, "interviewers"),
    ("booking_create", {"end": END}, "start"),
    ("booking_update", {"start": 5}, "start"),
    ("booking_update", {}, "body"),
    ("booking_cancel", {"message": ["no"]}, "message"),
    ("booking_email_send", {"template": 1}, "template"),
    ("booking_email_send", {"template": "invitation", "to": "x@y.example"}, "template"),
    ("email_template_preview", {}, "booking_id"),
    ("tenant_settings_put", {"interviews_mailbox": 7}, "interviews_mailbox"),
    ("graph_webhook", {"value": {}}, "value"),
    ("graph_lifecycle_webhook", {}, "value"),
]


@pytest.mark.parametrize(("operation", "body", "field"), REFUSED)
def test_a_wrong_type_or_a_missing_field_is_a_400_naming_the_field(
    operation: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_body(operation, body)
    assert (status_for(refused.value), refused.value.code, refused.value.details["field"]) == (
        400,
        "invalid_request",
        field,
    )
    assert f"`{field}`" in refused.value.message or operation in {"booking_update", "booking_email_send"}


ACCEPTED = [
    ("availability", AVAILABILITY),
    ("availability", {**AVAILABILITY, "interval_minutes": 15.0, "max_per_day": None, "freshness": None}),
    ("availability_loops", LOOPS),
    ("booking_create", {**BOOKING, "candidate": {"email": "sam@example.org", "name": None}, "subject": None}),
    ("booking_update", {"check_availability": False, "location": None}),
    ("booking_cancel", {}),
    ("booking_email_send", {"template": "gossip"}),  # an unknown name is the handler's 404, not a 400
    ("email_template_put", {"subject": "Hi", "html": "<p>Hi</p>", "name": "ignored"}),
    ("graph_webhook", {"value": [1, {"changeType": 5}]}),  # items that are not notifications are dropped
    ("tenant_settings_put", {"sync_mailbox": None}),
]


@pytest.mark.parametrize(("operation", "body"), ACCEPTED)
def test_bodies_the_parsers_accept_pass_the_schema(operation: str, body: dict[str, Any]) -> None:
    assert check_body(operation, body) == body


@pytest.mark.parametrize(
    ("operation", "body"), [(o, b) for o, b, _ in REFUSED] + ACCEPTED + [("availability", {**AVAILABILITY, "x": 1})]
)
def test_the_deciding_and_the_explaining_readings_of_the_schema_agree(operation: str, body: dict[str, Any]) -> None:
    from functions._contract import _checker, _validator

    assert _checker(operation).is_valid(body) == _validator(operation).is_valid(body)


def test_the_template_bodies_are_refused_as_invalid_templates() -> None:
    for operation, body in (
        ("email_template_put", {"subject": "Hi"}),
        ("email_template_preview", {"booking_id": "a" * 26, "html": 5}),
    ):
        with pytest.raises(InvalidRequest) as refused:
            check_body(operation, body)
        assert (refused.value.code, refused.value.details["field"]) == ("invalid_template", "html")


def test_an_operation_without_a_documented_json_body_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="booking_get"):
        check_body("booking_get", {})


def test_importing_the_app_reads_no_document_and_imports_no_validator() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, function_app; print(sorted(m for m in sys.modules"
            " if m.split('.')[0] in {'yaml', 'jsonschema', 'referencing'}))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
