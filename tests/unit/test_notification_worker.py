"""The notification worker over fakes: reads the event, hands it to the booking core, retries by raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import InvalidRequest, UpstreamUnavailable
from shared.models import Booking, ObservedEvent, Subscription
from shared.notifications import process_message
from shared.webhooks import encode_messages
from tests.kit import TENANT_A, FakeDeps, consented

MAILBOX = "interviews@contoso.example"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, ObservedEvent | None]] = []

    def __call__(
        self, deps: Any, tenant_id: str, *, event_id: str, observed: ObservedEvent | None, seen_at: datetime
    ) -> Booking | None:
        self.calls.append((tenant_id, event_id, observed))
        return None


def setup() -> FakeDeps:
    deps = FakeDeps()
    consented(deps)
    deps.subscriptions.create_subscription(
        Subscription(TENANT_A, "sub-1", f"users/{MAILBOX}/events", MAILBOX, deps.clock.now() + timedelta(days=7))
    )
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    deps.events.add(ObservedEvent("AAMk1", MAILBOX, start, start + timedelta(hours=1), booking_id="b1"))
    return deps


def message(*items: dict[str, str], kind: str = "change") -> str:
    [text] = encode_messages(kind, list(items), datetime(2026, 11, 25, tzinfo=UTC))
    return text


def test_a_changed_event_is_read_and_applied_once_per_message() -> None:
    deps, apply = setup(), Recorder()
    item = {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}

    report = process_message(deps, message(item, item), apply=apply)

    assert report.events == 1
    [(tenant, event_id, observed)] = apply.calls
    assert (tenant, event_id) == (TENANT_A, "AAMk1") and observed is not None and observed.booking_id == "b1"
    assert deps.subscriptions.get_subscription(TENANT_A, "sub-1").last_notification_at == deps.clock.now()


def test_a_deleted_or_vanished_event_is_applied_as_gone() -> None:
    deps, apply = setup(), Recorder()

    process_message(
        deps,
        message(
            {"t": TENANT_A, "s": "sub-1", "c": "deleted", "e": "AAMk1"},
            {"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMkX"},
        ),
        apply=apply,
    )

    assert [(e, o) for _, e, o in apply.calls] == [("AAMk1", None), ("AAMkX", None)]


def test_notifications_of_a_replaced_subscription_are_skipped() -> None:
    deps, apply = setup(), Recorder()

    report = process_message(deps, message({"t": TENANT_A, "s": "sub-old", "c": "updated", "e": "AAMk1"}), apply=apply)

    assert report.skipped == 1 and apply.calls == []


def test_catch_up_items_name_the_mailbox_themselves() -> None:
    deps, apply = setup(), Recorder()

    process_message(
        deps, message({"t": TENANT_A, "m": MAILBOX, "c": "updated", "e": "AAMk1"}, kind="sync"), apply=apply
    )

    assert apply.calls[0][2] is not None


def test_a_failure_raises_so_the_queue_delivers_again() -> None:
    deps = setup()

    def failing(*args: Any, **kwargs: Any) -> Booking | None:
        raise UpstreamUnavailable("storage is down")

    with pytest.raises(UpstreamUnavailable):
        process_message(deps, message({"t": TENANT_A, "s": "sub-1", "c": "updated", "e": "AAMk1"}), apply=failing)


def test_a_message_we_did_not_write_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        process_message(setup(), '{"hello": 1}', apply=Recorder())
