"""ASP.NET Core route templates as the Functions host reads them, with its route precedence.

Templates: literal segments (matched case-insensitively), ``{name}``, ``{name?}``,
``{name=default}``, ``{*rest}`` / ``{**rest}`` catch-all (last segment only, may be
empty), inline constraints ``{id:int}``, ``{x:alpha:minlength(2)}`` and segments that
mix literals and parameters (``{name}.{ext}``). Candidates are tried in ASP.NET's
inbound precedence, computed per segment: literal 1, complex or constrained parameter
2, parameter 3, constrained catch-all 4, catch-all 5; so literals beat parameters beat
catch-alls and a longer literal prefix wins.
"""

from __future__ import annotations

import itertools
import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import unquote

from devtools.host.config import HostConfigurationError

T = TypeVar("T")

Constraint = Callable[[str], bool]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ALPHA = re.compile(r"^[A-Za-z]+$")
_GUID_FORMS = (
    re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    re.compile(r"^[0-9a-fA-F]{32}$"),
    re.compile(r"^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$"),
    re.compile(r"^\([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\)$"),
)


def _integer_in(bounds: tuple[int, int]) -> Constraint:
    def check(value: str) -> bool:
        return bool(_INTEGER.match(value)) and bounds[0] <= int(value) <= bounds[1]

    return check


def _is_float(value: str) -> bool:
    return bool(_FLOAT.match(value)) and math.isfinite(float(value))


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    if not any(form.match(value) for form in _GUID_FORMS):
        return False
    uuid.UUID(value.strip("{}()"))
    return True


def _int_args(name: str, args: Sequence[str], count: int) -> list[int]:
    if len(args) != count or not all(_INTEGER.match(a.strip()) for a in args):
        raise HostConfigurationError(f"Route constraint '{name}' takes {count} integer argument(s), got {list(args)}.")
    return [int(a) for a in args]


def _build_constraint(name: str, args: Sequence[str] | None, raw: str) -> Constraint:
    key = name.lower()
    simple: dict[str, Constraint] = {
        "int": _integer_in(_INT32),
        "long": _integer_in(_INT64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "alpha": lambda v: bool(_ALPHA.match(v)),
        "guid": _is_guid,
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_float,
        "datetime": _is_datetime,
        "required": lambda v: v != "",
    }
    if key in simple:
        if args:
            raise HostConfigurationError(f"Route constraint '{name}' takes no arguments: {raw}")
        return simple[key]
    if args is None:
        raise HostConfigurationError(f"Unknown route constraint '{name}' in {raw}")
    if key == "regex":
        # ASP.NET's regex constraint is case-insensitive and not anchored implicitly.
        pattern = re.compile(",".join(args), re.IGNORECASE)
        return lambda v: bool(pattern.search(v))
    if key == "minlength":
        (n,) = _int_args(name, args, 1)
        return lambda v: len(v) >= n
    if key == "maxlength":
        (n,) = _int_args(name, args, 1)
        return lambda v: len(v) <= n
    if key == "length":
        # length(n) is an exact length, length(min,max) a range.
        bounds = _int_args(name, args, 1 if len(args) == 1 else 2)
        low, high = bounds[0], bounds[-1]
        return lambda v: low <= len(v) <= high
    if key in ("min", "max", "range"):
        limits = _int_args(name, args, 2 if key == "range" else 1)
        low = limits[0] if key in ("min", "range") else _INT64[0]
        high = limits[-1] if key in ("max", "range") else _INT64[1]
        return lambda v: bool(_INTEGER.match(v)) and low <= int(v) <= high
    raise HostConfigurationError(f"Unknown route constraint '{name}' in {raw}")


def _split_outside(text: str, sep: str, brackets: str = "()") -> list[str]:
    """``text`` split at each ``sep`` that stands outside the pair of ``brackets``."""
    opening, closing = brackets
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
        if char == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


@dataclass(frozen=True)
class _Parameter:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[Constraint, ...] = ()

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


@dataclass(frozen=True)
class _Segment:
    parts: tuple[str | _Parameter, ...]
    pattern: re.Pattern[str] | None = None  # only for segments mixing literals and parameters

    @property
    def literal(self) -> str | None:
        only = self.parts[0]
        return only if len(self.parts) == 1 and isinstance(only, str) else None

    @property
    def parameter(self) -> _Parameter | None:
        only = self.parts[0]
        return only if len(self.parts) == 1 and isinstance(only, _Parameter) else None

    def precedence_digit(self) -> int:
        parameter = self.parameter
        if len(self.parts) > 1:
            return 2
        if parameter is None:
            return 1
        digit = 5 if parameter.catch_all else 3
        return digit - 1 if parameter.constraints else digit


def _parse_parameter(token: str, template: str) -> _Parameter:
    body = token
    catch_all = False
    if body.startswith("*"):
        catch_all = True
        body = body[2:] if body.startswith("**") else body[1:]
    default: str | None = None
    pieces = _split_outside(body, "=")
    if len(pieces) > 1:
        body, default = pieces[0], "=".join(pieces[1:])
    optional = body.endswith("?")
    if optional:
        body = body[:-1]
    pieces = _split_outside(body, ":")
    name = pieces[0].strip()
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise HostConfigurationError(f"Invalid route parameter name '{name}' in route '{template}'.")
    constraints: list[Constraint] = []
    for raw in pieces[1:]:
        match = re.match(r"^([A-Za-z]+)(?:\((.*)\))?$", raw, re.DOTALL)
        if not match:
            raise HostConfigurationError(f"Invalid route constraint '{raw}' in route '{template}'.")
        args = _split_outside(match.group(2), ",") if match.group(2) is not None else None
        constraints.append(_build_constraint(match.group(1), args, template))
    if optional and default is not None:
        raise HostConfigurationError(f"Route parameter '{name}' cannot be both optional and have a default.")
    return _Parameter(
        name=name,
        optional=optional,
        catch_all=catch_all,
        default=default,
        constraints=tuple(constraints),
    )


def _tokenise_segment(text: str, template: str) -> list[str | _Parameter]:
    """Literals and parameters of one segment; ``{{`` and ``}}`` stand for literal braces, as in ASP.NET."""
    parts: list[str | _Parameter] = []
    literal = ""
    index = 0
    while index < len(text):
        char = text[index]
        if char in "{}" and text[index : index + 2] == char * 2:
            literal += char
            index += 2
            continue
        if char == "}":
            raise HostConfigurationError(f"Unbalanced braces in route '{template}'.")
        if char != "{":
            literal += char
            index += 1
            continue
        if literal:
            parts.append(literal)
            literal = ""
        token = ""
        index += 1
        while True:
            if index >= len(text):
                raise HostConfigurationError(f"Unbalanced braces in route '{template}'.")
            if text[index] in "{}" and text[index : index + 2] == text[index] * 2:
                token += text[index]
                index += 2
            elif text[index] == "}":
                index += 1
                break
            elif text[index] == "{":
                raise HostConfigurationError(f"Unbalanced braces in route '{template}'.")
            else:
                token += text[index]
                index += 1
        parts.append(_parse_parameter(token, template))
    if literal:
        parts.append(literal)
    return parts


def _parse_segment(text: str, template: str) -> _Segment:
    parts = _tokenise_segment(text, template)
    if not parts:
        raise HostConfigurationError(f"Empty segment in route '{template}'.")
    if len(parts) == 1:
        return _Segment(parts=tuple(parts))
    if any(isinstance(a, _Parameter) and isinstance(b, _Parameter) for a, b in itertools.pairwise(parts)):
        raise HostConfigurationError(f"Route '{template}': two parameters need a literal between them.")
    regex = ""
    for part in parts:
        if isinstance(part, str):
            regex += re.escape(part)
        elif part.optional or part.catch_all:
            raise HostConfigurationError(
                f"Route '{template}': optional and catch-all parameters must fill a whole segment."
            )
        else:
            # Greedy groups reproduce ASP.NET's right-to-left matching of complex segments.
            regex += f"(?P<{part.name}>.+)"
    return _Segment(parts=tuple(parts), pattern=re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL))


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template, prefix included."""

    text: str
    segments: tuple[_Segment, ...]

    @classmethod
    def parse(cls, route: str, *, prefix: str = "") -> RouteTemplate:
        route = route.strip()
        route = route.removeprefix("~/")
        full = "/".join(p for p in (prefix.strip("/"), route.strip("/")) if p)
        texts = _split_outside(full, "/", "{}") if full else []
        segments = tuple(_parse_segment(t, full) for t in texts)
        names: list[str] = []
        for index, segment in enumerate(segments):
            for part in segment.parts:
                if isinstance(part, _Parameter):
                    names.append(part.name.lower())
                    if part.catch_all and index != len(segments) - 1:
                        raise HostConfigurationError(f"Route '{full}': a catch-all must be the last segment.")
        if len(names) != len(set(names)):
            raise HostConfigurationError(f"Route '{full}' uses a parameter name twice.")
        for index, segment in enumerate(segments):
            parameter = segment.parameter
            if parameter is not None and parameter.optional:
                later = segments[index + 1 :]
                if not all(s.parameter is not None and (s.parameter.optional or s.parameter.catch_all) for s in later):
                    raise HostConfigurationError(f"Route '{full}': an optional parameter must be at the end.")
        return cls(text=full, segments=segments)

    @property
    def is_catch_all(self) -> bool:
        """Whether the last segment is a catch-all parameter (``{*rest}``)."""
        last = self.segments[-1].parameter if self.segments else None
        return last is not None and last.catch_all

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(s.precedence_digit() for s in self.segments)

    def match(self, path_segments: Sequence[str]) -> dict[str, str] | None:
        """Route values when the (still percent-encoded) path segments match, else None."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            parameter = segment.parameter
            if parameter is not None and parameter.catch_all:
                rest = "/".join(_decode(s) for s in path_segments[index:])
                if rest:
                    if not parameter.accepts(rest):
                        return None
                    values[parameter.name] = rest
                elif parameter.default is not None:
                    values[parameter.name] = parameter.default
                return values
            if index >= len(path_segments):
                if parameter is not None and (parameter.optional or parameter.default is not None):
                    if parameter.default is not None:
                        values[parameter.name] = parameter.default
                    continue
                return None
            text = _decode(path_segments[index])
            literal = segment.literal
            if literal is not None:
                if text.casefold() != literal.casefold():
                    return None
            elif parameter is not None:
                if text == "" or not parameter.accepts(text):
                    return None
                values[parameter.name] = text
            else:
                assert segment.pattern is not None
                found = segment.pattern.match(text)
                if not found:
                    return None
                for part in segment.parts:
                    if isinstance(part, _Parameter):
                        value = found.group(part.name)
                        if not part.accepts(value):
                            return None
                        values[part.name] = value
        if len(path_segments) > len(self.segments):
            return None
        return values


def _decode(segment: str) -> str:
    # Like ASP.NET Core, keep an encoded slash encoded so it cannot split a route value.
    return unquote(re.sub("%2[Ff]", "%252F", segment))


def split_path(raw_path: str) -> list[str]:
    """Path segments, still percent-encoded; a trailing slash is ignored as ASP.NET does."""
    trimmed = raw_path.strip("/")
    return trimmed.split("/") if trimmed else []


@dataclass(frozen=True)
class Route(Generic[T]):
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    target: T
    order: int

    def allows(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    route: Route[T]
    values: dict[str, str]


@dataclass
class RouteTable(Generic[T]):
    """Routes sorted by precedence; ``resolve`` returns the match, or what went wrong."""

    routes: list[Route[T]] = field(default_factory=list)

    @classmethod
    def build(cls, entries: Iterable[tuple[RouteTemplate, Iterable[str] | None, T]]) -> RouteTable[T]:
        routes = [
            Route(
                template,
                frozenset(m.upper() for m in methods) if methods else None,
                target,
                order,
            )
            for order, (template, methods, target) in enumerate(entries)
        ]
        routes.sort(key=lambda r: (r.template.precedence, r.template.text.lower(), r.order))
        return cls(routes)

    def resolve(self, method: str, path_segments: Sequence[str]) -> RouteMatch[T] | frozenset[str] | None:
        """The first route matching path and method; else the methods the path allows (405); else None (404).

        A catch-all route (``{*path}``) does not hide a wrong method: once a more specific route has
        matched the path with other methods, the answer is 405 with those methods, not the catch-all.
        This is the local host's choice, so that a wrong method is told apart from an unknown path;
        the deployed Functions host does its own routing and is not changed by it (the documentation
        we follow does not say what it answers there).
        """
        allowed: set[str] = set()
        for route in self.routes:
            values = route.template.match(path_segments)
            if values is None:
                continue
            if route.allows(method):
                if allowed and route.template.is_catch_all:
                    break
                return RouteMatch(route, values)
            allowed |= route.methods or set()
        return frozenset(allowed) if allowed else None
