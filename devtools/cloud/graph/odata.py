"""The slice of OData that Graph's directory and calendar endpoints use: $select, $filter, $top, paging tokens.

``$filter`` understands comparisons (``eq``, ``ne``) with strings, booleans and null, ``startswith``,
``and``/``or``/``not`` and parentheses; anything else is answered the way Graph answers a query it
cannot run (400 ``Request_UnsupportedQuery``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from devtools.cloud.common import GraphError

GRAPH_V1 = "https://graph.microsoft.com/v1.0"


def select_fields(request: Request) -> list[str] | None:
    raw = request.query_params.get("$select")
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def apply_select(body: dict[str, Any], fields: list[str] | None, *, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keep only the selected properties (case-insensitive, as OData), plus annotations and ``keep``."""
    if fields is None:
        return body
    wanted = {f.lower() for f in fields} | {k.lower() for k in keep}
    return {k: v for k, v in body.items() if k.startswith("@") or k.lower() in wanted}


def top(request: Request, *, default: int, maximum: int) -> int:
    raw = request.query_params.get("$top")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for $top query option found.") from err
    if value < 1:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for $top query option found.")
    return min(value, maximum)


def prefer_max_page_size(request: Request) -> int | None:
    for part in request.headers.get("prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, int(value.strip().strip('"')))
            except ValueError:
                return None
    return None


def encode_token(payload: dict[str, Any]) -> str:
    """An opaque, URL-safe paging or delta token."""
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeDecodeError) as err:
        raise GraphError(400, "BadRequest", "The $skiptoken or $deltatoken value is not valid.") from err
    if not isinstance(value, dict):
        raise GraphError(400, "BadRequest", "The $skiptoken or $deltatoken value is not valid.")
    return value


def link(request: Request, **replace: str | None) -> str:
    """The request's own URL with some query parameters replaced (None removes one)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in replace]
    params += [(k, v) for k, v in replace.items() if v is not None]
    base = str(request.url.replace(query=""))
    return base + ("?" + urlencode(params, safe="$(),'=:") if params else "")


def graph_url(request: Request) -> str:
    """This cloud's /v1.0 root, as the caller reached it."""
    return str(request.base_url).rstrip("/") + "/v1.0"


def context_url(request: Request, fragment: str) -> str:
    return f"{graph_url(request)}/$metadata#{fragment}"


# ---- $filter ---------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<word>[A-Za-z_][A-Za-z0-9_/.]*)|(?P<num>-?\d+))"
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _unsupported()
        kind = match.lastgroup or ""
        tokens.append(_Tok(kind, match.group(kind)))
        pos = match.end()
    return tokens


def _unsupported() -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")


Getter = Callable[[Any, str], Any]
Predicate = Callable[[Any], bool]


class _Parser:
    def __init__(self, tokens: list[_Tok], getter: Getter) -> None:
        self.tokens = tokens
        self.pos = 0
        self.get = getter

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, word: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (kind and tok.kind != kind) or (word and tok.text.lower() != word):
            raise _unsupported()
        self.pos += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text.lower() == word

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.is_word("or"):
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda item: a(item) or b(item))(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_unary()
        while self.is_word("and"):
            self.take()
            right = self.parse_unary()
            left = (lambda a, b: lambda item: a(item) and b(item))(left, right)
        return left

    def parse_unary(self) -> Predicate:
        if self.is_word("not"):
            self.take()
            inner = self.parse_unary()
            return lambda item: not inner(item)
        tok = self.peek()
        if tok is not None and tok.kind == "lp":
            self.take("lp")
            inner = self.parse_or()
            self.take("rp")
            return inner
        return self.parse_comparison()

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind == "str":
            return tok.text[1:-1].replace("''", "'")
        if tok.kind == "num":
            return int(tok.text)
        if tok.kind == "word" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        if tok.kind == "word" and tok.text.lower() == "null":
            return None
        raise _unsupported()

    def parse_comparison(self) -> Predicate:
        name = self.take("word").text
        if name.lower() in ("startswith", "endswith"):
            self.take("lp")
            prop = self.take("word").text
            self.take("comma")
            value = self.literal()
            self.take("rp")
            if not isinstance(value, str):
                raise _unsupported()
            needle = value.lower()
            if name.lower() == "startswith":
                return lambda item: str(self.get(item, prop) or "").lower().startswith(needle)
            return lambda item: str(self.get(item, prop) or "").lower().endswith(needle)
        op = self.take("word").text.lower()
        value = self.literal()

        def norm(v: Any) -> Any:
            return v.lower() if isinstance(v, str) else v

        if op == "eq":
            return lambda item: norm(self.get(item, name)) == norm(value)
        if op == "ne":
            return lambda item: norm(self.get(item, name)) != norm(value)
        raise _unsupported()


def compile_filter(text: str, getter: Getter) -> Predicate:
    """A predicate for ``text``; ``getter(item, property_name)`` reads a property of one item."""
    parser = _Parser(_tokenize(text), getter)
    predicate = parser.parse_or()
    if parser.peek() is not None:
        raise _unsupported()
    return predicate


def property_getter(rows: Mapping[str, Any] | None = None) -> Getter:
    """A getter over JSON dicts, matching property names case-insensitively."""

    def get(item: Any, name: str) -> Any:
        # "start/dateTime" walks into nested complex properties.
        for part in name.split("/"):
            if not isinstance(item, dict):
                return None
            item = next((value for key, value in item.items() if key.lower() == part.lower()), None)
        return item

    return get
