"""Graph's webhooks: change and lifecycle notifications (anonymous: the clientState is the check).

A request with ``validationToken`` is Graph's handshake: answered 200 text/plain with the decoded
token and nothing else runs. Otherwise the notifications are checked and persisted to the queue in
one write: 202 once written, 503 when the queue cannot be written (Graph delivers again).
"""

from __future__ import annotations

import azure.functions as func

from functions._contract import read_body
from functions._http import SECURITY_HEADERS, http_endpoint
from shared.bootstrap import get_container

bp = func.Blueprint()

MAX_BODY_BYTES = 256 * 1024
_OPERATION = {False: "graph_webhook", True: "graph_lifecycle_webhook"}


def _handle(req: func.HttpRequest, *, lifecycle: bool) -> func.HttpResponse:
    from shared.sync.intake import accept_notifications, validation_answer

    if "validationToken" in req.params:
        # The worker hands params URL-decoded, as Graph requires the answer; sent back as is, as
        # text/plain with nosniff, so no browser renders it.
        token = validation_answer(req.params["validationToken"])
        return func.HttpResponse(
            token, status_code=200, mimetype="text/plain", charset="utf-8", headers=SECURITY_HEADERS
        )
    result = accept_notifications(
        get_container(), read_body(req, _OPERATION[lifecycle], max_bytes=MAX_BODY_BYTES), lifecycle=lifecycle
    )
    del result  # counts are logged by the core; the answer says nothing about which items were dropped
    return func.HttpResponse(status_code=202, headers=SECURITY_HEADERS)


@bp.function_name("graph_webhook")
@bp.route(route="webhooks/graph", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def graph_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return _handle(req, lifecycle=False)


@bp.function_name("graph_lifecycle_webhook")
@bp.route(route="webhooks/graph/lifecycle", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def graph_lifecycle_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return _handle(req, lifecycle=True)
