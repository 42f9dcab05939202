"""Every route in openapi.yaml against random input, through the local host over real HTTP.

Random methods, paths, query strings, headers and bodies, with and without the function key and
a signed-in admin's session. Whatever arrives: never a 5xx, never a dropped connection, and every
error is the JSON shape {"error": {"code", "message"}}, except the documented browser answers
(HTML pages of the callbacks, redirects, 204). Derandomized and without an example database, so
a CI run is the same run every time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Stack
from tests.kit import CONTOSO_ADMIN, FUNCTION_KEY, consent
from tests.kit import browser_sign_in as sign_in

pytestmark = pytest.mark.e2e

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
ROUTES: list[tuple[str, list[str], list[str]]] = [
    (
        path,
        [m.upper() for m in item if m.upper() in METHODS],
        sorted(
            {p["name"] for op in item.values() if isinstance(op, dict) for p in op.get("parameters", [])}
            | {p["name"] for p in item.get("parameters", [])}
        ),
    )
    for path, item in SPEC["paths"].items()
]
# Answers the document describes as pages for a person in a browser, not JSON.
BROWSER_LEGS = {"/api/auth/callback", "/api/consent/callback"}

# Text that has broken handlers before: control characters, bidi overrides, brackets, huge numbers.
NASTY = st.sampled_from(
    [
        "",
        "\x00",
        "\x0b",
        "x\n",
        "\u202e",
        "\uff03",
        "http://[::1",
        "http://a]b/app",
        "https://app.example/after-login?q=J\u00fcrgen",
        "9" * 5000,
        "contoso.example",
        "automation",
        "true",
        "..",
        "%",
        "%zz",
    ]
)
TEXT = st.one_of(NASTY, st.text(max_size=40))
BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"[" * 20_000,
            b'{"a":' * 5_000,
            b'{"interviews_mailbox": ' + b"9" * 5000 + b"}",
            b'{"interviews_mailbox": "inter\\u0000views@contoso.example"}',
            b'{"sync_mailbox": "sync@contoso.example"}',
            b"{not json",
            b"state=x&code=y",
            b"\xff\xfe",
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
        max_leaves=8,
    ).map(lambda value: json.dumps(value).encode()),
)
CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "application/x-www-form-urlencoded", "text/plain", "application/merge-patch+json"]
)


def _fill(path: str, draw_text: Any) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: quote(draw_text, safe="") or "x", path)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    path, methods, params = draw(st.sampled_from(ROUTES))
    method = draw(st.sampled_from(methods) | st.sampled_from(METHODS))
    url_path = "/api" + _fill(path, draw(TEXT))
    if draw(st.booleans()):
        url_path += "/" + quote(draw(TEXT), safe="")
    names = draw(st.lists(st.sampled_from([*params, "code", "x"]), max_size=3))
    query = "&".join(f"{quote(n)}={quote(draw(TEXT), safe='')}" for n in names)
    return {
        "method": method,
        "url": url_path + (f"?{query}" if query else ""),
        "key": draw(st.sampled_from(["valid", "wrong", None])),
        "session": draw(st.sampled_from(["bearer", "cookie", "garbage", None])),
        "content_type": draw(CONTENT_TYPES),
        "body": draw(BODIES) if method not in ("GET", "HEAD") else b"",
        "extra": draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)) or "-",
    }


def _send(client: httpx.Client, credential: str, case: dict[str, Any]) -> httpx.Response:
    headers: dict[str, str | bytes] = {"X-Fuzz": case["extra"]}
    if case["key"]:
        headers["x-functions-key"] = FUNCTION_KEY if case["key"] == "valid" else "wrong-key"
    # Signing out would end the session the other examples use: send the session only elsewhere.
    session = case["session"] if "/auth/logout" not in case["url"] else None
    if session == "bearer":
        headers["Authorization"] = f"Bearer {credential}"
    elif session == "cookie":
        headers["Cookie"] = f"ics_session={credential}; ics_signin_flow=v1.k.x.y"
    elif session == "garbage":
        headers["Authorization"] = b"Bearer \xff\xfe"  # not ASCII: the host reads it as Latin-1
        headers["Cookie"] = 'ics_session="unterminated; ics_consent_flow=v1.a.b.c'
    if case["content_type"]:
        headers["Content-Type"] = case["content_type"]
    return client.request(case["method"], case["url"], headers=headers, content=case["body"])


def _examples(cases: list[dict[str, Any]]) -> Any:
    def apply(test: Any) -> Any:
        for case in reversed(cases):
            test = example(case)(test)
        return test

    return apply


def _check(case: dict[str, Any], response: httpx.Response) -> None:
    where = f"{case['method']} {case['url'][:120]}"
    assert response.status_code < 500, f"{where} answered {response.status_code}: {response.text[:300]}"
    if case["method"] == "HEAD" or response.status_code in (204, 302):
        return
    content_type = response.headers.get("content-type", "")
    path = case["url"].split("?", 1)[0]
    if content_type.startswith("text/html"):
        assert path in BROWSER_LEGS or path.startswith(tuple(f"{p}/" for p in BROWSER_LEGS)), where
        return
    if response.status_code >= 400:
        assert content_type.startswith("application/json"), f"{where}: {content_type}"
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], where
        assert isinstance(error["message"], str) and error["message"], where
    elif content_type.startswith("application/json"):
        response.json()


def _case(method: str, url: str, body: bytes = b"", content_type: str | None = None) -> dict[str, Any]:
    return {
        "method": method,
        "url": url,
        "key": "valid",
        "session": "bearer",
        "content_type": content_type,
        "body": body,
        "extra": "-",
    }


# Inputs that once answered 500 or dropped the connection: always part of the run.
KNOWN = [
    _case("GET", "/api/auth/login?return_to=http://%5B::1"),
    _case("GET", "/api/auth/login?return_to=http://a]b/app"),
    _case("GET", "/api/auth/login?return_to=http://app.example%EF%BC%83/x"),
    _case("GET", "/api/auth/login?return_to=https://app.example/after-login%3Fx%3D%0B"),
    _case("PUT", "/api/tenants/me/settings", b"[" * 100_000, "application/json"),
    _case("PUT", "/api/tenants/me/settings", b'{"sync_mailbox": ' + b"9" * 5000 + b"}", "application/json"),
    _case("GET", "/api/bookings/x%0A"),
    _case("GET", "/api/directory/users/x%0A/%00"),
    _case("GET", "/api/auth/logout"),
]


def test_no_route_answers_5xx_or_drops_the_connection_whatever_it_is_sent(e2e: Stack) -> None:
    consent(e2e)
    admin = sign_in(e2e, CONTOSO_ADMIN)
    credential = admin.service_cookie("ics_session")
    assert credential
    seen: set[int] = set()

    with httpx.Client(base_url=e2e.base_url, timeout=30, follow_redirects=False) as client:

        @settings(
            max_examples=250,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(requests())
        @_examples(KNOWN)
        def exercise(case: dict[str, Any]) -> None:
            try:
                response = _send(client, credential, case)
            except httpx.TransportError as err:  # a dropped connection or a reset
                raise AssertionError(f"{case['method']} {case['url'][:120]}: {err!r}") from err
            seen.add(response.status_code)
            _check(case, response)

        exercise()
    # The run reached handlers, not only the host's own 401/404/405 answers.
    assert {200, 400, 401} <= seen, seen
