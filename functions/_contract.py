"""Request bodies checked against openapi.yaml: the one place where a body's shape is checked.

Each operation's ``requestBody`` schema (JSON Schema 2020-12, as OpenAPI 3.1 writes it) refuses wrong
types, missing or unknown fields, values outside an enum and numbers or lists out of range; the first
refusal is an ``InvalidRequest`` naming the field, the way the parsers name it. The parsers in the
capabilities keep what a schema cannot say (end after start, a time zone that exists, a pool's need within
its size). The document is read on first use and kept for the worker's life, never at import.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions._http import MAX_JSON_BYTES, read_json
from shared import errors
from shared.text import clean_text

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.yaml"
logger = logging.getLogger(__name__)
_DOCUMENT = "urn:interview-calendar:openapi"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_EXAMPLES = {
    "email": "an email address, like alex.wilber@contoso.com",
    "date-time": "an ISO 8601 date and time with an offset, like 2026-12-07T09:00:00-05:00",
}
_NOUNS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "string": "text",
    "array": "a list",
    "object": "an object",
}


@functools.cache
def document() -> dict[str, Any]:
    """openapi.yaml, read once per worker."""
    import yaml  # imported on first use: cold start

    # libyaml's loader where the wheel has it: a tenth of the pure-Python loader's time on the first request.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded: dict[str, Any] = yaml.load(OPENAPI.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)
    return loaded


def json_operations() -> dict[str, str]:
    """Every operation with a JSON request body: operationId -> the JSON pointer of its body's schema."""
    found: dict[str, str] = {}
    for path, item in document()["paths"].items():
        for method in _METHODS:
            operation = item.get(method)
            body = (operation or {}).get("requestBody", {})
            if "application/json" in body.get("content", {}):
                escaped = path.replace("~", "~0").replace("/", "~1")
                found[operation["operationId"]] = (
                    f"/paths/{escaped}/{method}/requestBody/content/application~1json/schema"
                )
    return found


def _pointer(operation_id: str) -> str:
    pointer = json_operations().get(operation_id)
    if pointer is None:
        raise ValueError(f"openapi.yaml has no JSON request body for {operation_id!r}")
    return pointer


@functools.cache
def _validator(operation_id: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    pointer = _pointer(operation_id)
    registry: Registry[Any] = Registry().with_resource(_DOCUMENT, DRAFT202012.create_resource(document()))
    return Draft202012Validator({"$ref": f"{_DOCUMENT}#{pointer}"}, registry=registry)


@functools.cache
def _checker(operation_id: str) -> Any:
    from urllib.parse import quote

    import jsonschema_rs

    pointer = quote(_pointer(operation_id), safe="/~")  # a URI fragment: the braces of path templates escaped
    root = document()
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#{pointer}", "components": root["components"], "paths": root["paths"]}
    )


def check_body(operation_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` when it has the shape openapi.yaml gives the operation's request body. Raises InvalidRequest
    (or the subclass the schema names with ``x-error-code``) naming the first field refused.

    Two implementations of the same JSON Schema draft read the same schema: ``jsonschema-rs`` decides
    (microseconds for 200 interviewers, where ``jsonschema`` takes milliseconds on every query), and only a
    refused body is read again by ``jsonschema``, whose ``best_match`` names the field a person should fix."""
    if _checker(operation_id).is_valid(body):
        return dict(body)
    from jsonschema.exceptions import best_match

    first = best_match(_validator(operation_id).iter_errors(body))
    if first is None:
        logger.warning("The two schema readings disagree on a %s body: the body is taken", operation_id)
        return dict(body)
    raise _refusal(first)


def read_body(req: func.HttpRequest, operation_id: str, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object body, checked against the operation's schema in openapi.yaml."""
    return check_body(operation_id, read_json(req, max_bytes=max_bytes))


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _within(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _refusal(error: ValidationError) -> errors.InvalidRequest:
    """The refusal of ``error``; the schema that refused may name the error's code (``x-error-code``) and, for
    a body whose refusals all concern one field, that field (``x-error-field``)."""
    field, message = _describe(error)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    return _error_class(schema.get("x-error-code"))(message, field=schema.get("x-error-field", field))


def _error_class(code: str | None) -> type[errors.InvalidRequest]:
    if code is None:
        return errors.InvalidRequest
    pending: list[type[errors.InvalidRequest]] = [errors.InvalidRequest]
    while pending:
        cls = pending.pop()
        if cls.code == code:
            return cls
        pending.extend(cls.__subclasses__())
    raise ValueError(f"openapi.yaml names an unknown error code {code!r}")


def _describe(error: ValidationError) -> tuple[str, str]:
    """The field refused and the words that say why, in the parsers' style."""
    where = _path(error.absolute_path)
    field = where or "body"
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    keyword, limit, instance = str(error.validator), error.validator_value, error.instance
    limit = limit if isinstance(limit, list) else []
    instance = instance if isinstance(instance, dict) else {}
    if keyword == "required":
        missing = next(name for name in limit if name not in instance)
        field = _within(where, missing)
        return field, f"`{field}` is required."
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        known = schema.get("properties", {})
        extra = next(name for name in instance if name not in known)
        label = clean_text(extra, parameter="field name", max_length=64) or "?"
        return label, f"`{label}` is not a field of this request."
    if keyword in ("type", "enum"):
        return field, f"`{field}` must be {_expected(schema)}."
    return field, _limit_message(field, keyword, schema)


def _expected(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        choices = [f'"{value}"' for value in schema["enum"] if value is not None]
        return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"
    types = schema.get("type", [])
    names = [t for t in ([types] if isinstance(types, str) else types) if t != "null"]
    nouns = [_EXAMPLES.get(schema.get("format", ""), "text") if t == "string" else _NOUNS[t] for t in names]
    if names == ["array"] and schema.get("items", {}).get("format") == "email":
        return "a list of email addresses"
    if len(nouns) > 1:
        nouns = [noun.split(",")[0] for noun in nouns]
    return " or ".join(nouns) or "a valid value"


def _limit_message(field: str, keyword: str, schema: Mapping[str, Any]) -> str:
    if keyword in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"`{field}` must be between {low} and {high}."
        return f"`{field}` must be at least {low}." if high is None else f"`{field}` must be at most {high}."
    if keyword in ("minLength", "maxLength"):
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None and high is not None:
            return f"`{field}` must be {low} to {high} characters long."
        if high is None:
            return f"`{field}` must be at least {low} characters long."
        return _at_most(field, high, "character")
    if keyword == "minItems":
        low = schema["minItems"]
        return f"`{field}` must not be empty." if low == 1 else f"`{field}` must have at least {low} items."
    if keyword == "maxItems":
        return _at_most(field, schema["maxItems"], "item")
    if keyword == "minProperties":
        return "Send at least one field."
    if keyword == "pattern":
        return f"`{field}` is not in the form this field takes."
    return f"`{field}` is not a valid value here."


def _at_most(field: str, count: int, noun: str) -> str:
    return f"`{field}` may have at most {count} {noun}{'' if count == 1 else 's'}."
