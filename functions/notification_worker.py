"""Queue trigger: apply the change notifications the webhook persisted. Transient failures are queued
again by the core with a growing delay; anything else raises, so the host retries and then moves the
message to the poison queue, which reconciliation replays."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.bootstrap import get_container

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.function_name("notification_worker")
@bp.queue_trigger(arg_name="msg", queue_name="%NOTIFICATION_QUEUE%", connection="AzureWebJobsStorage")
def notification_worker(msg: func.QueueMessage) -> None:
    from shared.sync.worker import describe, run_message

    report = run_message(get_container(), msg.get_body().decode("utf-8"))
    logger.info("Notification message %s (attempt %s): %s", msg.id, msg.dequeue_count, describe(report))
