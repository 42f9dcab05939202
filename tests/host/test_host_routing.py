"""ASP.NET route templates and precedence as the local host applies them."""

from __future__ import annotations

import pytest

from devtools.host.config import HostConfigurationError
from devtools.host.routing import RouteMatch, RouteTable, RouteTemplate, split_path


def match(route: str, path: str) -> dict[str, str] | None:
    return RouteTemplate.parse(route, prefix="api").match(split_path(path))


def test_literal_segments_match_case_insensitively_and_ignore_a_trailing_slash() -> None:
    assert match("Tenants/Settings", "/api/tenants/settings/") == {}
    assert match("tenants/settings", "/api/tenants") is None
    assert match("tenants", "/api/tenants/extra") is None


def test_parameters_are_percent_decoded_but_an_encoded_slash_stays_encoded() -> None:
    assert match("users/{id}", "/api/users/a%20b") == {"id": "a b"}
    assert match("users/{id}", "/api/users/a%2Fb") == {"id": "a%2Fb"}


def test_optional_parameter_may_be_left_out() -> None:
    assert match("items/{id?}", "/api/items") == {}
    assert match("items/{id?}", "/api/items/7") == {"id": "7"}


def test_default_value_fills_a_missing_segment() -> None:
    assert match("pages/{page=1}", "/api/pages") == {"page": "1"}


def test_catch_all_takes_the_rest_including_slashes_or_nothing() -> None:
    assert match("files/{*rest}", "/api/files/a/b%20c/d") == {"rest": "a/b c/d"}
    assert match("files/{**rest}", "/api/files") == {}


@pytest.mark.parametrize(
    ("route", "good", "bad"),
    [
        ("n/{v:int}", "-42", "4.2"),
        ("n/{v:int}", "2147483647", "2147483648"),
        ("n/{v:long}", "2147483648", "x"),
        ("n/{v:alpha}", "abcXYZ", "abc1"),
        (
            "n/{v:guid}",
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "3f2504e0-4f89-11d3-9a0c",
        ),
        ("n/{v:guid}", "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", "not-a-guid"),
        ("n/{v:bool}", "True", "yes"),
        ("n/{v:double}", "1.5e3", "1.5.3"),
        ("n/{v:minlength(3)}", "abc", "ab"),
        ("n/{v:maxlength(2)}", "ab", "abc"),
        ("n/{v:length(2,3)}", "abc", "abcd"),
        ("n/{v:range(1,10)}", "10", "11"),
        ("n/{v:int:min(5)}", "5", "4"),
        ("n/{v:regex(^[a-z]{{2}}\\d$)}", "ab1", "abc"),
    ],
)
def test_inline_constraints_accept_and_refuse_like_aspnet(route: str, good: str, bad: str) -> None:
    assert match(route, f"/api/n/{good}") is not None
    assert match(route, f"/api/n/{bad}") is None


def test_complex_segment_splits_on_its_literals_from_the_right() -> None:
    assert match("files/{name}.{ext}", "/api/files/archive.tar.gz") == {
        "name": "archive.tar",
        "ext": "gz",
    }


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("a/{x:nosuch}", "Unknown route constraint 'nosuch'"),
        ("a/{*rest}/b", "catch-all must be the last segment"),
        ("a/{x?}/b", "optional parameter must be at the end"),
        ("a/{x}/{X}", "parameter name twice"),
        ("a/{x", "Unbalanced braces"),
        ("a/{x:int(3)}", "takes no arguments"),
    ],
)
def test_invalid_templates_fail_at_start(route: str, message: str) -> None:
    with pytest.raises(HostConfigurationError, match=message):
        RouteTemplate.parse(route, prefix="api")


def table(*routes: tuple[str, list[str] | None]) -> RouteTable[str]:
    return RouteTable.build((RouteTemplate.parse(r, prefix="api"), m, r) for r, m in routes)


def resolved_route(t: RouteTable[str], method: str, path: str) -> str:
    found = t.resolve(method, split_path(path))
    assert isinstance(found, RouteMatch), found
    return found.route.target


def test_literals_beat_parameters_beat_catch_all_whatever_the_registration_order() -> None:
    t = table(
        ("{*path}", None),
        ("users/{id}", None),
        ("users/me", None),
        ("users/{id:int}", None),
    )
    assert resolved_route(t, "GET", "/api/users/me") == "users/me"
    assert resolved_route(t, "GET", "/api/users/12") == "users/{id:int}"
    assert resolved_route(t, "GET", "/api/users/ann") == "users/{id}"
    assert resolved_route(t, "GET", "/api/elsewhere/deep") == "{*path}"


def test_longer_literal_prefix_wins_between_catch_alls() -> None:
    t = table(("files/{*rest}", None), ("files/public/{*rest}", None))
    assert resolved_route(t, "GET", "/api/files/public/x") == "files/public/{*rest}"
    assert resolved_route(t, "GET", "/api/files/private/x") == "files/{*rest}"


def test_wrong_method_gives_the_allowed_methods_and_unknown_path_gives_none() -> None:
    t = table(("items/{id}", ["GET", "PUT"]))
    assert t.resolve("DELETE", split_path("/api/items/1")) == frozenset({"GET", "PUT"})
    assert t.resolve("GET", split_path("/api/other")) is None


def test_a_catch_all_does_not_hide_a_wrong_method_on_a_specific_route() -> None:
    t = table(("items/{id}", ["GET"]), ("{*path}", None))
    assert t.resolve("POST", split_path("/api/items/1")) == frozenset({"GET"})
    assert resolved_route(t, "POST", "/api/other/1") == "{*path}"
