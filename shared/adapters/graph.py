"""Microsoft Graph over httpx: the client the composition root builds, one per worker.

``GraphClient`` is the facade: the directory, mailbox purposes, the calendar probe, working hours and
getSchedule here; events, subscriptions and delta, the busy cache's reads and mail in its mixins
(``graph_events``, ``graph_subscriptions``, ``graph_busy``, ``graph_mail``). Every call goes through
the one request loop in ``graph_requests`` (retries, Retry-After, deadlines, the per-mailbox limiter,
Graph's errors translated); getSchedule's answers are read in ``graph_schedules``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from shared.adapters.graph_busy import GraphBusyMixin
from shared.adapters.graph_events import GraphEventsMixin
from shared.adapters.graph_mail import GraphMailMixin
from shared.adapters.graph_requests import TimedOut, classify
from shared.adapters.graph_schedules import ScheduleReader, hours_from, unreadable_schedule
from shared.errors import GraphRequestFailed, NotFound, UpstreamUnavailable
from shared.models import AccessToken, DirectoryUser, MailboxHours, MailboxPurpose, Schedule, ScheduleStatus
from shared.threads import in_lanes

logger = logging.getLogger(__name__)

USER_SELECT = "id,userPrincipalName,displayName,mail"

# getSchedule limits, from Microsoft's free/busy concept page: "up to 20 entities at once", "The time
# period to look up must be less than 62 days", and Outlook's "Four concurrent requests" per mailbox
# (every getSchedule runs against the signed-in user's own mailbox).
SCHEDULES_PER_REQUEST = 20
WINDOW_PER_REQUEST = timedelta(days=61)
SCHEDULE_RETRIES = 8  # a storm of 429s is ridden out; the query's deadline bounds it as well
SCHEDULE_PATH = "me/calendar/getSchedule"
SCHEDULE_REASONS = frozenset({"throttled", "access_policy", "on_premises"})  # passed through; else "other"
# JSON batching: "combining multiple requests (up to 20) into a single JSON object".
BATCH_LIMIT = 20
# mailboxSettings userPurpose values Graph documents (user, linked, shared, room, equipment, others);
# "unknownFutureValue" and anything newer read as "others".
PURPOSES = {
    p.value: p
    for p in (
        MailboxPurpose.USER,
        MailboxPurpose.LINKED,
        MailboxPurpose.SHARED,
        MailboxPurpose.ROOM,
        MailboxPurpose.EQUIPMENT,
        MailboxPurpose.OTHERS,
    )
}


class GraphClient(GraphEventsMixin, GraphBusyMixin, GraphMailMixin):
    """GraphGateway over httpx (the request loop, its options and its injectable clock are
    ``GraphRequests``'s)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schedules = ScheduleReader()  # one per worker, as the client is

    # ---- calls ---------------------------------------------------------------------------------
    @staticmethod
    def _user(raw: dict[str, Any]) -> DirectoryUser:
        return DirectoryUser(
            user_id=str(raw.get("id", "")),
            user_principal_name=str(raw.get("userPrincipalName", "")),
            display_name=str(raw.get("displayName") or ""),
            mail=raw.get("mail"),
        )

    def get_user(self, token: AccessToken, user: str) -> DirectoryUser:
        raw = self.request("GET", f"users/{quote(user, safe='@')}", token, params={"$select": USER_SELECT})
        return self._user(raw)

    def list_users(self, token: AccessToken, *, top: int) -> list[DirectoryUser]:
        raw = self.request("GET", "users", token, params={"$select": USER_SELECT, "$top": str(top)})
        return [self._user(u) for u in raw.get("value", [])]

    def mailbox_purposes(self, token: AccessToken, addresses: Sequence[str]) -> dict[str, MailboxPurpose]:
        """See GraphGateway.mailbox_purposes: ``GET /users/{address}/mailboxSettings/userPurpose`` (the
        documented single-setting read, MailboxSettings.Read) for each address, 20 to a ``$batch``."""
        people = list(dict.fromkeys(address.lower() for address in addresses))
        found: dict[str, MailboxPurpose] = {}
        for i in range(0, len(people), BATCH_LIMIT):
            found.update(self._purposes_batch(token, people[i : i + BATCH_LIMIT]))
        return found

    def _purposes_batch(self, token: AccessToken, chunk: list[str]) -> dict[str, MailboxPurpose]:
        by_request = {str(n): address for n, address in enumerate(chunk, start=1)}
        body = {
            "requests": [
                {"id": rid, "method": "GET", "url": f"/users/{quote(address, safe='@')}/mailboxSettings/userPurpose"}
                for rid, address in by_request.items()
            ]
        }
        found = dict.fromkeys(chunk, MailboxPurpose.UNKNOWN)  # an answer that never comes is unknown
        try:
            raw = self.request("POST", "$batch", token, json=body, retry_safe=True)  # reads only
        except GraphRequestFailed as err:
            if err.token_refused:
                raise
            logger.warning("Graph $batch of %d mailbox purposes failed: HTTP %s", len(chunk), err.status)
            return found
        except (NotFound, UpstreamUnavailable) as err:
            logger.warning("Graph $batch of %d mailbox purposes failed: %s", len(chunk), err.message)
            return found
        for item in raw.get("responses") or []:
            if isinstance(item, dict) and str(item.get("id")) in by_request:
                inner = item.get("body")
                found[by_request[str(item["id"])]] = purpose_of(
                    int(item.get("status") or 0), inner if isinstance(inner, dict) else {}
                )
        return found

    def probe_calendar(self, token: AccessToken, mailbox: str | None) -> None:
        start = datetime.now(UTC).replace(microsecond=0)
        params = {
            "startDateTime": start.isoformat().replace("+00:00", "Z"),
            "endDateTime": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "$top": "1",
            "$select": "id",
        }
        path = "me/calendarView" if mailbox is None else f"users/{quote(mailbox, safe='@')}/calendarView"
        self.request("GET", path, token, params=params)

    # ---- working hours for the busy cache ---------------------------------------------------------
    def mailbox_hours(self, token: AccessToken, mailbox: str) -> MailboxHours:
        """See GraphGateway.mailbox_hours: ``GET /users/{id}/mailboxSettings/workingHours`` (the documented
        single-setting read, MailboxSettings.Read), read exactly as getSchedule's ``workingHours``."""
        raw = self.request("GET", f"users/{quote(mailbox, safe='@')}/mailboxSettings/workingHours", token)
        kept = {k: raw[k] for k in ("daysOfWeek", "startTime", "endTime", "timeZone") if k in raw}
        return self.mailbox_hours_from(json.dumps(kept, separators=(",", ":"), sort_keys=True))

    def mailbox_hours_from(self, source: str) -> MailboxHours:
        return hours_from(source)

    # ---- free/busy -------------------------------------------------------------------------------
    def get_schedules(
        self,
        token: AccessToken,
        emails: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        deadline: float,
        on_turn: Callable[[], None] | None = None,
    ) -> list[Schedule]:
        """See GraphGateway.get_schedules. Chunks run on the client's kept threads over the one
        ``httpx.Client`` (its connection pool is thread-safe), at most ``QUERY_THREADS`` at once for one
        query, so the synchronous core gets concurrency without a second event loop or a second pool.
        All of them count against the caller's own mailbox: the worker's limiter lets four run at once
        and keeps the rest in line, in the places this query reserved when it arrived."""
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise ValueError("get_schedules needs an aware window with end after start.")
        first_spelling: dict[str, str] = {}
        for email in emails:
            first_spelling.setdefault(email.lower(), email)
        people = list(first_spelling.values())
        if not people:
            return []
        windows = split_window(start.astimezone(UTC), end.astimezone(UTC))
        chunks = [people[i : i + SCHEDULES_PER_REQUEST] for i in range(0, len(people), SCHEDULES_PER_REQUEST)]
        jobs = [(window, chunk) for window in windows for chunk in chunks]  # first window first everywhere
        # The query's places in the mailbox's line, taken now for as many calls as it has threads: they go
        # before a later query's, which so waits at most QUERY_THREADS / 4 round trips behind this one;
        # calls beyond them (a 6-month window of 200 people is 40) take their place when they are sent.
        reserved = self._limiter.reserve(min(len(jobs), self._query_threads))
        places: list[int | None] = [*reserved, *([None] * (len(jobs) - len(reserved)))]
        futures: list[Future[list[Schedule]]] = in_lanes(
            self._calls,
            [
                functools.partial(self._read_chunk, token, chunk, window, deadline, place, on_turn)
                for (window, chunk), place in zip(jobs, places, strict=True)
            ],
            self._query_threads,
        )
        try:
            pending: set[Future[list[Schedule]]] = set(futures)
            while pending:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                done, pending = wait(pending, timeout=remaining, return_when=FIRST_EXCEPTION)
                for future in done:
                    failure = future.exception()
                    if failure is not None:
                        raise failure  # the token itself was refused: nothing else is worth waiting for
        finally:
            # Queued chunks are dropped; one still in flight ends by its own deadline-bound timeout.
            for future in futures:
                future.cancel()
        per_window: dict[datetime, dict[str, Schedule]] = {window[0]: {} for window in windows}
        for (window, chunk), future in zip(jobs, futures, strict=True):
            if future.done() and not future.cancelled():
                got = future.result()  # raises the refused token that arrived as the deadline passed
            else:
                got = [unreadable_schedule(email, "timeout") for email in chunk]
            per_window[window[0]].update((schedule.email.lower(), schedule) for schedule in got)
        merged = {
            key: _merge([per_window[window[0]][key] for window in windows])
            for key in (email.lower() for email in people)
        }
        # As asked: the same object when the spelling is the one read (what is derived from it stays remembered).
        result = [s if (s := merged[email.lower()]).email == email else replace(s, email=email) for email in emails]
        unreadable = sum(1 for schedule in merged.values() if schedule.status is ScheduleStatus.UNREADABLE)
        logger.info("getSchedule: %d people, %d requests, %d unreadable", len(people), len(jobs), unreadable)
        return result

    def _read_chunk(
        self,
        token: AccessToken,
        chunk: list[str],
        window: tuple[datetime, datetime],
        deadline: float,
        place: int | None = None,
        on_turn: Callable[[], None] | None = None,
    ) -> list[Schedule]:
        """One getSchedule call; every outcome but a refused token becomes one Schedule per address."""
        body = {
            "schedules": chunk,
            "startTime": {"dateTime": _graph_datetime(window[0]), "timeZone": "UTC"},
            "endTime": {"dateTime": _graph_datetime(window[1]), "timeZone": "UTC"},
            "availabilityViewInterval": 1440,  # the view string is not used; keep it short
        }
        try:
            content = self._exchange(
                "POST",
                SCHEDULE_PATH,
                token,
                json=body,
                headers={"Prefer": 'outlook.timezone="UTC"'},
                retry_safe=True,  # a read over POST: nothing is created
                deadline=deadline,
                max_retries=SCHEDULE_RETRIES,
                place=place,
                on_turn=on_turn,
            ).content
            return self._schedules.read_answer(chunk, content)
        except GraphRequestFailed as err:
            if err.token_refused:
                raise
            reason = err.reason if err.reason in SCHEDULE_REASONS else "other"
            logger.warning("getSchedule failed for %d people: HTTP %s (%s)", len(chunk), err.status, err.reason)
            return [unreadable_schedule(email, reason) for email in chunk]
        except TimedOut:
            return [unreadable_schedule(email, "timeout") for email in chunk]
        except (NotFound, UpstreamUnavailable) as err:
            logger.warning("getSchedule failed for %d people: %s", len(chunk), err.message)
            return [unreadable_schedule(email, "other") for email in chunk]


# ---- getSchedule's windows and answers, mailbox purposes (module level: pure, tested directly) ---------
def split_window(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) in consecutive pieces that getSchedule accepts (each shorter than 62 days)."""
    pieces: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        stop = min(cursor + WINDOW_PER_REQUEST, end)
        pieces.append((cursor, stop))
        cursor = stop
    return pieces


def _graph_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _merge(parts: list[Schedule]) -> Schedule:
    """One person's schedule over several windows: unreadable if any window was; working hours and
    zone from the first window; busy blocks in time order, a block that straddles two windows once."""
    for part in parts:
        if part.status is ScheduleStatus.UNREADABLE:
            return part
    first = parts[0]
    if len(parts) == 1:
        return first
    blocks = dict.fromkeys(block for part in parts for block in part.busy)
    return replace(first, busy=tuple(sorted(blocks, key=lambda b: (b.start, b.end))))


def purpose_of(status: int, body: dict[str, Any]) -> MailboxPurpose:
    """One batched userPurpose answer. Only a documented value is a purpose; an error is read by its code:
    the tenant has nobody at the address (404), Graph will not open the mailbox for the app (an
    application access policy, on premises), or anything else: unknown, never assumed."""
    if 200 <= status < 300:
        value = body.get("value")
        if not isinstance(value, str) or not value:
            return MailboxPurpose.UNKNOWN
        return PURPOSES.get(value, MailboxPurpose.OTHERS)
    raw_error = body.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    reason = classify(status, str(error.get("code", "")), str(error.get("message", "")))
    if reason in {"access_policy", "on_premises"}:
        return MailboxPurpose.UNREACHABLE
    if status == 404:
        return MailboxPurpose.NOT_IN_TENANT
    return MailboxPurpose.UNKNOWN
