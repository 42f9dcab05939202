"""Keeping subscriptions alive: renewed before they lapse (PATCHes are idempotent, so two runs leave one
subscription), re-created when Graph no longer knows them, and healed on lifecycle events.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from shared.conflicts import retry_on_conflict
from shared.errors import (
    NotFound,
    ServiceError,
)
from shared.models import CreatedSubscription, Subscription
from shared.ports import Dependencies
from shared.sync.delta import app, catch_up
from shared.sync.ncrontab import NCrontab
from shared.sync.subscriptions import remember, subscribe_mailbox, tenant_mailboxes, update_subscription

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenewalReport:
    renewed: int = 0
    recreated: int = 0
    created: int = 0
    failed: int = 0


def renewal_horizon(deps: Dependencies) -> timedelta:
    """How far ahead the timer renews: past its next two runs, read from RENEWAL_SCHEDULE."""
    schedule = NCrontab.parse(deps.settings.require("RENEWAL_SCHEDULE"))
    now = deps.clock.now()
    first = schedule.next_after(now) or now
    second = schedule.next_after(first) or first
    # A margin on top: a late run, and Graph's reauthorization challenges near expiry.
    return (second - now) + timedelta(minutes=10)


def renew_subscriptions(deps: Dependencies, *, horizon: timedelta | None = None) -> RenewalReport:
    """The renewal timer: for every tenant, subscribe missing mailboxes, renew what expires within the
    horizon (``$batch`` when several), and re-create what Graph no longer knows, then catch up by delta."""
    horizon = horizon if horizon is not None else renewal_horizon(deps)
    report = RenewalReport()
    for tenant in deps.tenants.list_tenants():
        try:
            report = _renew_tenant(deps, tenant.tenant_id, horizon, report)
        except ServiceError as err:
            logger.warning("Renewal for tenant %s failed: %s", tenant.tenant_id, err.code)
            report = replace(report, failed=report.failed + 1)
    logger.info("Subscription renewal: %s", asdict(report))
    return report


def _renew_tenant(deps: Dependencies, tenant_id: str, horizon: timedelta, report: RenewalReport) -> RenewalReport:
    now = deps.clock.now()
    by_mailbox = {s.mailbox.lower(): s for s in deps.subscriptions.list_mailbox_syncs(tenant_id)}
    for mailbox in tenant_mailboxes(deps, tenant_id):
        sync = by_mailbox.get(mailbox.lower())
        if sync is None or not sync.subscription_id:
            try:
                if subscribe_mailbox(deps, tenant_id, mailbox, sync=sync) is not None:
                    report = replace(report, created=report.created + 1)
            except ServiceError as err:
                logger.warning("Subscribing a mailbox of tenant %s failed: %s", tenant_id, err.code)
                report = replace(report, failed=report.failed + 1)
    due = [s for s in deps.subscriptions.list_subscriptions(tenant_id) if s.expires_at <= now + horizon]
    if not due:
        return report
    target = now + timedelta(minutes=deps.settings.subscription_minutes)
    answers = app(deps, tenant_id)(
        lambda token: deps.graph.renew_subscriptions(token, [(s.subscription_id, target) for s in due])
    )
    for sub in due:
        answer = answers.get(sub.subscription_id)
        if isinstance(answer, CreatedSubscription):
            _renewed(deps, sub, answer.expires_at)
            report = replace(report, renewed=report.renewed + 1)
        elif isinstance(answer, NotFound) or sub.expires_at <= now:
            report = _recreate(deps, sub, report, reason="Graph no longer knows it")
        else:
            reason = answer.code if isinstance(answer, ServiceError) else "no answer"
            update_subscription(
                deps, tenant_id, sub.subscription_id, last_error=f"renewal failed: {reason}", last_error_at=now
            )
            report = replace(report, failed=report.failed + 1)
    return report


def _renewed(deps: Dependencies, sub: Subscription, expires_at: datetime) -> None:
    now = deps.clock.now()
    update_subscription(
        deps,
        sub.tenant_id,
        sub.subscription_id,
        expires_at=expires_at,
        last_renewed_at=now,
        last_error=None,
        last_error_at=None,
    )

    def write_sync() -> None:
        sync = deps.subscriptions.get_mailbox_sync(sub.tenant_id, sub.mailbox)
        if sync.subscription_id == sub.subscription_id and sync.expires_at != expires_at:
            deps.subscriptions.update_mailbox_sync(replace(sync, expires_at=expires_at))

    with contextlib.suppress(NotFound):
        retry_on_conflict(write_sync)
    remember(sub.tenant_id, sub.mailbox, expires_at)


def _recreate(deps: Dependencies, sub: Subscription, report: RenewalReport, *, reason: str) -> RenewalReport:
    logger.info("Re-creating a subscription of tenant %s: %s", sub.tenant_id, reason)
    remember(sub.tenant_id, sub.mailbox, None)
    try:
        sync = deps.subscriptions.get_mailbox_sync(sub.tenant_id, sub.mailbox)
    except NotFound:
        sync = None
    if sync is not None and sync.subscription_id not in (None, sub.subscription_id):
        # Someone already replaced it: this row is a leftover.
        deps.subscriptions.delete_subscription(sub.tenant_id, sub.subscription_id)
        return report
    try:
        created = subscribe_mailbox(deps, sub.tenant_id, sub.mailbox, sync=sync)
    except ServiceError as err:
        update_subscription(
            deps,
            sub.tenant_id,
            sub.subscription_id,
            last_error=f"re-create failed: {err.code}",
            last_error_at=deps.clock.now(),
        )
        return replace(report, failed=report.failed + 1)
    return replace(report, recreated=report.recreated + (created is not None))


def handle_lifecycle(deps: Dependencies, tenant_id: str, subscription_id: str, event: str) -> None:
    """reauthorizationRequired: renew (which also reauthorizes); subscriptionRemoved: re-create and
    catch up; missed: catch up; anything else: logged and ignored, as Graph advises."""
    try:
        sub = deps.subscriptions.get_subscription(tenant_id, subscription_id)
    except NotFound:
        logger.info("Lifecycle event %s for a subscription we no longer keep; ignored", event)
        return
    if event == "reauthorizationRequired":
        target = deps.clock.now() + timedelta(minutes=deps.settings.subscription_minutes)
        answers = app(deps, tenant_id)(lambda token: deps.graph.renew_subscriptions(token, [(subscription_id, target)]))
        answer = answers.get(subscription_id)
        if isinstance(answer, CreatedSubscription):
            _renewed(deps, sub, answer.expires_at)
        elif isinstance(answer, NotFound):
            _recreate(deps, sub, RenewalReport(), reason="reauthorization found it gone")
        elif isinstance(answer, Exception):
            raise answer  # the queue retries the message
    elif event == "subscriptionRemoved":
        _recreate(deps, sub, RenewalReport(), reason="Graph removed it")
    elif event == "missed":
        catch_up(deps, tenant_id, sub.mailbox)
    else:
        logger.warning("Unknown lifecycle event %r for a subscription of tenant %s; ignored", event[:64], tenant_id)
