"""Queue trigger: apply the change notifications the webhook persisted (retried; poison after 5)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.bootstrap import get_container

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.function_name("notification_worker")
@bp.queue_trigger(arg_name="msg", queue_name="%NOTIFICATION_QUEUE%", connection="AzureWebJobsStorage")
def notification_worker(msg: func.QueueMessage) -> None:
    from shared.notifications import describe, process_message

    report = process_message(get_container(), msg.get_body().decode("utf-8"))
    logger.info("Notification message %s (attempt %s): %s", msg.id, msg.dequeue_count, describe(report))
