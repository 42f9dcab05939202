"""Controls for the Graph side of the local cloud: what people do in Outlook, and the failure switches.

Each function works on a ``World`` directly (for tests in-process) and is also reachable over HTTP
under ``/_control/graph/...`` (for tests against a running cloud); the routes call these functions.
Every change to an event goes through ``store`` and so reaches ``World.emit_change``.

Mailboxes are named by user id, UPN or mail address; events by id (the organizer's event or an
attendee's copy, whichever is handy). Event bodies use Graph's JSON shape.

The controls live by topic in ``outlook_controls`` (events, groups, delta tokens, the request log),
``mail_controls`` and ``fault_controls`` (failure switches, counters); ``control_http`` serves them over
HTTP. Everything is importable from here, so tests need one import.
"""

from __future__ import annotations

from devtools.cloud.graph.control_http import control_routes
from devtools.cloud.graph.fault_controls import (
    block_mailbox,
    clear_switches,
    drop_online_meetings,
    enforce_mailbox_concurrency,
    fail,
    lose_answers,
    request_counts,
    set_latency,
    set_on_premises,
    throttle,
)
from devtools.cloud.graph.mail_controls import (
    deny_send_as,
    grant_send_as,
    limit_mail,
    mail_counts,
    mailbox_messages,
    reply_to_message,
)
from devtools.cloud.graph.outlook_controls import (
    RESPONSES,
    _event,  # an event by id, as tests read it
    accept,
    add_event,
    decline,
    delete_event,
    edit_event,
    expire_delta_tokens,
    graph_requests,
    invalidate_delta_tokens,
    mailbox_id,
    move_event,
    organizer_event,
    propose_new_time,
    reset_graph_requests,
    resolve_group,
    resolve_user,
    respond,
    set_group_member,
    tentatively_accept,
)

__all__ = [
    "_event",
    "RESPONSES",
    "accept",
    "add_event",
    "block_mailbox",
    "clear_switches",
    "control_routes",
    "decline",
    "delete_event",
    "deny_send_as",
    "drop_online_meetings",
    "edit_event",
    "enforce_mailbox_concurrency",
    "expire_delta_tokens",
    "fail",
    "grant_send_as",
    "graph_requests",
    "invalidate_delta_tokens",
    "limit_mail",
    "lose_answers",
    "mail_counts",
    "mailbox_id",
    "mailbox_messages",
    "move_event",
    "organizer_event",
    "propose_new_time",
    "reply_to_message",
    "request_counts",
    "reset_graph_requests",
    "resolve_group",
    "resolve_user",
    "respond",
    "set_group_member",
    "set_latency",
    "set_on_premises",
    "tentatively_accept",
    "throttle",
]
