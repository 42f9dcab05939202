"""A mailbox's ``calendarView/delta`` link: followed with the app's permission, what changed queued for the
notification worker exactly as a notification, and the window opened afresh on Graph's 410 or monthly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

from shared.conflicts import retry_on_conflict
from shared.errors import DeltaExpired
from shared.identity.tokens import with_app_token
from shared.models import AccessToken
from shared.ports import Dependencies
from shared.sync.intake import encode_messages

logger = logging.getLogger(__name__)

T = TypeVar("T")

DELTA_PAST = timedelta(days=7)
DELTA_FUTURE = timedelta(days=180)
DELTA_REOPEN_AFTER = timedelta(days=30)  # a delta window is fixed when opened: slide it monthly


def app(deps: Dependencies, tenant_id: str) -> Callable[[Callable[[AccessToken], T]], T]:
    """A caller that runs a Graph call with the tenant's app token (renewed once if Graph refuses it)."""

    def call(fn: Callable[[AccessToken], T]) -> T:
        return with_app_token(deps, tenant_id, fn)

    return call


def catch_up(deps: Dependencies, tenant_id: str, mailbox: str) -> int:
    """Follow the mailbox's delta link and queue what changed for the worker; a 410 (or a window older
    than ``DELTA_REOPEN_AFTER``) syncs the window afresh and queues every event in it. Returns how many
    changes were queued. Raises ServiceError (the next reconciliation tries again)."""
    sync = deps.subscriptions.get_mailbox_sync(tenant_id, mailbox)
    now = deps.clock.now()
    start, end = now - DELTA_PAST, now + DELTA_FUTURE
    link = sync.delta_link
    fresh = link is None or sync.delta_started_at is None or now - sync.delta_started_at > DELTA_REOPEN_AFTER
    full = fresh and link is not None  # a first baseline has nothing to catch up on
    opened = sync.delta_started_at if not fresh else now
    try:
        round_ = app(deps, tenant_id)(
            lambda token: deps.graph.calendar_delta(
                token, mailbox, delta_link=None if fresh else link, start=start, end=end
            )
        )
    except DeltaExpired:
        logger.info("Graph expired a delta link of tenant %s; syncing the mailbox afresh", tenant_id)
        full, opened = True, now
        round_ = app(deps, tenant_id)(
            lambda token: deps.graph.calendar_delta(token, mailbox, delta_link=None, start=start, end=end)
        )
    changes = list(round_.changes) if (full or not fresh) else []
    items = [
        {"t": tenant_id, "m": mailbox, "e": c.event_id, "c": "deleted" if c.removed else "updated"} for c in changes
    ]
    for message in encode_messages("sync", items, now):
        deps.notification_queue.send(message)

    def write() -> None:
        current = deps.subscriptions.get_mailbox_sync(tenant_id, mailbox)
        deps.subscriptions.update_mailbox_sync(
            replace(current, delta_link=round_.delta_link, delta_started_at=opened, last_delta_at=now, last_error=None)
        )

    retry_on_conflict(write)
    logger.info("Delta catch-up of a mailbox of tenant %s queued %d changes", tenant_id, len(items))
    return len(items)
