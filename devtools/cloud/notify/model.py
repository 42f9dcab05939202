"""The data of change notifications: subscriptions, queued notifications, the delivery log, and where a
world keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devtools.cloud.state import World, utcnow

STATE_SLOT = "subscriptions"
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
CHANGE_TYPES = ("created", "updated", "deleted")
# How often the worker looks at timers (expiry, reauthorization, retries) when nothing wakes it.
POLL_SECONDS = 0.05


def format_datetime(value: datetime) -> str:
    """Graph's DateTimeOffset rendering: UTC with seven fractional digits, e.g. ``...45.9356913Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class Subscription:
    """One Graph subscription on the events of one mailbox."""

    id: str
    tenant_id: str
    client_id: str
    creator_id: str  # signed-in user id, or the app's service principal id for app-only callers
    delegated_user_id: str | None  # set when created with a delegated token
    mailbox_id: str
    resource: str  # as the client wrote it
    change_type: str  # as the client wrote it, e.g. "created,updated"
    notification_url: str
    lifecycle_notification_url: str | None
    client_state: str | None
    expiration: datetime
    latest_supported_tls_version: str = "v1_2"
    notification_url_app_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    # When the current reauthorizationRequired challenge was sent; None while authorized.
    reauthorization_required_at: datetime | None = None
    # When the last automatic near-expiry challenge was sent (to space repeats).
    last_expiry_challenge_at: datetime | None = None

    @property
    def change_types(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.change_type.split(","))

    def expired(self, now: datetime) -> bool:
        return self.expiration <= now

    def paused(self, world: World, now: datetime) -> bool:
        """Change notifications pause once a reauthorization challenge went unanswered for the grace period."""
        if self.reauthorization_required_at is None:
            return False
        grace = timedelta(seconds=world.switches.reauthorization_grace_seconds)
        return now >= self.reauthorization_required_at + grace

    def reauthorized(self) -> None:
        self.reauthorization_required_at = None

    def to_json(self) -> dict[str, Any]:
        """The documented subscription resource (v1.0)."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.client_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": format_datetime(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": self.latest_supported_tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": self.notification_url_app_id,
        }


@dataclass
class PendingNotification:
    """One notification object waiting for (re)delivery; several share a POST when their URL matches."""

    kind: str  # "change" | "lifecycle"
    url: str
    subscription_id: str
    item: dict[str, Any]  # the object that goes into the POST's "value" array
    queued_at: datetime
    due_at: datetime
    attempts: int = 0
    in_flight: bool = False


@dataclass(frozen=True)
class DeliveryRecord:
    """What the cloud sent (or gave up on), for tests to inspect.

    ``kind`` is "change", "lifecycle" or "validation". ``outcome`` is "delivered", "retrying",
    "dropped" (with ``reason``) or, for validation requests, "validated" / "rejected".
    ``status`` is None when the endpoint did not answer in time or could not be reached.
    """

    kind: str
    url: str
    outcome: str
    status: int | None
    attempt: int
    subscription_ids: tuple[str, ...]
    payload: dict[str, Any] | None
    at: datetime
    elapsed_seconds: float = 0.0
    reason: str | None = None

    def to_json(self, *, redact: bool = True) -> dict[str, Any]:
        payload = self.payload
        if redact and payload is not None:
            # clientState is the receiver's shared secret; keep it out of control-API output.
            payload = {
                "value": [
                    {**item, "clientState": "***"} if item.get("clientState") is not None else item
                    for item in payload.get("value", [])
                ]
            }
        return {
            "kind": self.kind,
            "url": self.url,
            "outcome": self.outcome,
            "status": self.status,
            "attempt": self.attempt,
            "subscriptionIds": list(self.subscription_ids),
            "payload": payload,
            "at": format_datetime(self.at),
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "reason": self.reason,
        }


@dataclass
class NotificationState:
    """Everything the subscriptions API and the delivery worker share, kept in ``world.extra``."""

    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    pending: list[PendingNotification] = field(default_factory=list)
    log: list[DeliveryRecord] = field(default_factory=list)


def state(world: World) -> NotificationState:
    """This world's notification state, created on first use (and anew after a world reset)."""
    return world.module_state(STATE_SLOT, NotificationState)


def record(world: World, entry: DeliveryRecord) -> None:
    state(world).log.append(entry)


def delivery_log(world: World) -> list[DeliveryRecord]:
    with world.lock:
        return list(state(world).log)


def clear_delivery_log(world: World) -> None:
    with world.lock:
        state(world).log.clear()


def pending_count(world: World) -> int:
    with world.lock:
        return len(state(world).pending)
