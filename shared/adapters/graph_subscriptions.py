"""Graph calls for change notifications: subscriptions (create, renew through ``$batch``, reauthorize,
delete) and ``calendarView/delta``. A mixin that ``GraphClient`` inherits; it uses the client's one
``request`` method, so retries, timeouts and error translation are the client's.

Graph documents: at most 20 requests per ``$batch``, "A 200 status code on the batch response does
not indicate that the individual requests inside the batch succeeded", responses "might appear in a
different order", and throttled requests inside a batch are not retried for you. Renewal PATCHes are
idempotent (they set the expiry), so a failed one is simply sent again on its own, where the client's
request layer honours ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from shared.adapters.graph_requests import GraphRequests
from shared.errors import DeltaExpired, GraphRequestFailed, NotFound, UpstreamUnavailable
from shared.models import AccessToken, CreatedSubscription, DeltaChange, DeltaRound

logger = logging.getLogger(__name__)

BATCH_LIMIT = 20
CHANGE_TYPES = "created,updated,deleted"
MAX_DELTA_PAGES = 500  # a bound on one round; Graph pages hold dozens of events each
TRANSIENT = frozenset({429, 500, 502, 503, 504})


def graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_graph_time(value: Any) -> datetime:
    """Graph's DateTimeOffset (``...45.9356913Z``: seven fractional digits) as an aware UTC datetime."""
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, sep, tail = text.partition(".")
    if sep:
        digits = "".join(ch for ch in tail if ch.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _created(raw: dict[str, Any]) -> CreatedSubscription:
    try:
        return CreatedSubscription(
            subscription_id=str(raw["id"]),
            resource=str(raw.get("resource") or ""),
            expires_at=parse_graph_time(raw["expirationDateTime"]),
        )
    except (KeyError, ValueError) as err:
        raise UpstreamUnavailable("Microsoft Graph answered a subscription without an id or expiry.") from err


class GraphSubscriptionsMixin(GraphRequests):
    """Subscriptions and delta over ``GraphClient.request``."""

    def create_subscription(
        self,
        token: AccessToken,
        *,
        resource: str,
        notification_url: str,
        lifecycle_url: str,
        client_state: str,
        expires_at: datetime,
    ) -> CreatedSubscription:
        body = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,  # only settable at creation
            "resource": resource,
            "expirationDateTime": graph_time(expires_at),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        }
        # A create is not idempotent and carries no transactionId: never retried here. The caller's
        # per-mailbox claim and the next renewal run settle a create whose answer was lost.
        raw = self.request("POST", "subscriptions", token, json=body, retry_safe=False)
        return _created(raw)

    def renew_subscriptions(
        self, token: AccessToken, renewals: Sequence[tuple[str, datetime]]
    ) -> dict[str, CreatedSubscription | Exception]:
        results: dict[str, CreatedSubscription | Exception] = {}
        if len(renewals) == 1:
            sub_id, expires_at = renewals[0]
            results[sub_id] = self._renew_one(token, sub_id, expires_at)
            return results
        for start in range(0, len(renewals), BATCH_LIMIT):
            chunk = list(renewals[start : start + BATCH_LIMIT])
            results.update(self._renew_batch(token, chunk))
        return results

    def _renew_one(self, token: AccessToken, sub_id: str, expires_at: datetime) -> CreatedSubscription | Exception:
        try:
            raw = self.request(
                "PATCH",
                f"subscriptions/{quote(sub_id, safe='')}",
                token,
                json={"expirationDateTime": graph_time(expires_at)},
            )
        except (NotFound, GraphRequestFailed, UpstreamUnavailable) as err:
            return err
        return _created(raw)

    def _renew_batch(
        self, token: AccessToken, chunk: list[tuple[str, datetime]]
    ) -> dict[str, CreatedSubscription | Exception]:
        by_request = {str(i): (sub_id, expires_at) for i, (sub_id, expires_at) in enumerate(chunk)}
        body = {
            "requests": [
                {
                    "id": request_id,
                    "method": "PATCH",
                    "url": f"/subscriptions/{quote(sub_id, safe='')}",
                    "headers": {"Content-Type": "application/json"},
                    "body": {"expirationDateTime": graph_time(expires_at)},
                }
                for request_id, (sub_id, expires_at) in by_request.items()
            ]
        }
        results: dict[str, CreatedSubscription | Exception] = {}
        try:
            raw = self.request("POST", "$batch", token, json=body, retry_safe=True)  # every PATCH is idempotent
        except (GraphRequestFailed, UpstreamUnavailable) as err:
            logger.warning(
                "Graph $batch of %d renewals failed (%s); renewing one by one", len(chunk), type(err).__name__
            )
            return {sub_id: self._renew_one(token, sub_id, expires_at) for sub_id, expires_at in chunk}
        answered: set[str] = set()
        for item in raw.get("responses") or []:
            if not isinstance(item, dict) or str(item.get("id")) not in by_request:
                continue
            request_id = str(item["id"])
            answered.add(request_id)
            sub_id, expires_at = by_request[request_id]
            status = int(item.get("status") or 0)
            raw_body = item.get("body")
            inner: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
            if 200 <= status < 300:
                try:
                    results[sub_id] = _created(inner)
                except UpstreamUnavailable as err:
                    results[sub_id] = err
            elif status == 404:
                results[sub_id] = NotFound("Microsoft Graph no longer knows the subscription.")
            elif status in TRANSIENT:
                results[sub_id] = self._renew_one(token, sub_id, expires_at)  # honours Retry-After on its own
            else:
                raw_error = inner.get("error")
                error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
                code = str(error.get("code", ""))
                results[sub_id] = GraphRequestFailed(
                    f"Microsoft Graph answered HTTP {status} ({code or 'no code'}) to a renewal.",
                    status=status,
                    reason="forbidden" if status == 403 else "other",
                    graph_code=code,
                )
        for request_id, (sub_id, expires_at) in by_request.items():
            if request_id not in answered:
                results[sub_id] = self._renew_one(token, sub_id, expires_at)
        return results

    def reauthorize_subscription(self, token: AccessToken, subscription_id: str) -> None:
        self.request("POST", f"subscriptions/{quote(subscription_id, safe='')}/reauthorize", token, retry_safe=True)

    def delete_subscription(self, token: AccessToken, subscription_id: str) -> None:
        try:
            self.request("DELETE", f"subscriptions/{quote(subscription_id, safe='')}", token)
        except NotFound:
            return

    def calendar_delta(
        self, token: AccessToken, mailbox: str, *, delta_link: str | None, start: datetime, end: datetime
    ) -> DeltaRound:
        changes: dict[str, DeltaChange] = {}
        items, final = self.delta_pages(token, mailbox, delta_link=delta_link, start=start, end=end)
        for item in items:
            event_id = item["id"]
            changes[event_id] = DeltaChange(event_id=event_id, removed="@removed" in item)
        return DeltaRound(changes=tuple(changes.values()), delta_link=final)

    def delta_pages(
        self,
        token: AccessToken,
        mailbox: str,
        *,
        delta_link: str | None,
        start: datetime,
        end: datetime,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every entry of one ``calendarView/delta`` round (those with a string id, in page order) and the
        deltaLink: from ``delta_link``, or a fresh sync of [start, end) when None. Raises DeltaExpired on 410."""
        found: list[dict[str, Any]] = []
        if delta_link is None:
            path = f"users/{quote(mailbox, safe='@')}/calendarView/delta"
            params: dict[str, str] | None = {"startDateTime": graph_time(start), "endDateTime": graph_time(end)}
        else:
            path, params = self._relative(delta_link), None
        for _ in range(MAX_DELTA_PAGES):
            try:
                raw = self.request("GET", path, token, params=params, headers={"Prefer": "odata.maxpagesize=100"})
            except GraphRequestFailed as err:
                if err.status == 410:
                    raise DeltaExpired(
                        "Microsoft Graph no longer accepts the delta link; the mailbox must be synced afresh.",
                        status=410,
                        reason="other",
                        graph_code=err.graph_code,
                    ) from err
                raise
            found += [i for i in raw.get("value") or [] if isinstance(i, dict) and isinstance(i.get("id"), str)]
            next_link, final = raw.get("@odata.nextLink"), raw.get("@odata.deltaLink")
            if isinstance(final, str) and final:
                return found, final
            if not isinstance(next_link, str) or not next_link:
                raise UpstreamUnavailable("Microsoft Graph ended a delta round without a nextLink or deltaLink.")
            path, params = self._relative(next_link), None
        raise UpstreamUnavailable(f"A delta round ran past {MAX_DELTA_PAGES} pages.")
