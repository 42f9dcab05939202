"""Webhook intake: check Graph's change and lifecycle notifications and persist them to the queue.

The intake stays cheap because Graph gives it 3 seconds: per notification one clientState check
against the subscription's stored SHA-256 (a per-worker cache in front of one point read; no
decryption, no Graph call), then ONE queue write for the whole request. Only what was written is
acknowledged: the caller answers 202 after ``accept_notifications`` returns and 503 when it raises
UpstreamUnavailable, so Graph delivers again. Notifications for unknown subscriptions or with a
wrong clientState are dropped and counted, logged without the value. Counting is cheap: each worker
adds to its own counters in memory and flushes them to storage (``SubscriptionStore.add_dropped``)
at most every ``DROP_FLUSH_INTERVAL``, after the request's queue write, never failing the request;
the health view flushes its own worker's counters first. A drop is counted against the tenant whose
subscription it named (a wrong clientState); one naming no subscription we know cannot be tied to a
tenant and is counted service-wide (``UNATTRIBUTED``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.errors import InvalidRequest, NotFound, ServiceError
from shared.ports import Clock, NotificationQueue, SubscriptionStore

logger = logging.getLogger(__name__)

MAX_VALIDATION_TOKEN_CHARS = 1024  # Graph's tokens are about 100 characters
MAX_BODY_BYTES = 256 * 1024
MAX_NOTIFICATIONS = 1000
MAX_MESSAGE_CHARS = 45_000  # 64 KiB per queue message once base64-encoded
SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# Outlook item ids are base64url-like; bounded, and never used in a path without quoting.
EVENT_ID = re.compile(r"[A-Za-z0-9=_+/-]{1,512}")
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENT = re.compile(r"[A-Za-z]{1,64}")
MESSAGE_VERSION = 1

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


def _drop(reason: str, subscription_id: str | None, tenant_id: str | None = None) -> None:
    with _dropped_lock:
        _pending_drops[(tenant_id or UNATTRIBUTED, reason)] += 1
    # Never the clientState or the body; the subscription id is Graph's, not a secret.
    logger.warning("Dropped a change notification (%s) for subscription %s", reason, subscription_id)


def pending_drops() -> dict[tuple[str, str], int]:
    """This worker's drops not yet flushed to storage, by (scope, reason)."""
    with _dropped_lock:
        return dict(_pending_drops)


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


def _check(deps: WebhookDeps, item: Any) -> tuple[str, str] | None:
    """The (tenant id, subscription id) of a notification whose clientState matches; None to drop."""
    if not isinstance(item, dict):
        _drop("malformed", None)
        return None
    sub_id = _text(item, "subscriptionId", SUBSCRIPTION_ID)
    if sub_id is None:
        _drop("malformed", None)
        return None
    given = item.get("clientState")
    try:
        secret = deps.subscriptions.find_secret(sub_id)
    except NotFound:
        _drop("unknown_subscription", sub_id)
        return None
    presented = client_state_hash(given) if isinstance(given, str) and len(given) <= 256 else ""
    if not hmac.compare_digest(presented.encode("ascii"), secret.client_state_hash.encode("ascii")):
        _drop("client_state_mismatch", sub_id, secret.tenant_id)
        return None
    return secret.tenant_id, sub_id


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


def accept_notifications(deps: WebhookDeps, body: dict[str, Any], *, lifecycle: bool) -> IntakeResult:
    """Check every notification in a Graph POST and persist the valid ones in one queue write.

    Raises InvalidRequest for a body that is not Graph's ``{"value": [...]}``, and UpstreamUnavailable
    when the queue cannot be written (nothing was persisted: the caller must not answer 2xx)."""
    values = body.get("value")
    if not isinstance(values, list):
        raise InvalidRequest('The body must be Graph\'s notification collection: {"value": [...]}.')
    if len(values) > MAX_NOTIFICATIONS:
        raise InvalidRequest(f"At most {MAX_NOTIFICATIONS} notifications per request.")
    items: list[dict[str, str]] = []
    dropped = 0
    for raw in values:
        checked = _check(deps, raw)
        if checked is None:
            dropped += 1
            continue
        compact = _compact(raw, *checked, lifecycle=lifecycle)
        if compact is None:
            _drop("malformed", checked[1], checked[0])
            dropped += 1
            continue
        items.append(compact)
    messages = encode_messages("lifecycle" if lifecycle else "change", items, deps.clock.now()) if items else []
    for message in messages:
        deps.notification_queue.send(message)  # UpstreamUnavailable: answered 503, Graph delivers again
    flush_drops(deps)  # after the write that decides the answer; writes at most once per interval
    return IntakeResult(queued=len(items), dropped=dropped, messages=len(messages))
