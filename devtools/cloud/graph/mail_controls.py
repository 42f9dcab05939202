"""Controls for what people do with mail: read a mailbox, reply to a message, Send As, Exchange's sending limits."""

from __future__ import annotations

from devtools.cloud.graph import mail_store, switches
from devtools.cloud.graph.outlook_controls import mailbox_id, resolve_user
from devtools.cloud.state import MailAddress, Message, World


def mailbox_messages(world: World, mailbox: str, folder: str | None = None) -> list[Message]:
    """The messages of a mailbox (one folder: inbox, sentitems, outbox; None: all but the outbox), newest first."""
    owner = resolve_user(world, mailbox)
    if folder == "outbox":
        with world.lock:
            found = [m for m in world.messages.values() if m.mailbox_id == owner.id and m.folder == "outbox"]
    else:
        found = mail_store.folder_messages(world, owner.id, folder)
    return sorted(found, key=lambda m: (m.received, m.id), reverse=True)


def reply_to_message(
    world: World,
    message_id: str,
    *,
    sender: str | None = None,
    name: str = "",
    body: str = "",
    content_type: str = "text",
) -> Message:
    """Someone (by default the message's first recipient, say a candidate) replies to a message: the reply lands
    in the original sender's Inbox in the same conversation (same conversationId)."""
    address = MailAddress(sender, name) if sender else None
    return mail_store.reply(world, message_id, sender=address, body=body, content_type=content_type)


def grant_send_as(world: World, mailbox: str, user: str, granted: bool = True) -> None:
    """Exchange's Send As on ``mailbox`` for ``user`` (Add-RecipientPermission), or its removal."""
    target, holder = resolve_user(world, mailbox), resolve_user(world, user)
    with world.lock:
        if granted:
            target.send_as.add(holder.id)
        else:
            target.send_as.discard(holder.id)


def limit_mail(
    world: World,
    *,
    per_minute: int | None = mail_store.DOCUMENTED_PER_MINUTE,
    recipients_per_day: int | None = mail_store.DOCUMENTED_RECIPIENTS_PER_DAY,
) -> None:
    """Enforce Exchange Online's sending limits per mailbox (documented: 30 messages a minute, 10,000
    recipients a day); both ``None``: off again."""
    mail_store.set_limits(world, per_minute=per_minute, recipients_per_day=recipients_per_day)


def deny_send_as(world: World, *, count: int, mailbox: str | None = None) -> None:
    """The next ``count`` sendMail requests (from one mailbox, or any) answer 403 ErrorSendAsDenied."""
    switches.set_send_as_denied(world, count=count, mailbox_id=mailbox_id(world, mailbox))


def mail_counts(world: World, mailbox: str) -> dict[str, int]:
    """Messages the mailbox submitted, how many the message rate held back, how many the recipient rate refused."""
    return mail_store.counts(world, resolve_user(world, mailbox).id)
