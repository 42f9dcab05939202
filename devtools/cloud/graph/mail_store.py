"""Mail data operations on the World: every message sent, delivered, held back or replied to goes through here.

Exchange, simplified to what the service meets:

- A message a mailbox submits (``submit``) is saved to the sender's Sent Items unless the sender said
  ``saveToSentItems: false``, and delivered to the Inbox of every recipient (to, cc, bcc) who has a
  mailbox in the sender's tenant. Mail to anyone else leaves the tenant and is not kept here. The
  recipients' copies share the conversationId and internetMessageId of the sent message; extended
  properties stay on the sender's item (whether Exchange carries MAPI named properties to an internal
  recipient's copy is not documented, so they are not copied).
- Exchange Online's sending limits (off unless the mail-limits switch is set, see ``set_limits``):
  "30 messages per minute" and "10,000 recipients per day" per mailbox. Over the message rate, the
  Exchange Online limits page says excess submissions are "throttled and successively carried over to
  the following minutes": the message is accepted, held in the Outbox and sent (saved and delivered)
  at the first moment the mailbox is back under its rate, on the cloud's clock (``release_due``). Over
  the recipient rate the sender is blocked: what Graph's sendMail answers then is not documented; this
  cloud answers 429 ``ErrorSubmissionQuotaExceeded`` (Exchange Web Services' code for "the sender's
  submission quota was exceeded") with a Retry-After of the seconds until the day's window has room.
- A candidate's reply (``reply``, a control) lands in the original sender's Inbox in the same
  conversation, with the subject "RE: ...".
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from devtools.cloud.common import GraphError
from devtools.cloud.state import MailAddress, Message, User, World, new_id

_SLOT = "mail"
DOCUMENTED_PER_MINUTE = 30  # Exchange Online limits: message rate limit
DOCUMENTED_RECIPIENTS_PER_DAY = 10_000  # Exchange Online limits: recipient rate limit
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
FOLDERS = ("inbox", "sentitems", "outbox")


@dataclass
class MailState:
    """Sending bookkeeping in ``world.extra``: submissions per mailbox (when each is sent, how many recipients)."""

    submissions: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)
    # Per mailbox: messages accepted, held back by the message rate, refused by the recipient rate.
    submitted: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)


def mail_state(world: World) -> MailState:
    return world.module_state(_SLOT, MailState)


def not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def set_limits(
    world: World,
    *,
    per_minute: int | None = DOCUMENTED_PER_MINUTE,
    recipients_per_day: int | None = DOCUMENTED_RECIPIENTS_PER_DAY,
) -> None:
    """Enforce Exchange's sending limits (the documented values by default); ``None`` for both turns them off."""
    limits: dict[str, int] = {}
    for name, value in (("per_minute", per_minute), ("recipients_per_day", recipients_per_day)):
        if value is None:
            continue
        if value < 1:
            raise ValueError(f"{name} must be at least 1")
        limits[name] = int(value)
    with world.lock:
        world.switches.mail_limits = limits


def internet_message_id(sender: User) -> str:
    domain = sender.mail.rpartition("@")[2] or "contoso.example"
    return f"<{uuid.uuid4().hex.upper()}@{domain.upper().replace('.', '')}.PROD.OUTLOOK.COM>"


def _recipient_count(message: Message) -> int:
    return len(message.to) + len(message.cc) + len(message.bcc)


def _send_time(world: World, mailbox_id: str, recipients: int) -> datetime:
    """When a submission made now is sent under the limits (now, or later); raises 429 over the day's recipients."""
    now = world.now()
    limits = world.switches.mail_limits
    state = mail_state(world)
    log = [entry for entry in state.submissions.get(mailbox_id, []) if entry[0] > now - DAY]
    state.submissions[mailbox_id] = log
    daily = limits.get("recipients_per_day")
    if daily is not None:
        used = sum(count for _at, count in log)
        if used + recipients > daily:
            state.refused[mailbox_id] = state.refused.get(mailbox_id, 0) + 1
            # Room comes back as the oldest submissions leave the 24-hour window.
            freed, wait = used, DAY
            for at, count in log:
                freed -= count
                wait = at + DAY - now
                if freed + recipients <= daily:
                    break
            raise GraphError(
                429,
                "ErrorSubmissionQuotaExceeded",
                "The message can't be submitted because the sender's submission quota was exceeded.",
                headers={"Retry-After": str(max(1, int(wait.total_seconds()) + 1))},
            )
    per_minute = limits.get("per_minute")
    at = now
    if per_minute is not None and len(log) >= per_minute:
        # Sends are logged in time order and each respects the rate, so the one ``per_minute`` back decides.
        at = max(now, log[-per_minute][0] + MINUTE)
    log.append((at, recipients))
    return at


def submit(world: World, sender: User, message: Message, *, save_to_sent_items: bool) -> Message:
    """Accept a message from ``sender``'s mailbox: sent now, or held in the Outbox under the message rate."""
    with world.lock:
        release_due(world)
        at = _send_time(world, sender.id, _recipient_count(message))
        state = mail_state(world)
        state.submitted[sender.id] = state.submitted.get(sender.id, 0) + 1
        message.mailbox_id = sender.id
        message.internet_message_id = message.internet_message_id or internet_message_id(sender)
        message.save_to_sent_items = save_to_sent_items
        if at > world.now():
            state.held[sender.id] = state.held.get(sender.id, 0) + 1
            message.folder = "outbox"
            message.sent = message.received = at
            world.messages[message.id] = message
            return message
        _dispatch(world, message, at)
        return message


def _dispatch(world: World, message: Message, at: datetime) -> None:
    """Send ``message`` at ``at``: the sender's Sent Items copy (if asked for) and the tenant recipients' copies."""
    sender = world.users.get(message.mailbox_id)
    message.sent = message.received = message.created = message.last_modified = at
    if message.save_to_sent_items:
        message.folder = "sentitems"
        world.messages[message.id] = message
    else:
        world.messages.pop(message.id, None)
    if sender is None:
        return
    delivered: set[str] = set()
    for recipient in (*message.to, *message.cc, *message.bcc):
        user = world.find_user(sender.tenant_id, recipient.address)
        if user is None or user.id in delivered:
            continue
        delivered.add(user.id)
        copy = dataclasses.replace(
            message,
            id=new_id(),
            mailbox_id=user.id,
            folder="inbox",
            bcc=[],  # a recipient never sees the bcc line
            extended_properties={},
            attachments=list(message.attachments),
            is_read=False,
            change_key=new_id(),
            created_by_client_id=None,
        )
        world.messages[copy.id] = copy


def release_due(world: World) -> int:
    """Send the held messages whose time has come (on the cloud's clock); returns how many."""
    with world.lock:
        now = world.now()
        due = sorted(
            (m for m in world.messages.values() if m.folder == "outbox" and m.sent <= now),
            key=lambda m: (m.sent, m.id),
        )
        for message in due:
            _dispatch(world, message, message.sent)
    return len(due)


def folder_messages(world: World, mailbox_id: str, folder: str | None) -> list[Message]:
    """The messages of one folder of a mailbox (None: every folder but the Outbox), after releasing due ones."""
    release_due(world)
    with world.lock:
        return [
            m
            for m in world.messages.values()
            if m.mailbox_id == mailbox_id and (m.folder == folder if folder else m.folder != "outbox")
        ]


def find_message(world: World, mailbox_id: str, message_id: str) -> Message:
    release_due(world)
    with world.lock:
        message = world.messages.get(message_id)
    if message is None or message.mailbox_id != mailbox_id:
        raise not_found()
    return message


def reply(
    world: World, message_id: str, *, sender: MailAddress | None = None, body: str = "", content_type: str = "text"
) -> Message:
    """Someone answers a message (a candidate replying from outside the tenant, by default its first recipient).

    The reply lands in the Inbox of the original sender's mailbox, in the same conversation; if the one
    replying has a mailbox in the world, a copy goes to their Sent Items too.
    """
    with world.lock:
        original = world.messages.get(message_id)
        if original is None:
            raise KeyError(f"no such message: {message_id}")
        owner = world.users.get(original.mailbox_id)
        if owner is None:
            raise KeyError(f"the mailbox of {message_id} is gone")
        # Answering a received message goes back to its sender; answering a sent one, to the mailbox that sent it.
        to_answer = original.sender if original.folder == "inbox" else MailAddress(owner.mail, owner.display_name)
        if sender is None:
            if not original.to:
                raise ValueError("the message has no recipient to reply")
            sender = original.to[0]
        subject = original.subject if original.subject.lower().startswith("re:") else f"RE: {original.subject}"
        now = world.now()
        answer = Message(
            id=new_id(),
            mailbox_id="",
            folder="inbox",
            subject=subject,
            body=body,
            body_content_type="html" if content_type.lower() == "html" else "text",
            sender=sender,
            to=[to_answer],
            conversation_id=original.conversation_id,
            internet_message_id=internet_message_id(owner),
            sent=now,
            received=now,
            created=now,
            last_modified=now,
            is_read=False,
        )
        recipient = world.find_user(owner.tenant_id, to_answer.address)
        inbox_copy: Message | None = None
        if recipient is not None:
            inbox_copy = dataclasses.replace(answer, mailbox_id=recipient.id)
            world.messages[inbox_copy.id] = inbox_copy
        replier = world.find_user(owner.tenant_id, sender.address)
        if replier is not None:
            sent_copy = dataclasses.replace(
                answer, id=new_id(), mailbox_id=replier.id, folder="sentitems", is_read=True
            )
            world.messages[sent_copy.id] = sent_copy
        return inbox_copy or answer


def counts(world: World, mailbox_id: str) -> dict[str, int]:
    """Messages a mailbox submitted, how many the message rate held back, and how many the recipient rate refused."""
    state = mail_state(world)
    with world.lock:
        return {
            "submitted": state.submitted.get(mailbox_id, 0),
            "held": state.held.get(mailbox_id, 0),
            "refused": state.refused.get(mailbox_id, 0),
        }
