"""Webhook intake: check Graph's change and lifecycle notifications and persist them to the queue.

The intake stays cheap because Graph gives it 3 seconds: one clientState check per notification
against the subscription's stored SHA-256, each distinct subscription id looked up once per request
(a per-worker cache in front of one point read; ids we do not know are remembered for ``UNKNOWN_TTL``
in a small bounded per-worker memory, so a flood naming one unknown id costs one read; no decryption,
no Graph call), then ONE queue write for the whole request. A notification whose ``resource`` names a
mailbox other than its subscription's is dropped: the worker only ever reads events in the mailbox of
our stored subscription record. Only what was written is acknowledged: the caller answers 202 after
``accept_notifications`` returns and 503 when it raises UpstreamUnavailable, so Graph delivers again.
Notifications for unknown subscriptions, with a wrong clientState, naming another mailbox or malformed
are dropped and counted, logged once per request as counts (never a line per notification, never the
value). Counting is cheap: each worker adds to its own counters in memory and flushes them to storage
(``SubscriptionStore.add_dropped``) at most every ``DROP_FLUSH_INTERVAL``, after the request's queue
write, never failing the request; the health view flushes its own worker's counters first. A drop is
counted against the tenant whose subscription it named; one naming no subscription we know cannot be
tied to a tenant and is counted service-wide (``UNATTRIBUTED``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.errors import InvalidRequest, NotFound, ServiceError
from shared.models import SubscriptionSecret
from shared.ports import Clock, NotificationQueue, SubscriptionStore

logger = logging.getLogger(__name__)

MAX_VALIDATION_TOKEN_CHARS = 1024  # Graph's tokens are about 100 characters
MAX_MESSAGE_CHARS = 45_000  # 64 KiB per queue message once base64-encoded
SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# Outlook item ids are base64url-like; bounded, and never used in a path without quoting.
EVENT_ID = re.compile(r"[A-Za-z0-9=_+/-]{1,512}")
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENT = re.compile(r"[A-Za-z]{1,64}")
# Graph's documented examples name the resource "Users/{user id}/Events/{event id}"; the OData key form
# "Users('{id}')/Events('{id}')" is accepted too. Microsoft documents no grammar for this field.
RESOURCE = re.compile(
    r"/?users(?:/|\(')(?P<user>[^/()']{1,320})(?:'\))?/events(?:/|\(')(?P<event>[^/()']{1,512})(?:'\))?", re.I
)
MESSAGE_VERSION = 1
MAX_ATTEMPT = 1000  # bounds the attempt and replay counters a queue message carries

UNKNOWN_TTL = timedelta(seconds=10)  # short: a subscription stored a moment ago must not stay unknown long
UNKNOWN_MAX_ENTRIES = 1024
_unknown: OrderedDict[str, datetime] = OrderedDict()  # subscription id -> remembered as unknown until
_unknown_lock = threading.Lock()

UNATTRIBUTED = "unattributed"  # the scope of drops that name no subscription we know
DROP_FLUSH_INTERVAL = timedelta(seconds=30)
_pending_drops: Counter[tuple[str, str]] = Counter()  # (scope, reason) -> drops not yet in storage
_last_flush: datetime | None = None
_dropped_lock = threading.Lock()


class WebhookDeps(Protocol):
    @property
    def clock(self) -> Clock: ...
    @property
    def subscriptions(self) -> SubscriptionStore: ...
    @property
    def notification_queue(self) -> NotificationQueue: ...


@dataclass(frozen=True)
class IntakeResult:
    queued: int  # notifications persisted
    dropped: int  # notifications refused (unknown subscription, wrong clientState, malformed item)
    messages: int  # queue writes (1 unless the batch was over one message's size)


def validation_answer(token: str) -> str:
    """The handshake's answer: the URL-decoded token, exactly. Raises InvalidRequest when it is empty or
    longer than any token Graph sends (the answer is plain text and never anything but the token)."""
    if not token or len(token) > MAX_VALIDATION_TOKEN_CHARS:
        raise InvalidRequest("validationToken is empty or too long.")
    return token


def client_state_hash(client_state: str) -> str:
    """What is stored of a clientState: 256 random bits need no key, so a plain SHA-256 suffices."""
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


def _drop(drops: Counter[tuple[str, str]], reason: str, tenant_id: str | None = None) -> None:
    drops[(tenant_id or UNATTRIBUTED, reason)] += 1


def _record_drops(drops: Counter[tuple[str, str]], unknown_ids: set[str], total: int) -> None:
    """Add one request's drops to this worker's counters and log them once, as counts."""
    if not drops:
        return
    with _dropped_lock:
        _pending_drops.update(drops)
    by_reason: Counter[str] = Counter()
    for (_, reason), n in drops.items():
        by_reason[reason] += n
    # Never the clientState or the body; subscription ids are Graph's, not secrets (a few, for operators).
    named = sorted(unknown_ids)[:3]
    logger.warning(
        "Dropped %d of %d change notifications: %s%s",
        sum(by_reason.values()),
        total,
        dict(sorted(by_reason.items())),
        f"; unknown subscriptions {named}{' and more' if len(unknown_ids) > 3 else ''}" if named else "",
    )


def _known_unknown(subscription_id: str, now: datetime) -> bool:
    with _unknown_lock:
        until = _unknown.get(subscription_id)
        if until is None:
            return False
        if now >= until:
            del _unknown[subscription_id]
            return False
        return True


def _remember_unknown(subscription_id: str, now: datetime) -> None:
    with _unknown_lock:
        _unknown.pop(subscription_id, None)
        _unknown[subscription_id] = now + UNKNOWN_TTL
        while len(_unknown) > UNKNOWN_MAX_ENTRIES:
            _unknown.popitem(last=False)


def forget_unknown_subscriptions(subscription_id: str | None = None) -> None:
    """Stop treating ``subscription_id`` (or every id) as unknown in this worker: it was just stored."""
    with _unknown_lock:
        if subscription_id is None:
            _unknown.clear()
        else:
            _unknown.pop(subscription_id, None)


def flush_drops(deps: WebhookDeps, *, force: bool = False) -> None:
    """Write this worker's drop counters to storage if ``DROP_FLUSH_INTERVAL`` has passed since the last
    flush (or ``force``). Never raises: counts that could not be written stay for the next flush."""
    global _last_flush
    now = deps.clock.now()
    with _dropped_lock:
        if not force and (not _pending_drops or (_last_flush is not None and now - _last_flush < DROP_FLUSH_INTERVAL)):
            return
        taken = Counter(_pending_drops)
        _pending_drops.clear()
        _last_flush = now
    by_scope: dict[str, dict[str, int]] = {}
    for (scope, reason), n in taken.items():
        by_scope.setdefault(scope, {})[reason] = n
    for scope, counts in by_scope.items():
        try:
            deps.subscriptions.add_dropped(scope, counts)
        except ServiceError as err:
            logger.info("Could not record dropped-notification counts (%s); kept for the next flush", err.code)
            with _dropped_lock:
                for reason, n in counts.items():
                    _pending_drops[(scope, reason)] += n


def _text(item: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


class _Lookups:
    """One request's subscription lookups: each distinct id is read at most once."""

    def __init__(self, deps: WebhookDeps) -> None:
        self._deps = deps
        self._now = deps.clock.now()
        self._found: dict[str, SubscriptionSecret | None] = {}
        self.unknown: set[str] = set()

    def secret(self, subscription_id: str) -> SubscriptionSecret | None:
        if subscription_id in self._found:
            return self._found[subscription_id]
        secret: SubscriptionSecret | None = None
        if not _known_unknown(subscription_id, self._now):
            try:
                secret = self._deps.subscriptions.find_secret(subscription_id)
            except NotFound:
                _remember_unknown(subscription_id, self._now)
        if secret is None:
            self.unknown.add(subscription_id)
        self._found[subscription_id] = secret
        return secret


def _check(lookups: _Lookups, drops: Counter[tuple[str, str]], item: Any) -> SubscriptionSecret | None:
    """The subscription of a notification whose clientState matches; None to drop."""
    if not isinstance(item, dict):
        _drop(drops, "malformed")
        return None
    sub_id = _text(item, "subscriptionId", SUBSCRIPTION_ID)
    if sub_id is None:
        _drop(drops, "malformed")
        return None
    given = item.get("clientState")
    secret = lookups.secret(sub_id)
    if secret is None:
        _drop(drops, "unknown_subscription")
        return None
    presented = client_state_hash(given) if isinstance(given, str) and len(given) <= 256 else ""
    if not hmac.compare_digest(presented.encode("ascii"), secret.client_state_hash.encode("ascii")):
        _drop(drops, "client_state_mismatch", secret.tenant_id)
        return None
    return secret


def names_another_mailbox(resource: object, secret: SubscriptionSecret) -> bool:
    """Whether a change notification's ``resource`` names a mailbox other than its subscription's.

    Graph names the user by object id; we compare it with the id recorded when the subscription was
    created, and an address with the subscription's address. Where the record holds no id (subscriptions
    created before it was recorded) only an address can be told apart; an id then passes, and the worker's
    own rule (it reads in the recorded mailbox only) still holds."""
    if resource is None:
        return False
    if not isinstance(resource, str):
        return True
    match = RESOURCE.fullmatch(resource.strip())
    if match is None:
        return False  # a shape Graph does not document: nothing named that we can compare
    user = match.group("user").lower()
    ours = {secret.mailbox.lower(), (secret.mailbox_id or "").lower()} - {""}
    if not ours or user in ours:
        return False
    return secret.mailbox_id is not None or "@" in user


def _compact(item: dict[str, Any], tenant_id: str, sub_id: str, *, lifecycle: bool) -> dict[str, str] | None:
    """What the worker needs of one notification; the tenant is ours (from storage), never the item's."""
    if lifecycle:
        event = _text(item, "lifecycleEvent", LIFECYCLE_EVENT)
        return None if event is None else {"t": tenant_id, "s": sub_id, "l": event}
    change = item.get("changeType")
    data = item.get("resourceData")
    event_id = _text(data, "id", EVENT_ID) if isinstance(data, dict) else None
    if change not in CHANGE_TYPES or event_id is None:
        return None
    resource = item.get("resource")
    match = RESOURCE.fullmatch(resource.strip()) if isinstance(resource, str) else None
    if match is not None and match.group("event") != event_id:
        return None  # the event named twice, differently
    return {"t": tenant_id, "s": sub_id, "c": str(change), "e": event_id}


def encode_messages(kind: str, items: list[dict[str, str]], at: datetime) -> list[str]:
    """Queue messages for ``items``: one, unless they are over one message's size."""
    messages: list[str] = []
    chunk: list[dict[str, str]] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item, separators=(",", ":"))) + 1
        if chunk and size + item_size > MAX_MESSAGE_CHARS - 100:
            messages.append(_message(kind, chunk, at))
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        messages.append(_message(kind, chunk, at))
    return messages


def _message(kind: str, items: list[dict[str, str]], at: datetime) -> str:
    return json.dumps({"v": MESSAGE_VERSION, "k": kind, "at": at.isoformat(), "n": items}, separators=(",", ":"))


# "warm": people the busy cache has just added, to be subscribed and synced by the worker (shared.cache).
MESSAGE_KINDS = ("change", "lifecycle", "sync", "warm")


@dataclass(frozen=True)
class QueueEnvelope:
    """One queue message as we wrote it: its kind and items, and how often it was tried and replayed.

    ``attempt`` counts the worker's own delayed retries (0 for a fresh message); ``replays`` counts how
    often the message came back from the poison queue."""

    kind: str
    items: tuple[dict[str, str], ...]
    at: str
    attempt: int = 0
    replays: int = 0

    def encode(self) -> str:
        body: dict[str, Any] = {"v": MESSAGE_VERSION, "k": self.kind, "at": self.at, "n": list(self.items)}
        if self.attempt:
            body["a"] = self.attempt
        if self.replays:
            body["r"] = self.replays
        return json.dumps(body, separators=(",", ":"))


def _counter(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ATTEMPT:
        raise InvalidRequest("The queue message carries an invalid counter.")
    return value


def decode_message(text: str) -> QueueEnvelope:
    """The envelope of a queue message. Raises InvalidRequest for anything we did not write."""
    try:
        body = json.loads(text)
    except ValueError as err:
        raise InvalidRequest("The queue message is not JSON.") from err
    if not isinstance(body, dict) or body.get("v") != MESSAGE_VERSION or body.get("k") not in MESSAGE_KINDS:
        raise InvalidRequest("The queue message is not a notification message.")
    items = body.get("n")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidRequest("The queue message has no notification list.")
    return QueueEnvelope(
        kind=str(body["k"]),
        items=tuple({str(k): str(v) for k, v in i.items()} for i in items),
        at=str(body.get("at", "")),
        attempt=_counter(body, "a"),
        replays=_counter(body, "r"),
    )


def accept_notifications(deps: WebhookDeps, body: dict[str, Any], *, lifecycle: bool) -> IntakeResult:
    """Check every notification in a Graph POST and persist the valid ones in one queue write.

    ``body`` has the shape openapi.yaml gives (``{"value": [...]}``, at most 1000 items: checked by the
    handler). Raises UpstreamUnavailable when the queue cannot be written (nothing was persisted: the caller
    must not answer 2xx)."""
    values: list[Any] = body["value"]
    items: list[dict[str, str]] = []
    drops: Counter[tuple[str, str]] = Counter()
    lookups = _Lookups(deps)
    for raw in values:
        secret = _check(lookups, drops, raw)
        if secret is None:
            continue
        if not lifecycle and names_another_mailbox(raw.get("resource"), secret):
            _drop(drops, "wrong_mailbox", secret.tenant_id)
            continue
        compact = _compact(raw, secret.tenant_id, secret.subscription_id, lifecycle=lifecycle)
        if compact is None:
            _drop(drops, "malformed", secret.tenant_id)
            continue
        items.append(compact)
    dropped = sum(drops.values())
    _record_drops(drops, lookups.unknown, len(values))
    messages = encode_messages("lifecycle" if lifecycle else "change", items, deps.clock.now()) if items else []
    for message in messages:
        deps.notification_queue.send(message)  # UpstreamUnavailable: answered 503, Graph delivers again
    flush_drops(deps)  # after the write that decides the answer; writes at most once per interval
    return IntakeResult(queued=len(items), dropped=dropped, messages=len(messages))
