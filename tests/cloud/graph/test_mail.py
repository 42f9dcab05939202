"""Mail in the local Graph: sendMail, Sent Items and Inbox reads with filters and paging, delivery inside the tenant,
Send As, the failure switches, a candidate's reply, and Exchange's sending limits."""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.testclient import TestClient

from devtools.cloud import notify, persist
from devtools.cloud.graph import controls
from devtools.cloud.graph.testing import app_only, delegated
from devtools.cloud.seed import load_world
from devtools.cloud.state import World

MEGAN = "megan.bowen@contoso.example"
PATTI = "patti.fernandez@contoso.example"
ALEX = "alex.wilber@contoso.example"
INTERVIEWS = "interviews@contoso.example"
CANDIDATE = "sam@example.org"
KEY_ID = "String {6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b} Name icsMessageKey"
SEND = ["Mail.Send"]
READ = ["Mail.Read"]


def message(key: str | None = None, *, to: str = CANDIDATE, subject: str = "Your interview", **extra: Any) -> dict:
    body: dict[str, Any] = {
        "subject": subject,
        "body": {"contentType": "HTML", "content": "<p>See you <b>Tuesday</b></p>"},
        "toRecipients": [{"emailAddress": {"address": to, "name": "Sam Candidate"}}],
        **extra,
    }
    if key is not None:
        body["singleValueExtendedProperties"] = [{"id": KEY_ID, "value": key}]
    return {"message": body}


def by_key(key: str) -> dict[str, str]:
    return {"$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_ID}' and ep/value eq '{key}')"}


def send(client: TestClient, world: World, payload: dict, *, user: str = MEGAN, scopes: list[str] = SEND) -> Any:
    return client.post("/v1.0/me/sendMail", json=payload, headers=delegated(world, user, scopes))


def sent_items(client: TestClient, world: World, user: str = MEGAN, **params: str) -> Any:
    return client.get("/v1.0/me/mailFolders/sentitems/messages", params=params, headers=delegated(world, user, READ))


def test_send_mail_answers_202_with_no_body_and_saves_to_sent_items_with_the_extended_property(
    world: World, client: TestClient
) -> None:
    response = send(client, world, message("booking-1/confirmation/1"))
    assert response.status_code == 202
    assert response.content == b""

    found = sent_items(client, world, **by_key("booking-1/confirmation/1"))
    assert found.status_code == 200
    [item] = found.json()["value"]
    assert item["subject"] == "Your interview"
    assert item["from"]["emailAddress"]["address"] == MEGAN
    assert item["toRecipients"] == [{"emailAddress": {"name": "Sam Candidate", "address": CANDIDATE}}]
    assert item["bodyPreview"] == "See you Tuesday"
    assert item["conversationId"]
    assert "singleValueExtendedProperties" not in item
    # another key finds nothing; the property reads back with $expand
    assert sent_items(client, world, **by_key("booking-1/confirmation/2")).json()["value"] == []
    one = client.get(
        f"/v1.0/me/messages/{item['id']}",
        params={"$expand": f"singleValueExtendedProperties($filter=id eq '{KEY_ID}')"},
        headers=delegated(world, MEGAN, READ),
    )
    assert one.json()["singleValueExtendedProperties"] == [{"id": KEY_ID, "value": "booking-1/confirmation/1"}]


def test_save_to_sent_items_false_keeps_no_copy_but_still_delivers(world: World, client: TestClient) -> None:
    payload = {**message("k-1", to=ALEX), "saveToSentItems": False}
    assert send(client, world, payload).status_code == 202
    assert sent_items(client, world).json()["value"] == []
    inbox = client.get("/v1.0/me/mailFolders/inbox/messages", headers=delegated(world, ALEX, READ)).json()["value"]
    assert [m["subject"] for m in inbox] == ["Your interview"]


def test_a_recipient_in_the_tenant_gets_the_message_in_their_inbox_in_the_same_conversation(
    world: World, client: TestClient
) -> None:
    payload = message("k-2", to=ALEX, bccRecipients=[{"emailAddress": {"address": PATTI}}])
    assert send(client, world, payload).status_code == 202
    [sent] = sent_items(client, world).json()["value"]
    [received] = client.get("/v1.0/me/mailFolders/inbox/messages", headers=delegated(world, ALEX, READ)).json()["value"]
    assert received["conversationId"] == sent["conversationId"]
    assert received["internetMessageId"] == sent["internetMessageId"]
    assert received["bccRecipients"] == [] and received["isRead"] is False
    # extended properties stay on the sender's item
    assert (
        client.get(
            "/v1.0/me/mailFolders/inbox/messages", params=by_key("k-2"), headers=delegated(world, ALEX, READ)
        ).json()["value"]
        == []
    )
    patti = client.get("/v1.0/me/mailFolders/inbox/messages", headers=delegated(world, PATTI, READ)).json()["value"]
    assert len(patti) == 1
    # a candidate outside the tenant has no mailbox here: nothing else was stored
    assert sum(1 for m in world.messages.values()) == 3


def test_send_mail_needs_mail_send_and_reading_needs_mail_read(world: World, client: TestClient) -> None:
    refused = send(client, world, message(), scopes=["Mail.Read", "Calendars.ReadWrite"])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ErrorAccessDenied"
    assert send(client, world, message()).status_code == 202
    unread = client.get("/v1.0/me/mailFolders/sentitems/messages", headers=delegated(world, MEGAN, SEND))
    assert unread.status_code == 403
    assert unread.json()["error"]["code"] == "ErrorAccessDenied"
    # another user's mail is not readable with Mail.Read alone
    other = client.get(f"/v1.0/users/{ALEX}/mailFolders/inbox/messages", headers=delegated(world, MEGAN, READ))
    assert other.status_code == 403


def test_sending_as_someone_else_is_denied_without_send_as(world: World, client: TestClient) -> None:
    own_path = client.post(f"/v1.0/users/{MEGAN}/sendMail", json=message(), headers=delegated(world, MEGAN, SEND))
    assert own_path.status_code == 202
    for path, payload in (
        (f"/v1.0/users/{INTERVIEWS}/sendMail", message()),
        ("/v1.0/me/sendMail", message(**{"from": {"emailAddress": {"address": INTERVIEWS}}})),
    ):
        denied = client.post(path, json=payload, headers=delegated(world, MEGAN, ["Mail.Send", "Mail.Send.Shared"]))
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "ErrorSendAsDenied"
    # Full Access on the shared mailbox is not Send As
    controls.grant_send_as(world, INTERVIEWS, MEGAN)
    without_shared = client.post(
        f"/v1.0/users/{INTERVIEWS}/sendMail", json=message(), headers=delegated(world, MEGAN, SEND)
    )
    assert without_shared.json()["error"]["code"] == "ErrorSendAsDenied"
    allowed = client.post(
        f"/v1.0/users/{INTERVIEWS}/sendMail",
        json=message(),
        headers=delegated(world, MEGAN, ["Mail.Send", "Mail.Send.Shared"]),
    )
    assert allowed.status_code == 202
    assert len(controls.mailbox_messages(world, INTERVIEWS, "sentitems")) == 1


def test_an_app_with_the_mail_send_role_sends_from_any_mailbox_of_its_tenant(world: World, client: TestClient) -> None:
    headers = app_only(world, "contoso.example", ["Mail.Send"])
    assert client.post(f"/v1.0/users/{PATTI}/sendMail", json=message(), headers=headers).status_code == 202
    assert (
        client.post("/v1.0/users/kai.nakamura@fabrikam.example/sendMail", json=message(), headers=headers).json()[
            "error"
        ]["code"]
        == "ErrorInvalidUser"
    )
    no_role = app_only(world, "contoso.example", ["Calendars.ReadWrite"])
    assert client.post(f"/v1.0/users/{PATTI}/sendMail", json=message(), headers=no_role).status_code == 403


def test_throttle_fault_and_send_as_switches_stop_the_send(world: World, client: TestClient) -> None:
    controls.throttle(world, count=1, retry_after=7, mailbox=MEGAN)
    throttled = send(client, world, message("t-1"))
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    controls.deny_send_as(world, count=1, mailbox=MEGAN)
    denied = send(client, world, message("t-1"))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorSendAsDenied"
    controls.fail(world, count=1, status=503, mailbox=MEGAN)
    assert send(client, world, message("t-1")).status_code == 503
    assert sent_items(client, world, **by_key("t-1")).json()["value"] == []
    assert send(client, world, message("t-1")).status_code == 202
    assert len(sent_items(client, world, **by_key("t-1")).json()["value"]) == 1


def test_a_lost_answer_still_sends_and_the_key_lookup_finds_it(world: World, client: TestClient) -> None:
    controls.lose_answers(world, count=1, status=504)
    assert send(client, world, message("lost-1")).status_code == 504
    assert len(sent_items(client, world, **by_key("lost-1")).json()["value"]) == 1


def test_refused_messages_are_answered_400(world: World, client: TestClient) -> None:
    no_recipient = send(client, world, {"message": {"subject": "x", "body": {"contentType": "text", "content": "y"}}})
    assert no_recipient.status_code == 400
    assert no_recipient.json()["error"]["code"] == "ErrorInvalidRecipients"
    bad_address = send(client, world, message(to="not an address"))
    assert bad_address.json()["error"]["code"] == "ErrorInvalidRecipients"
    bad_property = message()
    bad_property["message"]["singleValueExtendedProperties"] = [{"id": "nonsense", "value": "1"}]
    assert send(client, world, bad_property).status_code == 400
    big = message()
    big["message"]["attachments"] = [
        {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "cv.pdf",
            "contentType": "application/pdf",
            "contentBytes": base64.b64encode(b"x" * (3 * 1024 * 1024 + 1)).decode(),
        }
    ]
    assert send(client, world, big).status_code == 413
    assert sent_items(client, world).json()["value"] == []


def test_an_ics_attachment_is_kept(world: World, client: TestClient) -> None:
    payload = message()
    payload["message"]["attachments"] = [
        {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "invite.ics",
            "contentType": "text/calendar",
            "contentBytes": base64.b64encode(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").decode(),
        }
    ]
    assert send(client, world, payload).status_code == 202
    [item] = sent_items(client, world).json()["value"]
    assert item["hasAttachments"] is True
    [kept] = controls.mailbox_messages(world, MEGAN, "sentitems")
    assert kept.attachments[0].content.startswith(b"BEGIN:VCALENDAR")


def test_select_top_and_paging_through_next_links(world: World, client: TestClient) -> None:
    for n in range(5):
        assert send(client, world, message(f"p-{n}", subject=f"Message {n}")).status_code == 202
    seen: list[str] = []
    url: str | None = "/v1.0/me/mailFolders/sentitems/messages?$top=2&$select=subject,conversationId"
    pages = 0
    while url:
        page = client.get(url, headers=delegated(world, MEGAN, READ)).json()
        pages += 1
        for item in page["value"]:
            assert set(item) - {"@odata.etag"} == {"id", "subject", "conversationId"}
            seen.append(item["subject"])
        url = page.get("@odata.nextLink")
    assert pages == 3
    assert sorted(seen) == [f"Message {n}" for n in range(5)]


def test_a_candidate_reply_lands_in_the_inbox_in_the_same_conversation(world: World, client: TestClient) -> None:
    assert send(client, world, message("r-1")).status_code == 202
    [sent] = controls.mailbox_messages(world, MEGAN, "sentitems")
    reply = controls.reply_to_message(world, sent.id, body="Thanks, Tuesday works for me.")
    assert reply.conversation_id == sent.conversation_id
    conversation = {"$filter": f"conversationId eq '{sent.conversation_id}'"}
    inbox = client.get(
        "/v1.0/me/mailFolders/inbox/messages", params=conversation, headers=delegated(world, MEGAN, READ)
    ).json()["value"]
    assert [(m["subject"], m["from"]["emailAddress"]["address"]) for m in inbox] == [("RE: Your interview", CANDIDATE)]
    assert inbox[0]["bodyPreview"] == "Thanks, Tuesday works for me."
    # Graph refuses a conversationId filter with $orderby: the caller sorts
    refused = client.get(
        "/v1.0/me/mailFolders/inbox/messages",
        params={**conversation, "$orderby": "receivedDateTime desc"},
        headers=delegated(world, MEGAN, READ),
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "InefficientFilter"


def test_reply_control_over_http(world: World, client: TestClient) -> None:
    assert send(client, world, message("r-2")).status_code == 202
    listed = client.get(f"/_control/graph/mailboxes/{MEGAN}/messages", params={"folder": "sentitems"}).json()
    [sent] = listed["value"]
    assert sent["singleValueExtendedProperties"] == [{"id": KEY_ID, "value": "r-2"}]
    answer = client.post(f"/_control/graph/messages/{sent['id']}/reply", json={"body": "See you then"})
    assert answer.status_code == 201
    assert answer.json()["conversationId"] == sent["conversationId"]
    assert answer.json()["folder"] == "inbox"


def test_sending_limits_hold_the_31st_message_of_a_minute_until_the_next_minute(
    world: World, client: TestClient
) -> None:
    controls.limit_mail(world)
    for n in range(31):
        assert send(client, world, message(f"m-{n}")).status_code == 202
    assert len(controls.mailbox_messages(world, MEGAN, "sentitems")) == 30
    assert len(controls.mailbox_messages(world, MEGAN, "outbox")) == 1
    assert controls.mail_counts(world, MEGAN) == {"submitted": 31, "held": 1, "refused": 0}
    notify.advance_clock(world, 61)
    assert len(sent_items(client, world, **by_key("m-30")).json()["value"]) == 1
    assert controls.mailbox_messages(world, MEGAN, "outbox") == []


def test_sending_limits_are_off_unless_switched_on(world: World, client: TestClient) -> None:
    for n in range(40):
        assert send(client, world, message(f"n-{n}")).status_code == 202
    assert controls.mail_counts(world, MEGAN)["held"] == 0


def test_the_daily_recipient_limit_refuses_with_429_and_retry_after(world: World, client: TestClient) -> None:
    controls.limit_mail(world, per_minute=None, recipients_per_day=2)
    assert send(client, world, message("d-1")).status_code == 202
    assert send(client, world, message("d-2")).status_code == 202
    refused = send(client, world, message("d-3"))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "ErrorSubmissionQuotaExceeded"
    assert 0 < int(refused.headers["Retry-After"]) <= 86_401
    notify.advance_clock(world, int(refused.headers["Retry-After"]))
    assert send(client, world, message("d-3")).status_code == 202


def test_mail_limit_control_over_http(world: World, client: TestClient) -> None:
    assert client.post("/_control/graph/switches/mail-limits", json={"perMinute": 1}).status_code == 204
    assert send(client, world, message("h-1")).status_code == 202
    assert send(client, world, message("h-2")).status_code == 202
    assert client.get(f"/_control/graph/mailboxes/{MEGAN}/mail-counts").json()["held"] == 1
    assert client.post("/_control/graph/switches/mail-limits", json={"off": True}).status_code == 204
    assert world.switches.mail_limits == {}


def test_messages_are_kept_in_the_saved_world(world: World, client: TestClient) -> None:
    assert send(client, world, message("s-1")).status_code == 202
    document = json.loads(json.dumps(persist.snapshot(world)))
    restored = load_world()
    persist.restore(restored, document)
    assert restored.messages == world.messages
    older = {k: v for k, v in document.items() if k != "messages"}
    persist.restore(restored, older)
    assert restored.messages == {}
