"""The trail of a booking's email: every message we sent (or hold, or could not send) and every reply.

The ledger says what we sent. The caller's own messages are read back from their Sent Items by our key
(the subject, time and preview as Exchange has them, and the conversationId), and the replies are the
Inbox messages of those conversations, read with the caller's delegated ``Mail.Read``: one
``$filter=conversationId eq '...'`` per conversation, sorted here (Graph refuses that filter combined with
``$orderby``). Nothing else of the mailbox is read, and nothing read is stored. Messages sent from another
recruiter's mailbox are shown from the ledger only: their mailbox is theirs to read.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from shared.email.sending import FEATURE, MAIL_SCOPES, mail_token
from shared.errors import GraphRequestFailed, NotFound, ServiceError, UpstreamUnavailable
from shared.identity.tokens import with_user_token
from shared.models import AccessToken, Booking, EmailRecord, EmailStatus, MailItem, User
from shared.ports import EmailDependencies

logger = logging.getLogger(__name__)

PREVIEW_LENGTH = 160
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TrailEntry:
    direction: str  # "sent", "received", or the status of a message not sent: "queued", "sending", "failed"
    subject: str
    sender: str
    to: tuple[str, ...]
    at: datetime | None
    preview: str
    template: str | None = None
    status: str | None = None
    error: str | None = None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1].rstrip() + "…"


def _from_record(record: EmailRecord, sender: str) -> TrailEntry:
    direction = "sent" if record.status is EmailStatus.SENT else record.status.value
    return TrailEntry(
        direction=direction,
        subject=record.subject,
        sender=sender,
        to=(record.to,),
        at=record.sent_at or record.updated_at or record.created_at,
        preview="",
        template=record.template,
        status=record.status.value,
        error=record.error,
    )


def booking_trail(deps: EmailDependencies, user: User, booking: Booking) -> tuple[list[TrailEntry], bool]:
    """The trail, newest first, and whether the replies could be read (False: the caller has not opted in, or
    Graph could not be read just now; the ledger's part is always there). Raises ReauthRequired."""
    records = deps.emails.list_booking_emails(booking.tenant_id, booking.booking_id)
    mine = [r for r in records if r.status is EmailStatus.SENT and r.sender_id == user.user_id]
    entries: list[TrailEntry] = []
    replies_read = False
    token: AccessToken | None = None
    if mine and FEATURE in user.features:
        token = mail_token(deps, user)
    found: dict[str, MailItem] = {}
    if token is not None:
        try:
            for record in mine:
                item = _look_up(deps, user, token, record)
                if item is not None:
                    found[record.key] = item
            conversations = dict.fromkeys(i.conversation_id for i in found.values() if i.conversation_id)
            ours = {user.username.lower()}
            for conversation in conversations:
                for reply in _conversation(deps, user, token, conversation):
                    if reply.sender.lower() in ours:
                        continue
                    entries.append(
                        TrailEntry("received", reply.subject, reply.sender, reply.to, reply.at, _short(reply.preview))
                    )
            replies_read = True
        except (GraphRequestFailed, UpstreamUnavailable) as err:
            logger.info("the email trail could not read the mailbox: %s", err.code)
            entries = []
    senders = {user.user_id: user.username}
    for record in records:
        if record.sender_id not in senders:
            try:
                senders[record.sender_id] = deps.users.get_user(record.tenant_id, record.sender_id).username
            except NotFound:
                senders[record.sender_id] = ""
        entry = _from_record(record, senders[record.sender_id])
        item = found.get(record.key)
        if item is not None:
            entry = replace(entry, subject=item.subject, preview=_short(item.preview))  # our own time: finer
        entries.append(entry)
    entries.sort(key=lambda e: e.at or EPOCH, reverse=True)
    return entries, replies_read


def _conversation(deps: EmailDependencies, user: User, token: AccessToken, conversation: str) -> list[MailItem]:
    return with_user_token(
        deps, user, lambda t: deps.mail.conversation(t, conversation), token=token, scopes=MAIL_SCOPES
    )


def _look_up(deps: EmailDependencies, user: User, token: AccessToken, record: EmailRecord) -> MailItem | None:
    item = with_user_token(deps, user, lambda t: deps.mail.find_sent(t, record.key), token=token, scopes=MAIL_SCOPES)
    if item is not None and record.conversation_id != item.conversation_id:
        with contextlib.suppress(ServiceError):  # remembered next time
            deps.emails.update_email(replace(record, conversation_id=item.conversation_id))
    return item
