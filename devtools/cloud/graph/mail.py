"""Mail endpoints: sendMail, and reading messages of a mailbox and of its Inbox and Sent Items.

- ``POST /me/sendMail`` and ``/users/{id}/sendMail`` (v1.0 api/user-sendmail.md): JSON ``message`` and
  ``saveToSentItems`` (default true); ``202 Accepted`` with no body and no message id. Delegated callers
  need ``Mail.Send``, app-only callers the ``Mail.Send`` role. A delegated caller sending as anyone else
  (another user's path, or a ``from`` that is not their own mailbox) needs ``Mail.Send.Shared`` and
  Exchange's Send As permission on that mailbox (concepts/outlook-send-mail-from-other-user.md);
  otherwise 403 ``ErrorSendAsDenied``. The send-as-denied switch answers the same for the next sends of a
  mailbox. Inline attachments (fileAttachment with contentBytes) are kept; over 3 MB in one request is
  refused (message-post-attachments.md: larger files need an upload session on a draft, which needs
  Mail.ReadWrite; the exact error Graph answers for an oversized sendMail is not documented: 413
  ``RequestEntityTooLarge`` here). ``singleValueExtendedProperties`` are kept on the Sent Items copy.
- ``GET /me/messages``, ``/me/mailFolders/{inbox|sentitems}/messages`` (and ``/users/{id}/...``), and one
  message by id: delegated ``Mail.Read`` or ``Mail.ReadWrite`` (another user's mailbox: ``Mail.Read.Shared``
  and Full Access), app-only the ``Mail.Read`` role. ``$filter`` takes the documented extended-property
  form ``singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`` (alone) or plain
  comparisons such as ``conversationId eq '...'``; ``$orderby`` on sent/received/created time or subject;
  a ``$filter`` on conversationId together with ``$orderby`` is refused with 400 ``InefficientFilter``,
  as Graph is reported to do. ``$select``, ``$top`` (default 10, at most 1000), ``$expand`` of extended
  properties, paging by ``@odata.nextLink``. Without ``$orderby`` the newest received come first (the
  default order of a message list is not documented).
"""

from __future__ import annotations

import base64
import binascii
import html
import operator
import re
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from devtools.cloud.common import GraphError
from devtools.cloud.graph import delegation, mail_store, odata
from devtools.cloud.graph.events import expand_extended_properties, page, property_filter
from devtools.cloud.graph.pipeline import GraphContext, access_denied, graph_route, json_response
from devtools.cloud.graph.switches import take_send_as_denied
from devtools.cloud.state import FileAttachment, MailAddress, Message, User, World, new_id

OUTLOOK_WEB = "https://outlook.office365.com"
MAIL_SEND = frozenset({"mail.send"})
MAIL_SEND_SHARED = frozenset({"mail.send.shared"})
MAIL_READ = frozenset({"mail.read", "mail.readwrite"})
MAIL_READ_SHARED = frozenset({"mail.read.shared", "mail.readwrite.shared"})
MAX_INLINE_ATTACHMENTS = 3 * 1024 * 1024
ORDERABLE = {
    "receiveddatetime": "received",
    "sentdatetime": "sent",
    "createddatetime": "created",
    "lastmodifieddatetime": "last_modified",
    "subject": "subject",
}
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
# Extended property ids: "{type} {guid} Name {name}", "{type} {guid} Id {hex}" or "{type} 0x{hex}" (the id
# formats of v1.0 resources/singlevaluelegacyextendedproperty.md).
_PROPERTY_ID = re.compile(
    r"(?i:[a-z]+)\s+(?:\{[0-9A-Fa-f-]{36}\}\s+(?:Name\s+\S.*|Id\s+0x[0-9A-Fa-f]+)|0x[0-9A-Fa-f]+)"
)
SEND_AS_DENIED = (
    "The user account which was used to submit this request does not have the right to send mail on behalf of the "
    "specified sending account., Cannot submit message."
)


def send_as_denied() -> GraphError:
    return GraphError(403, "ErrorSendAsDenied", SEND_AS_DENIED)


def invalid(message: str, code: str = "ErrorInvalidRequest") -> GraphError:
    return GraphError(400, code, message)


# ---- mailboxes and permissions ---------------------------------------------------------------------
def _resolve(ctx: GraphContext, key: str | None) -> User:
    if key is None:
        return ctx.me()
    user = ctx.world.find_user(ctx.caller.tenant_id, key)
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    return user


def may_send_as(world: World, mailbox: User, user_id: str) -> bool:
    """Exchange's Send As on ``mailbox`` for ``user_id``: granted directly or through a group."""
    return delegation.holds(world, mailbox, mailbox.send_as, user_id)


def sending_mailbox(ctx: GraphContext, key: str | None, from_address: str | None) -> User:
    """The mailbox a sendMail sends from, after Graph's permission and Send As checks."""
    if ctx.caller.app_only:
        if not ctx.roles & MAIL_SEND:
            raise access_denied()
        if key is None:
            ctx.me()  # /me with an app-only token: Graph's 400
        mailbox = _resolve(ctx, key)
    else:
        if not ctx.scopes & (MAIL_SEND | MAIL_SEND_SHARED):
            raise access_denied()
        mailbox = _resolve(ctx, key)
        acting = ctx.caller.user_id or ""
        sending_as = [mailbox]
        if from_address:
            owner = ctx.world.find_user(ctx.caller.tenant_id, from_address)
            if owner is None or owner.id != mailbox.id:
                if owner is None:
                    raise send_as_denied()
                sending_as.append(owner)
        for target in sending_as:
            if target.id == acting:
                if not ctx.scopes & MAIL_SEND:
                    raise access_denied()
                continue
            if not (ctx.scopes & MAIL_SEND_SHARED and may_send_as(ctx.world, target, acting)):
                raise send_as_denied()
    ctx.enter(mailbox)
    if take_send_as_denied(ctx.world, mailbox.id):
        raise send_as_denied()
    return mailbox


def reading_mailbox(ctx: GraphContext, key: str | None) -> User:
    if ctx.caller.app_only:
        if not ctx.roles & MAIL_READ:
            raise access_denied()
        if key is None:
            ctx.me()
        mailbox = _resolve(ctx, key)
    else:
        if not ctx.scopes & (MAIL_READ | MAIL_READ_SHARED):
            raise access_denied()
        mailbox = _resolve(ctx, key)
        if mailbox.id == ctx.caller.user_id:
            if not ctx.scopes & MAIL_READ:
                raise access_denied()
        elif not (
            ctx.scopes & MAIL_READ_SHARED and delegation.has_full_access(ctx.world, mailbox, ctx.caller.user_id or "")
        ):
            raise access_denied()
    ctx.enter(mailbox)
    return mailbox


# ---- JSON in -----------------------------------------------------------------------------------
def _recipients(raw: Any, name: str) -> list[MailAddress]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid(f"{name} must be a collection.")
    found = []
    for item in raw:
        email = (item or {}).get("emailAddress") if isinstance(item, dict) else None
        address = (email or {}).get("address")
        if not isinstance(address, str) or _ADDRESS.fullmatch(address.strip()) is None:
            raise invalid("At least one recipient is not valid., Recipient is not valid.", "ErrorInvalidRecipients")
        found.append(MailAddress(address.strip(), str((email or {}).get("name") or "")))
    return found


def _extended_properties(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise invalid("singleValueExtendedProperties must be a collection.")
    props: dict[str, str] = {}
    for prop in raw:
        if not isinstance(prop, dict) or not isinstance(prop.get("id"), str):
            raise invalid("An extended property needs an id.")
        if _PROPERTY_ID.fullmatch(prop["id"].strip()) is None:
            raise invalid(f"The extended property id '{prop['id']}' is not valid.", "ErrorInvalidExtendedPropertyValue")
        props[prop["id"].strip()] = str(prop.get("value", ""))
    return props


def _attachments(raw: Any) -> list[FileAttachment]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("attachments must be a collection.")
    found = []
    total = 0
    for item in raw:
        if not isinstance(item, dict) or str(item.get("@odata.type", "")).lower() != "#microsoft.graph.fileattachment":
            raise invalid("Only file attachments are supported here.")
        try:
            content = base64.b64decode(str(item.get("contentBytes") or ""), validate=True)
        except (binascii.Error, ValueError) as err:
            raise invalid("The attachment's contentBytes are not valid base64.") from err
        total += len(content)
        if total > MAX_INLINE_ATTACHMENTS:
            raise GraphError(
                413, "RequestEntityTooLarge", "The attachments are larger than 3 MB; use an upload session."
            )
        found.append(
            FileAttachment(
                name=str(item.get("name") or "attachment"),
                content_type=str(item.get("contentType") or "application/octet-stream"),
                content=content,
                is_inline=bool(item.get("isInline", False)),
            )
        )
    return found


def parse_message(body: dict[str, Any], sender: User) -> Message:
    raw = body.get("message", body.get("Message"))
    if not isinstance(raw, dict):
        raise invalid("The message to send is missing.", "ErrorInvalidParameter")
    to = _recipients(raw.get("toRecipients"), "toRecipients")
    cc = _recipients(raw.get("ccRecipients"), "ccRecipients")
    bcc = _recipients(raw.get("bccRecipients"), "bccRecipients")
    if not (to or cc or bcc):
        raise invalid("At least one recipient is required, but none were found.", "ErrorInvalidRecipients")
    content = raw.get("body") or {}
    if not isinstance(content, dict):
        raise invalid("body must be an itemBody.")
    content_type = str(content.get("contentType") or "text").lower()
    if content_type not in ("text", "html"):
        raise invalid(f"The value '{content.get('contentType')}' is not valid for contentType.")
    importance = str(raw.get("importance") or "normal").lower()
    if importance not in ("low", "normal", "high"):
        raise invalid(f"The value '{raw.get('importance')}' is not valid for importance.")
    return Message(
        id=new_id(),
        mailbox_id=sender.id,
        folder="sentitems",
        subject=str(raw.get("subject") or ""),
        body=str(content.get("content") or ""),
        body_content_type=content_type,
        sender=MailAddress(sender.mail, sender.display_name),
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=_recipients(raw.get("replyTo"), "replyTo"),
        extended_properties=_extended_properties(raw.get("singleValueExtendedProperties")),
        attachments=_attachments(raw.get("attachments")),
        importance=importance,
    )


def _from_address(body: dict[str, Any]) -> str | None:
    raw = body.get("message")
    if not isinstance(raw, dict):
        return None
    for name in ("from", "sender"):
        value = raw.get(name)
        if isinstance(value, dict):
            address = (value.get("emailAddress") or {}).get("address")
            if isinstance(address, str) and address:
                return address
    return None


# ---- JSON out ----------------------------------------------------------------------------------
def _address_json(address: MailAddress) -> dict[str, Any]:
    return {"emailAddress": {"name": address.name or address.address, "address": address.address}}


def _z(value: datetime) -> str:
    # Messages carry whole seconds in UTC ("2016-10-19T10:37:00Z" in the reference examples).
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def preview(message: Message) -> str:
    text = re.sub(r"<[^>]+>", " ", message.body) if message.body_content_type == "html" else message.body
    return " ".join(html.unescape(text).split())[:255]


def message_json(message: Message) -> dict[str, Any]:
    """A message in the property order of the v1.0 reference example (api/message-get.md)."""
    folder_id = base64.urlsafe_b64encode(f"{message.mailbox_id}:{message.folder}".encode()).decode().rstrip("=")
    body_content = message.body
    if message.body_content_type == "html" and not body_content.lstrip().lower().startswith("<html"):
        body_content = f"<html><head></head><body>{body_content}</body></html>"
    return {
        "@odata.etag": f'W/"{message.change_key}"',
        "id": message.id,
        "createdDateTime": _z(message.created),
        "lastModifiedDateTime": _z(message.last_modified),
        "changeKey": message.change_key,
        "categories": [],
        "receivedDateTime": _z(message.received),
        "sentDateTime": _z(message.sent),
        "hasAttachments": any(not a.is_inline for a in message.attachments),
        "internetMessageId": message.internet_message_id,
        "subject": message.subject,
        "bodyPreview": preview(message),
        "importance": message.importance,
        "parentFolderId": folder_id,
        "conversationId": message.conversation_id,
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": message.is_read,
        "isDraft": False,
        "webLink": f"{OUTLOOK_WEB}/owa/?ItemID={message.id}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": "focused",
        "body": {"contentType": message.body_content_type, "content": body_content},
        "sender": _address_json(message.sender),
        "from": _address_json(message.sender),
        "toRecipients": [_address_json(a) for a in message.to],
        "ccRecipients": [_address_json(a) for a in message.cc],
        "bccRecipients": [_address_json(a) for a in message.bcc],
        "replyTo": [_address_json(a) for a in message.reply_to],
        "flag": {"flagStatus": "notFlagged"},
    }


def _message_body(ctx: GraphContext, message: Message, *, entity: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if entity:
        body["@odata.context"] = odata.context_url(ctx.request, f"users('{message.mailbox_id}')/messages/$entity")
    body.update(message_json(message))
    expanded = expand_extended_properties(ctx, message.extended_properties)
    if expanded is not None:
        body["singleValueExtendedProperties"] = expanded
    fields = odata.select_fields(ctx.request)
    if fields is not None:
        extra = ["singleValueExtendedProperties"] if expanded is not None else []
        body = odata.apply_select(body, fields + extra, keep=("id",))
    return body


# ---- handlers ----------------------------------------------------------------------------------
async def send_mail(ctx: GraphContext) -> Response:
    body = await ctx.json()
    mailbox = sending_mailbox(ctx, ctx.request.path_params.get("user"), _from_address(body))
    message = parse_message(body, mailbox)
    message.created_by_client_id = ctx.caller.client_id
    save = body.get("saveToSentItems", body.get("SaveToSentItems", True))
    if isinstance(save, str):
        save = save.lower() != "false"
    mail_store.submit(ctx.world, mailbox, message, save_to_sent_items=bool(save))
    return Response(status_code=202)


_ORDER = re.compile(r"\s*(?P<name>[A-Za-z]+)(?:\s+(?P<dir>asc|desc))?\s*", re.IGNORECASE)


def _order(raw: str) -> list[tuple[str, bool]]:
    keys = []
    for part in raw.split(","):
        match = _ORDER.fullmatch(part)
        if match is None or match.group("name").lower() not in ORDERABLE:
            raise invalid(f"The $orderby '{raw}' is not supported.", "BadRequest")
        keys.append((ORDERABLE[match.group("name").lower()], (match.group("dir") or "asc").lower() == "desc"))
    return keys


async def list_messages(ctx: GraphContext) -> Response:
    params = ctx.request.path_params
    mailbox = reading_mailbox(ctx, params.get("user"))
    folder = params.get("folder")
    if folder is not None:
        folder = folder.lower()
        if folder not in mail_store.FOLDERS:
            raise mail_store.not_found()
    messages = mail_store.folder_messages(ctx.world, mailbox.id, folder)
    raw_filter = ctx.request.query_params.get("$filter")
    raw_order = ctx.request.query_params.get("$orderby")
    if raw_filter and raw_order and "conversationid" in raw_filter.lower():
        # Observed from Graph (public issues); not in the reference pages.
        raise GraphError(400, "InefficientFilter", "The restriction or sort order is too complex for this operation.")
    carries = property_filter(raw_filter)
    if carries is not None:
        messages = [m for m in messages if carries(m.extended_properties)]
        raw_filter = None
    ordering = _order(raw_order) if raw_order else [("received", True)]
    messages.sort(key=lambda m: m.id)
    for attribute, descending in reversed(ordering):  # stable sorts, least significant key first
        messages.sort(key=operator.attrgetter(attribute), reverse=descending)
    items = [(m, message_json(m)) for m in messages]
    if raw_filter:
        predicate = odata.compile_filter(raw_filter, odata.property_getter())
        items = [(m, j) for m, j in items if predicate(j)]
    bodies = [_message_body(ctx, m, entity=False) for m, _j in items]
    context = f"users('{mailbox.id}')/mailFolders('{folder}')/messages" if folder else f"users('{mailbox.id}')/messages"
    return json_response(page(ctx, bodies, context))


async def get_message(ctx: GraphContext) -> Response:
    params = ctx.request.path_params
    mailbox = reading_mailbox(ctx, params.get("user"))
    message = mail_store.find_message(ctx.world, mailbox.id, params["message"])
    folder = params.get("folder")
    if folder is not None and message.folder != folder.lower():
        raise mail_store.not_found()
    return json_response(_message_body(ctx, message, entity=True))


def routes(world: World) -> list[BaseRoute]:
    result: list[BaseRoute] = []
    for base in ("/me", "/users/{user}"):
        result.append(graph_route(world, base + "/sendMail", send_mail, ["POST"]))
        for coll in ("/messages", "/mailFolders/{folder}/messages"):
            result.append(graph_route(world, base + coll, list_messages, ["GET"]))
            result.append(graph_route(world, base + coll + "/{message}", get_message, ["GET"]))
    return result
