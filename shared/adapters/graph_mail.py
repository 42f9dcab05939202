"""Graph mail calls for candidate email, as a mixin of ``GraphClient`` (which supplies ``request``), all with the
recruiter's delegated token on their own mailbox (``/me``): ``Mail.Send`` to send, ``Mail.Read`` to read back.

- ``POST /me/sendMail`` (user-sendmail): JSON ``message`` with ``saveToSentItems: true``; Graph answers 202
  with no body and no message id. The message carries our key in a single-value extended property in the
  service's own namespace (``String {GUID} Name InterviewEmailKey``). The POST is never retried here (it has
  no transactionId): the caller looks the key up before trying again.
- Finding a sent message: ``GET /me/mailFolders/sentitems/messages`` filtered with the documented
  ``singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')``, then the Outbox (a message
  Exchange has accepted but not yet submitted waits there; how long a sent message takes to reach Sent Items is
  not documented).
- Replies: ``GET /me/mailFolders/inbox/messages?$filter=conversationId eq '...'``, with no ``$orderby`` (Graph
  refuses the two together with ``InefficientFilter``, as reported in public issues); the caller sorts.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from shared.adapters.graph_requests import GraphRequests, unreadable_answer
from shared.models import AccessToken, MailItem, OutgoingMail

# Our own namespace for mail: a GUID of this service alone (not the booking property's).
EMAIL_NAMESPACE = "{9d3e6c41-2b7a-4f18-a5c0-7e1d4b8f2a63}"
EMAIL_KEY_PROPERTY = f"String {EMAIL_NAMESPACE} Name InterviewEmailKey"
MESSAGE_SELECT = "id,conversationId,subject,from,toRecipients,sentDateTime,receivedDateTime,bodyPreview"
EXPAND = f"singleValueExtendedProperties($filter=id eq '{EMAIL_KEY_PROPERTY}')"
PAGE = "50"
MAX_PAGES = 10  # a conversation about one interview holds a handful of messages


def _quoted(value: str) -> str:
    return value.replace("'", "''")


def send_mail_body(mail: OutgoingMail) -> dict[str, Any]:
    message: dict[str, Any] = {
        "subject": mail.subject,
        "body": {"contentType": "HTML", "content": mail.html},
        "toRecipients": [{"emailAddress": {"address": a, **({"name": n} if n else {})}} for a, n in mail.to],
        "singleValueExtendedProperties": [{"id": EMAIL_KEY_PROPERTY, "value": mail.key}],
    }
    if mail.attachments:
        message["attachments"] = [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": a.name,
                "contentType": a.content_type,
                "contentBytes": base64.b64encode(a.content).decode("ascii"),
            }
            for a in mail.attachments
        ]
    return {"message": message, "saveToSentItems": True}


def _stamp(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.fromtimestamp(0, UTC)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _address(raw: Any) -> str:
    email = raw.get("emailAddress") if isinstance(raw, dict) else None
    address = email.get("address") if isinstance(email, dict) else None
    return str(address) if isinstance(address, str) else ""


def parse_message(raw: dict[str, Any], *, sent: bool) -> MailItem:
    try:
        key = None
        for prop in raw.get("singleValueExtendedProperties") or []:
            if isinstance(prop, dict) and str(prop.get("id", "")).lower() == EMAIL_KEY_PROPERTY.lower():
                key = str(prop.get("value") or "") or None
        return MailItem(
            message_id=str(raw["id"]),
            conversation_id=str(raw.get("conversationId") or ""),
            subject=str(raw.get("subject") or ""),
            sender=_address(raw.get("from")),
            to=tuple(a for a in (_address(r) for r in raw.get("toRecipients") or []) if a),
            at=_stamp(raw.get("sentDateTime") if sent else raw.get("receivedDateTime")),
            preview=str(raw.get("bodyPreview") or ""),
            key=key,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise unreadable_answer("a message", err) from err


class GraphMailMixin(GraphRequests):
    """``MailGateway`` over ``GraphClient.request``."""

    def send_mail(self, token: AccessToken, mail: OutgoingMail) -> None:
        self.request("POST", "me/sendMail", token, json=send_mail_body(mail), retry_safe=False)

    def find_sent(self, token: AccessToken, key: str) -> MailItem | None:
        for folder in ("sentitems", "outbox"):
            raw = self.request(
                "GET",
                f"me/mailFolders/{folder}/messages",
                token,
                params={
                    "$filter": (
                        f"singleValueExtendedProperties/Any(ep: ep/id eq '{EMAIL_KEY_PROPERTY}' "
                        f"and ep/value eq '{_quoted(key)}')"
                    ),
                    "$select": MESSAGE_SELECT,
                    "$expand": EXPAND,
                    "$top": "1",
                },
            )
            items = [item for item in raw.get("value") or [] if isinstance(item, dict)]
            if items:
                return parse_message(items[0], sent=True)
        return None

    def conversation(self, token: AccessToken, conversation_id: str) -> list[MailItem]:
        found: list[MailItem] = []
        params: dict[str, str] | None = {
            "$filter": f"conversationId eq '{_quoted(conversation_id)}'",
            "$select": MESSAGE_SELECT,
            "$top": PAGE,
        }
        path = "me/mailFolders/inbox/messages"
        for _ in range(MAX_PAGES):
            raw = self.request("GET", path, token, params=params)
            found.extend(parse_message(item, sent=False) for item in raw.get("value") or [] if isinstance(item, dict))
            next_link = raw.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                break
            path, params = self._relative(next_link), None
        return found
