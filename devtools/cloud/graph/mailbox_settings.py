"""Mailbox settings writes and single-setting reads: PATCH .../mailboxSettings, GET .../mailboxSettings/{setting}.

Facts, from microsoft-graph-docs-contrib api-reference/v1.0/api/user-update-mailboxsettings.md and
user-get-mailboxsettings.md:

- Paths: ``PATCH /me/mailboxSettings``, ``PATCH /users/{id|userPrincipalName}/mailboxSettings``;
  ``GET .../mailboxSettings/{name}`` for automaticRepliesSetting, dateFormat,
  delegateMeetingMessageDeliveryOptions, language, timeFormat, timeZone, workingHours, userPurpose.
- Permissions: PATCH needs ``MailboxSettings.ReadWrite`` (delegated and application); GET
  ``MailboxSettings.Read`` or ``MailboxSettings.ReadWrite``.
- Time zone: "specify it in the Windows or ... (IANA) time zone ... format"; working hours may carry a
  ``customTimeZone`` (example 2).
- Body: "Existing properties that are not included in the request body will maintain their previous values".
- Response: "200 OK ... and the updated properties of a mailboxSettings object".
- Errors: bad startTime/endTime 400 ``RequestBodyRead``; start after end 400 ``ErrorInvalidTimeSettings``;
  unknown day 400 ``InvalidArguments``; bad zone 400 ``InvalidTimeZone``.
- Single settings: strings come back as ``{"@odata.context", "value"}``, objects as themselves.

Where the pages are silent: a read-only or unknown property in a PATCH is answered 400
``RequestBodyRead`` (OData's answer to a property the type does not declare); equal start and end
times are accepted (the page names only "greater than").
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from devtools.cloud.common import GraphError
from devtools.cloud.graph import odata
from devtools.cloud.graph.pipeline import GraphContext, access_denied, graph_route, json_response
from devtools.cloud.graph.timezones import (
    DAYS,
    CustomTimeZone,
    format_time_of_day,
    is_custom,
    parse_time_of_day,
    zone,
)
from devtools.cloud.state import User, World

WRITE = frozenset({"mailboxsettings.readwrite"})
WRITABLE = (
    "automaticRepliesSetting",
    "dateFormat",
    "delegateMeetingMessageDeliveryOptions",
    "language",
    "timeFormat",
    "timeZone",
    "workingHours",
)
READABLE = (*WRITABLE, "userPurpose", "archiveFolder")
_READABLE_BY_LOWER = {name.lower(): name for name in READABLE}
DELEGATE_OPTIONS = ("sendToDelegateAndInformationToPrincipal", "sendToDelegateAndPrincipal", "sendToDelegateOnly")


def _invalid_time_zone() -> GraphError:
    return GraphError(400, "InvalidTimeZone", "Time Zone settings provided are invalid.")


def _time_literal(value: Any) -> str:
    try:
        return format_time_of_day(parse_time_of_day(value if isinstance(value, str) else ""))
    except ValueError as err:
        raise GraphError(
            400, "RequestBodyRead", f"Cannot convert the literal '{value}' to the expected type 'Edm.TimeOfDay'."
        ) from err


def _offset(body: Any, *, daylight: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid_time_zone()
    result: dict[str, Any] = {}
    if daylight:
        result["daylightBias"] = body.get("daylightBias", 0)
    result["time"] = _time_literal(body.get("time") or "00:00:00")
    result["dayOccurrence"] = body.get("dayOccurrence", 0)
    result["dayOfWeek"] = str(body.get("dayOfWeek") or "sunday").lower()
    result["month"] = body.get("month", 0)
    result["year"] = body.get("year", 0)
    return result


def normalize_time_zone_base(body: Any) -> dict[str, Any]:
    """A working hours ``timeZone`` as Graph stores it: ``{"name"}`` or a full ``customTimeZone``."""
    if not isinstance(body, dict):
        raise _invalid_time_zone()
    if is_custom(body):
        custom: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.customTimeZone",
            "bias": body.get("bias", 0),
            "name": body.get("name") or "Customized Time Zone",
        }
        if body.get("standardOffset") is not None:
            custom["standardOffset"] = _offset(body["standardOffset"], daylight=False)
        if body.get("daylightOffset") is not None:
            custom["daylightOffset"] = _offset(body["daylightOffset"], daylight=True)
        try:
            CustomTimeZone(custom)
        except ValueError as err:
            raise _invalid_time_zone() from err
        return custom
    name = body.get("name")
    if not isinstance(name, str) or zone(name) is None:
        raise _invalid_time_zone()
    return {"name": name}


def _working_hours(current: Any, patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise GraphError(400, "RequestBodyRead", "The workingHours value must be an object.")
    merged = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if key.startswith("@"):
            continue
        if key == "daysOfWeek":
            if not isinstance(value, list):
                raise GraphError(400, "InvalidArguments", "Requested value was not found.")
            days: list[str] = []
            for day in value:
                if not isinstance(day, str) or day.lower() not in DAYS:
                    raise GraphError(400, "InvalidArguments", f"Requested value '{day}' was not found.")
                if day.lower() not in days:
                    days.append(day.lower())
            merged["daysOfWeek"] = days
        elif key in ("startTime", "endTime"):
            merged[key] = _time_literal(value)
        elif key == "timeZone":
            merged["timeZone"] = normalize_time_zone_base(value)
        else:
            raise _unknown_property(key, "workingHours")
    start, end = merged.get("startTime"), merged.get("endTime")
    if isinstance(start, str) and isinstance(end, str) and parse_time_of_day(start) > parse_time_of_day(end):
        raise GraphError(400, "ErrorInvalidTimeSettings", "Start Time should occur before End Time.")
    return merged


def _unknown_property(name: str, type_name: str = "mailboxSettings") -> GraphError:
    return GraphError(
        400,
        "RequestBodyRead",
        f"The property '{name}' does not exist on type 'microsoft.graph.{type_name}'. Make sure to only use "
        "property names that are defined by the type or mark the type as open type.",
    )


def apply_patch(current: dict[str, Any], patch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(new settings, updated properties)`` for a PATCH body; GraphError(400) for what Graph refuses."""
    settings = dict(current)
    updated: dict[str, Any] = {}
    for key, value in patch.items():
        if key.startswith("@"):
            continue  # annotations such as the @odata.context of the documented example
        name = key if key in WRITABLE else None
        if name is None:
            raise _unknown_property(key)
        if name == "workingHours":
            settings[name] = _working_hours(settings.get(name), value)
        elif name == "timeZone":
            if not isinstance(value, str) or zone(value) is None:
                raise _invalid_time_zone()
            settings[name] = value
        elif name in ("automaticRepliesSetting", "language"):
            if not isinstance(value, dict):
                raise GraphError(400, "RequestBodyRead", f"The {name} value must be an object.")
            merged = dict(settings.get(name) or {})
            merged.update({k: v for k, v in value.items() if not k.startswith("@")})
            settings[name] = merged
        elif name == "delegateMeetingMessageDeliveryOptions":
            if value not in DELEGATE_OPTIONS:
                raise GraphError(400, "RequestBodyRead", f"Requested value '{value}' was not found.")
            settings[name] = value
        else:  # dateFormat, timeFormat
            if not isinstance(value, str):
                raise GraphError(400, "RequestBodyRead", f"The {name} value must be a string.")
            settings[name] = value
        updated[name] = settings[name]
    return settings, updated


def update_mailbox_settings(world: World, user: User, patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a mailboxSettings PATCH to ``user`` (tests may call it directly); returns the updated properties."""
    with world.lock:
        settings, updated = apply_patch(user.mailbox_settings, patch)
        user.mailbox_settings = settings  # replaced whole: readers holding the old dict see a consistent one
    return updated


def _who(user: User, key: str | None) -> str:
    return f"users('{key}')" if key else f"users('{user.id}')"


async def patch_mailbox_settings(ctx: GraphContext) -> Response:
    key = ctx.request.path_params.get("user")
    granted = ctx.roles if ctx.caller.app_only else ctx.scopes
    if not granted & WRITE:
        raise access_denied()
    user = ctx.mailbox(key, "settings")
    updated = update_mailbox_settings(ctx.world, user, await ctx.json())
    body: dict[str, Any] = {"@odata.context": odata.context_url(ctx.request, f"{_who(user, key)}/mailboxSettings")}
    body.update(updated)
    return json_response(body)


async def get_mailbox_setting(ctx: GraphContext) -> Response:
    key = ctx.request.path_params.get("user")
    segment = ctx.request.path_params["setting"]
    name = _READABLE_BY_LOWER.get(segment.lower())
    if name is None:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
    user = ctx.mailbox(key, "settings")
    with ctx.world.lock:
        value = user.mailbox_settings.get(name)
    body: dict[str, Any] = {
        "@odata.context": odata.context_url(ctx.request, f"{_who(user, key)}/mailboxSettings/{name}")
    }
    if isinstance(value, dict):
        body.update(value)
    else:
        body["value"] = value
    return json_response(body)


def routes(world: World) -> list[BaseRoute]:
    result: list[BaseRoute] = []
    for base in ("/me", "/users/{user}"):
        result += [
            graph_route(world, base + "/mailboxSettings", patch_mailbox_settings, ["PATCH"]),
            graph_route(world, base + "/mailboxSettings/{setting}", get_mailbox_setting, ["GET"]),
        ]
    return result
