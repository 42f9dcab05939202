"""GraphClient.mailbox_purposes against httpx.MockTransport: 20 addresses to a $batch, each answer read by
its status and code, and anything unanswered or failed left unknown (never a guess)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.adapters.graph import GraphClient
from shared.config import Settings
from shared.errors import GraphRequestFailed
from shared.models import AccessToken, MailboxPurpose

POLICY = {"error": {"code": "ErrorAccessDenied", "message": "Access to OData is disabled."}}
TOKEN = AccessToken(token="app-token", tenant_id="tenant-a", roles=("MailboxSettings.Read",))


def client(handler: Callable[[httpx.Request], httpx.Response]) -> GraphClient:
    return GraphClient(
        Settings(graph_base_url="https://graph.example/v1.0"),
        transport=httpx.MockTransport(handler),
        sleep=lambda _s: None,
        jitter=lambda: 0.0,
    )


def _answers(reply: Callable[[str], dict[str, Any]], batches: list[list[str]]) -> Callable[..., httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1.0/$batch" and request.method == "POST"
        requests = json.loads(request.content)["requests"]
        batches.append([r["url"] for r in requests])
        return httpx.Response(200, json={"responses": [{"id": r["id"], **reply(r["url"])} for r in requests]})

    return handler


def test_twenty_five_addresses_are_two_batches_and_each_answer_is_read() -> None:
    people = [f"person{i}@contoso.example" for i in range(25)]
    batches: list[list[str]] = []

    def reply(url: str) -> dict[str, Any]:
        assert url.endswith("/mailboxSettings/userPurpose") and url.startswith("/users/")
        return {"status": 200, "body": {"value": "room" if "person3@" in url else "user"}}

    found = client(_answers(reply, batches)).mailbox_purposes(TOKEN, [p.upper() for p in people])
    assert [len(b) for b in batches] == [20, 5]
    assert found["person3@contoso.example"] is MailboxPurpose.ROOM
    assert {found[p] for p in people if p != "person3@contoso.example"} == {MailboxPurpose.USER}


@pytest.mark.parametrize(
    ("answer", "purpose"),
    [
        ({"status": 200, "body": {"value": "shared"}}, MailboxPurpose.SHARED),
        ({"status": 200, "body": {"value": "equipment"}}, MailboxPurpose.EQUIPMENT),
        ({"status": 200, "body": {"value": "unknownFutureValue"}}, MailboxPurpose.OTHERS),
        ({"status": 200, "body": {}}, MailboxPurpose.UNKNOWN),
        ({"status": 404, "body": {"error": {"code": "ErrorInvalidUser", "message": "invalid"}}}, "not_in_tenant"),
        (
            {"status": 404, "body": {"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "on-premise"}}},
            MailboxPurpose.UNREACHABLE,
        ),
        (
            {"status": 403, "body": POLICY},
            MailboxPurpose.UNREACHABLE,
        ),
        ({"status": 403, "body": {"error": {"code": "ErrorAccessDenied", "message": "denied"}}}, "unknown"),
        ({"status": 429, "headers": {"Retry-After": "3"}, "body": {}}, MailboxPurpose.UNKNOWN),
        ({"status": 503, "body": {}}, MailboxPurpose.UNKNOWN),
    ],
)
def test_each_batched_answer_maps_to_a_purpose_or_to_unknown(answer: dict[str, Any], purpose: str) -> None:
    found = client(_answers(lambda _url: answer, [])).mailbox_purposes(TOKEN, ["a@contoso.example"])
    assert found == {"a@contoso.example": MailboxPurpose(purpose)}


def test_a_failed_or_partial_batch_leaves_everyone_unanswered_unknown() -> None:
    failed = client(lambda _r: httpx.Response(500, json={"error": {"code": "InternalServerError"}}))
    assert failed.mailbox_purposes(TOKEN, ["a@x.example", "b@x.example"]) == {
        "a@x.example": MailboxPurpose.UNKNOWN,
        "b@x.example": MailboxPurpose.UNKNOWN,
    }
    partial = client(
        lambda _r: httpx.Response(200, json={"responses": [{"id": "1", "status": 200, "body": {"value": "user"}}]})
    )
    assert partial.mailbox_purposes(TOKEN, ["a@x.example", "b@x.example"]) == {
        "a@x.example": MailboxPurpose.USER,
        "b@x.example": MailboxPurpose.UNKNOWN,
    }


def test_a_refused_token_is_raised_so_it_can_be_renewed() -> None:
    refused = client(lambda _r: httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}}))
    with pytest.raises(GraphRequestFailed) as err:
        refused.mailbox_purposes(TOKEN, ["a@x.example"])
    assert err.value.reason == "unauthorized"
