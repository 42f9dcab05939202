"""Candidate email's adapters: the Graph mail calls against httpx.MockTransport, and the email stores on Azurite."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.adapters.graph import GraphClient
from shared.adapters.graph_mail import EMAIL_KEY_PROPERTY
from shared.adapters.tables import TableStorage
from shared.config import Settings
from shared.errors import ConcurrencyConflict, GraphRequestFailed, NotFound, UpstreamUnavailable
from shared.models import AccessToken, EmailRecord, EmailStatus, EmailTemplate, MailAttachment, OutgoingMail, Pace

TOKEN = AccessToken(token="user-token", tenant_id="tenant-a", scopes=("Mail.Send", "Mail.Read"), user_id="u1")
MAIL = OutgoingMail(
    key="bbbbbbbbbbbbbbbbbbbbbbbbbb.confirmation.1",
    subject="Interview confirmed",
    html="<p>Hi</p>",
    to=(("sam@example.org", "Sam"),),
    attachments=(MailAttachment("interview.ics", "text/calendar", b"BEGIN:VCALENDAR"),),
)
SENT = {
    "id": "AAMkMessage1",
    "conversationId": "conv-1",
    "subject": "Interview confirmed",
    "from": {"emailAddress": {"address": "rita@contoso.example"}},
    "toRecipients": [{"emailAddress": {"address": "sam@example.org"}}],
    "sentDateTime": "2026-12-01T10:00:00Z",
    "receivedDateTime": "2026-12-01T10:00:00Z",
    "bodyPreview": "Hi",
    "singleValueExtendedProperties": [{"id": EMAIL_KEY_PROPERTY, "value": MAIL.key}],
}


def client(handler: Callable[[httpx.Request], httpx.Response], waits: list[float] | None = None) -> GraphClient:
    return GraphClient(
        Settings(graph_base_url="https://graph.example/v1.0"),
        transport=httpx.MockTransport(handler),
        sleep=(waits.append if waits is not None else lambda _s: None),
        jitter=lambda: 0.0,
    )


def test_send_mail_posts_the_message_with_its_key_and_attachment_saved_to_sent_items() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    client(handler).send_mail(TOKEN, MAIL)
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/v1.0/me/sendMail")
    body = json.loads(request.content)
    assert body["saveToSentItems"] is True
    message = body["message"]
    assert message["singleValueExtendedProperties"] == [{"id": EMAIL_KEY_PROPERTY, "value": MAIL.key}]
    assert message["body"] == {"contentType": "HTML", "content": "<p>Hi</p>"}
    assert message["toRecipients"] == [{"emailAddress": {"address": "sam@example.org", "name": "Sam"}}]
    [attachment] = message["attachments"]
    assert base64.b64decode(attachment["contentBytes"]) == b"BEGIN:VCALENDAR"


@pytest.mark.parametrize("status", [500, 503, 504])
def test_send_mail_is_never_retried_blindly(status: int) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json={"error": {"code": "x", "message": "y"}}, headers={"Retry-After": "1"})

    with pytest.raises(GraphRequestFailed):
        client(handler).send_mail(TOKEN, MAIL)
    assert len(calls) == 1


def test_a_timed_out_send_is_not_retried_either() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamUnavailable):
        client(handler).send_mail(TOKEN, MAIL)
    assert len(calls) == 1


def test_a_throttled_send_says_how_long_to_wait() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, json={"error": {"code": "TooManyRequests", "message": "slow down"}}, headers={"Retry-After": "17"}
        )

    with pytest.raises(GraphRequestFailed) as refused:
        client(handler).send_mail(TOKEN, MAIL)
    assert (refused.value.status, refused.value.retry_after) == (429, 17.0)


def test_find_sent_filters_sent_items_by_the_key_then_the_outbox() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        found = [SENT] if "outbox" in request.url.path else []
        return httpx.Response(200, json={"value": found})

    item = client(handler).find_sent(TOKEN, MAIL.key)
    assert [r.url.path for r in seen] == [
        "/v1.0/me/mailFolders/sentitems/messages",
        "/v1.0/me/mailFolders/outbox/messages",
    ]
    assert seen[0].url.params["$filter"] == (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{EMAIL_KEY_PROPERTY}' and ep/value eq '{MAIL.key}')"
    )
    assert item is not None and (item.conversation_id, item.key, item.sender) == (
        "conv-1",
        MAIL.key,
        "rita@contoso.example",
    )


def test_conversation_reads_the_inbox_by_conversation_id_without_orderby_and_follows_pages() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "$skiptoken" in str(request.url):
            return httpx.Response(200, json={"value": [{**SENT, "id": "m3"}]})
        return httpx.Response(
            200,
            json={
                "value": [{**SENT, "id": "m2"}],
                "@odata.nextLink": "https://graph.example/v1.0/me/mailFolders/inbox/messages?$skiptoken=abc",
            },
        )

    items = client(handler).conversation(TOKEN, "conv-1")
    assert [i.message_id for i in items] == ["m2", "m3"]
    assert seen[0].url.params["$filter"] == "conversationId eq 'conv-1'"
    assert "$orderby" not in seen[0].url.params


# ---- stores on Azurite ------------------------------------------------------------------------------
def record(**changes: object) -> EmailRecord:
    base = EmailRecord(
        tenant_id="tenant-a",
        key="bbbbbbbbbbbbbbbbbbbbbbbbbb.confirmation.1",
        booking_id="b" * 26,
        template="confirmation",
        revision="1",
        sender_id="u1",
        to="sam@example.org",
        not_before=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_ledger_keeps_one_row_per_key_and_indexes_only_what_is_unsent(storage: TableStorage) -> None:
    ledger = storage.emails
    created = ledger.create_email(record())
    with pytest.raises(ConcurrencyConflict):
        ledger.create_email(record())
    other = ledger.create_email(record(key="c" * 26 + ".confirmation.1", booking_id="c" * 26))
    assert {r.key for r in ledger.list_unsent(limit=10)} == {created.key, other.key}
    claimed = ledger.update_email(replace(created, status=EmailStatus.SENDING, maybe_sent=True))
    with pytest.raises(ConcurrencyConflict):
        ledger.update_email(replace(created, status=EmailStatus.SENDING))  # a stale claim loses
    sent = ledger.update_email(replace(claimed, status=EmailStatus.SENT, maybe_sent=False))
    assert {r.key for r in ledger.list_unsent(limit=10)} == {other.key}
    assert ledger.get_email("tenant-a", sent.key).status is EmailStatus.SENT
    assert [r.key for r in ledger.list_booking_emails("tenant-a", "b" * 26)] == [sent.key]


def test_templates_are_saved_whole_and_read_back(storage: TableStorage) -> None:
    with pytest.raises(NotFound):
        storage.email_templates.get_template("tenant-a", "reminder")
    saved = storage.email_templates.save_template(
        EmailTemplate("tenant-a", "reminder", "Hi", "<p>x</p>", datetime(2026, 3, 2, tzinfo=UTC), "admin1")
    )
    again = storage.email_templates.save_template(replace(saved, subject="Hello"))
    assert storage.email_templates.get_template("tenant-a", "reminder") == again


def test_the_pace_row_is_written_under_its_etag(storage: TableStorage) -> None:
    empty = storage.email_pacing.get_pace("tenant-a", "u1")
    assert empty == Pace("tenant-a", "u1")
    now = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
    saved = storage.email_pacing.save_pace(
        replace(empty, recent=(now,), hourly=((now.replace(minute=0, second=0), 1),))
    )
    read = storage.email_pacing.get_pace("tenant-a", "u1")
    assert (read.recent, read.hourly) == (saved.recent, saved.hourly)
    storage.email_pacing.save_pace(replace(read, recent=(now, now + timedelta(seconds=1))))
    with pytest.raises(ConcurrencyConflict):
        storage.email_pacing.save_pace(replace(read, recent=()))  # another instance wrote since
    with pytest.raises(ConcurrencyConflict):
        storage.email_pacing.save_pace(replace(empty, recent=()))  # two first writers: one wins
