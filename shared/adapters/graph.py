"""Microsoft Graph over httpx: one client per worker, explicit timeouts, retries decided per call.

Graph's error JSON is read here and turned into ``NotFound`` or ``GraphRequestFailed`` with a
``reason``; raw Graph JSON goes no further. Retries: reads and idempotent writes may retry; a POST
that could create something retries only when the caller says it is safe (a read over POST such
as getSchedule, or a body that carries a ``transactionId``). 429 and 503 honour ``Retry-After``
(capped); other 5xx, timeouts and connection errors back off exponentially with jitter. A request
that never left (connection refused, no pooled connection) may always be retried.

Every request that targets a mailbox first takes a place in the worker's one ``MailboxLimiter``
(``graph_limiter``): at most four in flight per mailbox across every request the worker serves,
first come first served, each bounded by its deadline. A 429 shuts that mailbox's window for the
whole worker until Retry-After (plus a little jitter, so instances do not come back together) has
passed; the retry waits for the window in the line, in the place it had.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import time as clock_time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

import httpx

from shared.adapters.graph_busy import GraphBusyMixin
from shared.adapters.graph_events import GraphEventsMixin
from shared.adapters.graph_limiter import MAILBOX_CONCURRENCY, LimiterTimeout, MailboxLimiter, Waiter
from shared.adapters.graph_mail import GraphMailMixin
from shared.config import Settings
from shared.errors import GraphRequestFailed, NotFound, UpstreamUnavailable
from shared.models import (
    AccessToken,
    BusyBlock,
    DirectoryUser,
    FreeBusyStatus,
    MailboxHours,
    MailboxPurpose,
    Schedule,
    ScheduleStatus,
    WorkingHours,
)
from shared.timezones import (
    WEEKDAYS,
    CustomTimeZone,
    TransitionRule,
    custom_time_zone,
    resolve_time_zone,
    time_zone_key,
)

logger = logging.getLogger(__name__)

ON_PREMISES_CODES = frozenset({"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"})
ON_PREMISES_MARKERS = ("on premises", "on-premise", "hybrid", "REST API is not yet supported")
USER_SELECT = "id,userPrincipalName,displayName,mail"

# Retry policy. PATCH counts as idempotent: Graph's PATCH sets the properties it names, so sending
# it twice leaves the same state. A caller that appends or counts passes retry_safe=False.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_STATUSES = frozenset({429, 503})  # "A suggested wait time is returned in the response header"
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# Retry-After is a floor ("Wait the number of seconds specified"): jitter only adds, up to this share of
# it (capped), so that instances throttled together do not all come back at the same instant.
RETRY_AFTER_JITTER_SHARE = 0.1
RETRY_AFTER_JITTER_CAP_SECONDS = 1.0
MAX_SHUT_SECONDS = 300.0  # the longest a 429 may shut a mailbox's window in this worker
# Outlook's resources under /me or /users/{id}: a request to one of them counts against that mailbox's
# four concurrent requests. The documentation names the limit per "app ID and mailbox" without listing
# resources; these are the mailbox's own (calendar, mail, settings), not the directory's (/users/{id}).
MAILBOX_RESOURCES = frozenset(
    {
        "calendar",
        "calendars",
        "calendarview",
        "calendargroups",
        "events",
        "mailboxsettings",
        "messages",
        "mailfolders",
        "sendmail",
        "findmeetingtimes",
        "reminderview",
        "contacts",
        "contactfolders",
        "outlook",
    }
)

# getSchedule limits, from Microsoft's free/busy concept page: "up to 20 entities at once", "The time
# period to look up must be less than 62 days", and Outlook's "Four concurrent requests" per mailbox
# (every getSchedule runs against the signed-in user's own mailbox).
SCHEDULES_PER_REQUEST = 20
WINDOW_PER_REQUEST = timedelta(days=61)
MAX_IN_FLIGHT = MAILBOX_CONCURRENCY  # one query's own share of its mailbox, also the size of its pool
SCHEDULE_RETRIES = 8  # a storm of 429s is ridden out; the query's deadline bounds it as well
SCHEDULE_PATH = "me/calendar/getSchedule"
SCHEDULE_REASONS = frozenset({"throttled", "access_policy", "on_premises"})  # passed through; else "other"
# Per-schedule error items. Graph documents only that it "returns a single schedule item and indicates
# the error"; the codes below are those the local cloud answers ("5009": address not resolved) plus
# Exchange's own names for the same conditions. Messages are read only where no code is distinct.
UNKNOWN_ADDRESS_CODES = frozenset(
    {
        "5009",
        "ErrorMailRecipientNotFound",
        "ErrorInvalidSmtpAddress",
        "ErrorNonExistentMailbox",
        "ErrorInvalidRecipients",
    }
)
UNKNOWN_ADDRESS_MARKERS = ("unable to resolve", "not found in the directory", "could not be resolved")
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
THROTTLED_CODES = frozenset({"TooManyRequests", "ErrorServerBusy", "ApplicationThrottled"})
TIMEOUT_CODES = frozenset({"ErrorTimeoutExpired", "ErrorRequestTimeout"})
# One ``name="value"`` parameter of a WWW-Authenticate challenge (RFC 9110 auth-param, quoted form).
CHALLENGE_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*"([^"]*)"')
TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d{1,7})?)?")


def classify(status: int, code: str, message: str) -> str:
    """Map a Graph error to a GraphRequestFailed reason. Codes first; messages only where the
    documentation gives no distinct code (the application access policy and on-premises cases)."""
    if status == 429 or code in {"TooManyRequests", "ApplicationThrottled"}:
        return "throttled"
    if code in ON_PREMISES_CODES or any(m.lower() in message.lower() for m in ON_PREMISES_MARKERS):
        return "on_premises"
    if status == 403 and "Access to OData is disabled" in message:
        return "access_policy"
    if status == 403:
        return "forbidden"
    if status == 401:
        return "unauthorized"
    if status >= 500:
        return "unavailable"
    return "other"


def claims_challenge(header: str) -> str | None:
    """The claims request of a 401's ``WWW-Authenticate`` claims challenge (Entra's "Claims challenges,
    claims requests and client capabilities": ``Bearer ..., error="insufficient_claims",
    claims="<base64 JSON>"``), decoded to the JSON text MSAL's ``claims_challenge`` takes; None when the
    header carries none or it is not base64 of a JSON object."""
    params = {k.lower(): v for k, v in CHALLENGE_PARAM.findall(header)}
    if params.get("error") != "insufficient_claims" or not params.get("claims"):
        return None
    raw = params["claims"].strip()
    try:
        text = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if "-" in raw or "_" in raw else None)
        decoded = text.decode("utf-8")
        value = json.loads(decoded)
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(value, dict) else None


class _TimedOut(UpstreamUnavailable):
    """Graph did not answer in time, or the caller's deadline passed before it could."""


def _not_before_retry_after(response: httpx.Response) -> float | None:
    """Seconds from the ``Retry-After`` header (delta-seconds, possibly fractional, or an HTTP date)."""
    header = response.headers.get("Retry-After", "").strip()
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


class GraphClient(GraphEventsMixin, GraphBusyMixin, GraphMailMixin):
    """GraphGateway over httpx.

    ``clock`` (a ``time.monotonic``-like function), ``sleep`` and ``jitter`` (a ``random.random``-like
    function) are injectable so retries and deadlines can be tested without waiting.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 2,
        max_retry_after: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        max_in_flight: int = MAX_IN_FLIGHT,
        limiter: MailboxLimiter | None = None,
    ) -> None:
        self._timeout = settings.http_timeout_seconds
        self._client = httpx.Client(
            base_url=settings.graph_base_url + "/",
            timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._max_in_flight = max_in_flight
        # One per worker: the composition root builds one GraphClient per process.
        self._limiter = limiter if limiter is not None else MailboxLimiter(clock=clock, sleep=sleep)

    @property
    def limiter(self) -> MailboxLimiter:
        return self._limiter

    def close(self) -> None:
        self._client.close()

    # ---- transport -----------------------------------------------------------------------------
    @staticmethod
    def may_retry(method: str, body: Any) -> bool:
        """The default retry decision: reads and idempotent writes, and POSTs that carry a
        ``transactionId`` (Graph uses it to avoid creating the same event twice)."""
        method = method.upper()
        if method in IDEMPOTENT_METHODS:
            return True
        return method == "POST" and isinstance(body, dict) and bool(body.get("transactionId"))

    def request(
        self,
        method: str,
        path: str,
        token: AccessToken,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        retry_safe: bool | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """Send one Graph call and return its JSON body ({} when empty).

        ``retry_safe`` overrides the default decision (``may_retry``); ``deadline`` (a ``clock()``
        value) bounds every attempt and every wait. Raises NotFound, GraphRequestFailed, or
        UpstreamUnavailable when Graph did not answer."""
        retryable = self.may_retry(method, json) if retry_safe is None else retry_safe
        limit = self._max_retries if max_retries is None else max_retries
        all_headers = {"Authorization": f"Bearer {token.token}", **(headers or {})}
        route = path.split("?")[0]
        mailbox = mailbox_key(route, token)
        attempt = 0
        ticket: int | None = None  # a retry keeps its place in the mailbox's line
        while True:
            place = self._take_place(mailbox, deadline, ticket)
            ticket = place.ticket if place is not None else None
            try:
                response = self._client.request(
                    method,
                    path.lstrip("/"),
                    params=params,
                    json=json,
                    headers=all_headers,
                    timeout=self._attempt_timeout(deadline),
                )
            except httpx.RequestError as err:
                wait_for = self._wait_after_failure(
                    err, method, route, retryable=retryable, attempt=attempt, limit=limit, deadline=deadline
                )
                attempt += 1
                self._free(place)
                self._sleep(wait_for)
                continue
            finally:
                self._free(place)
            if response.status_code < 400:
                return self._body(response)
            self._wait_after_refusal(
                response, method, route, mailbox, retryable=retryable, attempt=attempt, limit=limit, deadline=deadline
            )
            attempt += 1

    def _wait_after_failure(
        self,
        err: httpx.RequestError,
        method: str,
        route: str,
        *,
        retryable: bool,
        attempt: int,
        limit: int,
        deadline: float | None,
    ) -> float:
        """How long to wait before retrying a request Graph never answered. Raises _TimedOut or
        UpstreamUnavailable when no retry is due, or when the deadline comes first."""
        # A request that never left cannot have created anything: retry it whatever the method.
        transient = isinstance(err, httpx.TransportError)
        cut = False  # a retry was due, but the deadline comes first
        if transient and (retryable or isinstance(err, NOT_SENT_ERRORS)) and attempt < limit:
            wait_for = self._backoff(attempt)
            if self._fits(wait_for, deadline):
                logger.info("Graph %s %s failed (%s); retry in %.2f s", method, route, type(err).__name__, wait_for)
                return wait_for
            cut = True
        if cut or isinstance(err, httpx.TimeoutException) or self._passed(deadline):
            raise _TimedOut(f"Microsoft Graph did not answer in time ({type(err).__name__}).") from err
        raise UpstreamUnavailable(f"Microsoft Graph did not answer ({type(err).__name__}).") from err

    def _wait_after_refusal(
        self,
        response: httpx.Response,
        method: str,
        route: str,
        mailbox: str | None,
        *,
        retryable: bool,
        attempt: int,
        limit: int,
        deadline: float | None,
    ) -> None:
        """Wait out a transient error answer before the next attempt. Raises the answer as our error when no
        retry is due; _TimedOut when the deadline, not Graph, ends the retries."""
        transient = response.status_code in TRANSIENT_STATUSES
        wait_for = self._retry_wait(response, attempt) if transient else 0.0
        # A 429 is learned for the whole worker: nobody sends to this mailbox before Retry-After has passed.
        shuts = response.status_code == 429 and mailbox is not None
        # Honouring Retry-After means not coming back sooner: a longer wait than we allow ends it.
        due = retryable and transient and attempt < limit and wait_for <= self._max_retry_after
        if due and self._fits(wait_for, deadline):
            logger.info("Graph answered %s for %s %s; retry in %.2f s", response.status_code, method, route, wait_for)
            if shuts and mailbox is not None:
                self._limiter.sit_out(mailbox, wait_for)  # shut for all, slept out here
            else:
                self._sleep(wait_for)
            return
        if shuts and mailbox is not None:
            self._limiter.shut(mailbox, self._clock() + min(wait_for, MAX_SHUT_SECONDS))
        if due and response.status_code != 429:
            # The deadline, not Graph, ends the retries (a 429 stays "throttled": it says why).
            raise _TimedOut(f"Microsoft Graph answered HTTP {response.status_code} until the deadline.") from (
                self._error(response)
            )
        raise self._error(response)

    def _take_place(self, mailbox: str | None, deadline: float | None, ticket: int | None) -> Waiter | None:
        """Wait for a turn on the mailbox (none for requests that target no mailbox). A waiter with no
        deadline of its own waits at most the client's timeout."""
        if mailbox is None:
            return None
        queue_deadline = deadline if deadline is not None else self._clock() + self._timeout
        try:
            return self._limiter.acquire(mailbox, queue_deadline, ticket=ticket)
        except LimiterTimeout as err:
            if err.throttled:
                raise GraphRequestFailed(
                    "Microsoft Graph throttled the mailbox past the deadline.",
                    status=429,
                    reason="throttled",
                    graph_code="TooManyRequests",
                ) from err
            raise _TimedOut("The deadline passed while waiting for the mailbox.") from err

    def _free(self, place: Waiter | None) -> None:
        if place is not None:
            self._limiter.release(place)  # a second release of the same place does nothing

    @staticmethod
    def _body(response: httpx.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise UpstreamUnavailable(f"Microsoft Graph answered HTTP {response.status_code} without a JSON object.")
        return body

    def _attempt_timeout(self, deadline: float | None) -> httpx.Timeout | None:
        """The client's timeouts, shortened so that no attempt outlives the deadline."""
        if deadline is None:
            return None
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _TimedOut("The deadline for Microsoft Graph passed.")
        return httpx.Timeout(min(self._timeout, remaining), connect=min(5.0, remaining))

    def _passed(self, deadline: float | None) -> bool:
        return deadline is not None and self._clock() >= deadline

    def _fits(self, wait_for: float, deadline: float | None) -> bool:
        return deadline is None or self._clock() + wait_for < deadline

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half the step fixed, half random."""
        step = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0**attempt)
        return step / 2 + self._jitter() * step / 2

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float:
        if response.status_code in RETRY_AFTER_STATUSES:
            suggested = _not_before_retry_after(response)
            if suggested is not None:
                spread = min(RETRY_AFTER_JITTER_CAP_SECONDS, RETRY_AFTER_JITTER_SHARE * suggested)
                return suggested + self._jitter() * spread
        return self._backoff(attempt)

    @staticmethod
    def _error(response: httpx.Response) -> Exception:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        if response.status_code == 404 and code not in ON_PREMISES_CODES and "REST API" not in message:
            return NotFound("Microsoft Graph has no such user or item.", graph_code=code)
        reason = classify(response.status_code, code, message)
        claims = claims_challenge(response.headers.get("WWW-Authenticate", "")) if response.status_code == 401 else None
        return GraphRequestFailed(
            f"Microsoft Graph answered HTTP {response.status_code} ({code or 'no code'}).",
            status=response.status_code,
            reason=reason,
            graph_code=code,
            claims_challenge=claims,
            retry_after=_not_before_retry_after(response) if response.status_code in RETRY_AFTER_STATUSES else None,
        )

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
        return _hours_from(source)

    # ---- free/busy -------------------------------------------------------------------------------
    def get_schedules(
        self, token: AccessToken, emails: Sequence[str], start: datetime, end: datetime, *, deadline: float
    ) -> list[Schedule]:
        """See GraphGateway.get_schedules. Chunks run on a small thread pool over the one
        ``httpx.Client`` (its connection pool is thread-safe), so the synchronous core gets
        concurrency without a second event loop or a second pool; at most ``max_in_flight``
        requests run at once because all of them count against the caller's own mailbox."""
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
        pool = ThreadPoolExecutor(max_workers=min(self._max_in_flight, len(jobs)), thread_name_prefix="graph")
        futures: list[Future[list[Schedule]]] = [
            pool.submit(self._read_chunk, token, chunk, window, deadline) for window, chunk in jobs
        ]
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
            pool.shutdown(wait=False, cancel_futures=True)
        per_window: dict[datetime, dict[str, Schedule]] = {window[0]: {} for window in windows}
        for (window, chunk), future in zip(jobs, futures, strict=True):
            if future.done() and not future.cancelled():
                got = future.result()  # raises the refused token that arrived as the deadline passed
            else:
                got = [_unreadable(email, "timeout") for email in chunk]
            per_window[window[0]].update((schedule.email.lower(), schedule) for schedule in got)
        merged = {
            key: _merge([per_window[window[0]][key] for window in windows])
            for key in (email.lower() for email in people)
        }
        result = [replace(merged[email.lower()], email=email) for email in emails]
        unreadable = sum(1 for schedule in merged.values() if schedule.status is ScheduleStatus.UNREADABLE)
        logger.info("getSchedule: %d people, %d requests, %d unreadable", len(people), len(jobs), unreadable)
        return result

    def _read_chunk(
        self, token: AccessToken, chunk: list[str], window: tuple[datetime, datetime], deadline: float
    ) -> list[Schedule]:
        """One getSchedule call; every outcome but a refused token becomes one Schedule per address."""
        body = {
            "schedules": chunk,
            "startTime": {"dateTime": _graph_datetime(window[0]), "timeZone": "UTC"},
            "endTime": {"dateTime": _graph_datetime(window[1]), "timeZone": "UTC"},
            "availabilityViewInterval": 1440,  # the view string is not used; keep it short
        }
        try:
            raw = self.request(
                "POST",
                SCHEDULE_PATH,
                token,
                json=body,
                headers={"Prefer": 'outlook.timezone="UTC"'},
                retry_safe=True,  # a read over POST: nothing is created
                deadline=deadline,
                max_retries=SCHEDULE_RETRIES,
            )
        except GraphRequestFailed as err:
            if err.token_refused:
                raise
            reason = err.reason if err.reason in SCHEDULE_REASONS else "other"
            logger.warning("getSchedule failed for %d people: HTTP %s (%s)", len(chunk), err.status, err.reason)
            return [_unreadable(email, reason) for email in chunk]
        except _TimedOut:
            return [_unreadable(email, "timeout") for email in chunk]
        except (NotFound, UpstreamUnavailable) as err:
            logger.warning("getSchedule failed for %d people: %s", len(chunk), err.message)
            return [_unreadable(email, "other") for email in chunk]
        values = raw.get("value")
        items = [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []
        by_id = {str(item.get("scheduleId", "")).lower(): item for item in items}
        positional = len(items) == len(chunk)
        schedules: list[Schedule] = []
        for index, email in enumerate(chunk):
            item = by_id.get(email.lower()) or (items[index] if positional else None)
            schedules.append(parse_schedule(email, item) if item is not None else _unreadable(email, "other"))
        return schedules


# ---- which mailbox a request counts against -----------------------------------------------------------
def mailbox_key(route: str, token: AccessToken) -> str | None:
    """The limiter's key for the mailbox a request counts against, or None (directory, subscriptions,
    $batch). ``/me/...`` is the signed-in user's own mailbox (getSchedule counts there, whoever it
    reads); ``/users/{id}/...`` is that mailbox. Keys hold the tenant: ids repeat across tenants.
    The same mailbox named by address and by object id gets two keys (nothing here maps one to the
    other); the 429 path covers that case."""
    parts = [part for part in route.strip("/").split("/") if part]
    if len(parts) >= 2 and parts[0].lower() == "me" and parts[1].lower() in MAILBOX_RESOURCES:
        if token.user_id:
            return f"{token.tenant_id}/{token.user_id.lower()}"
        return f"{token.tenant_id}/me-" + hashlib.sha256(token.token.encode()).hexdigest()[:16]
    if len(parts) >= 3 and parts[0].lower() == "users" and parts[2].lower() in MAILBOX_RESOURCES:
        return f"{token.tenant_id}/{unquote(parts[1]).lower()}"
    return None


# ---- getSchedule parsing (module level: pure, tested directly) -----------------------------------------
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


def _unreadable(email: str, reason: str) -> Schedule:
    return Schedule(email=email, status=ScheduleStatus.UNREADABLE, reason=reason)


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


def item_error_reason(error: dict[str, Any]) -> str:
    """The unreadable reason for a per-schedule error item (``{"message", "responseCode"}``)."""
    code = str(error.get("responseCode") or error.get("code") or "")
    message = str(error.get("message") or "").lower()
    if code in UNKNOWN_ADDRESS_CODES or any(marker in message for marker in UNKNOWN_ADDRESS_MARKERS):
        return "unknown"
    if code in THROTTLED_CODES:
        return "throttled"
    if code in TIMEOUT_CODES:
        return "timeout"
    reason = classify(0, code, str(error.get("message") or ""))
    if reason in {"on_premises"}:
        return reason
    if "access to odata is disabled" in message:
        return "access_policy"
    return "other"


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


def parse_schedule(email: str, raw: dict[str, Any]) -> Schedule:
    """One scheduleInformation. Anything it cannot read makes the person unreadable, never free."""
    error = raw.get("error")
    if isinstance(error, dict):
        return _unreadable(email, item_error_reason(error))
    try:
        items = raw.get("scheduleItems") or []
        if not isinstance(items, list):
            raise ValueError("scheduleItems is not a list")
        busy = tuple(sorted((_busy_block(item) for item in items), key=lambda b: (b.start, b.end)))
        hours_raw = raw.get("workingHours")
        working_hours, zone_name = _working_hours(hours_raw) if isinstance(hours_raw, dict) else (None, None)
    except (ValueError, TypeError, KeyError) as err:  # UnknownTimeZone is a ValueError
        logger.warning("getSchedule answer for one person could not be read: %s", err)
        return _unreadable(email, "other")
    return Schedule(email=email, mailbox_time_zone=zone_name, working_hours=working_hours, busy=busy)


def _busy_block(item: Any) -> BusyBlock:
    if not isinstance(item, dict):
        raise ValueError("a scheduleItem is not an object")
    start, end = _instant(item["start"]), _instant(item["end"])
    if end < start:
        raise ValueError("a scheduleItem ends before it starts")
    try:
        status = FreeBusyStatus(str(item.get("status", "")))
    except ValueError:
        status = FreeBusyStatus.UNKNOWN
    return BusyBlock(
        start=start, end=end, status=status, subject=_text(item, "subject"), location=_text(item, "location")
    )


def _text(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) and value else None


def _instant(value: Any) -> datetime:
    """A dateTimeTimeZone as an aware UTC datetime (the zone is UTC when the Prefer header was honoured)."""
    if not isinstance(value, dict):
        raise ValueError("a dateTimeTimeZone is not an object")
    return _parse_instant(str(value["dateTime"]), str(value.get("timeZone") or "UTC"))


@functools.lru_cache(maxsize=8192)
def _parse_instant(text: str, zone_name: str) -> datetime:
    # Free/busy answers repeat the same instants (series, shared meetings, whole days): parse each once.
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=resolve_time_zone(zone_name))
    return moment.astimezone(UTC)


def _time_of_day(value: Any) -> clock_time:
    match = TIME_OF_DAY.fullmatch(str(value))
    if match is None:
        raise ValueError(f"not a time of day: {str(value)[:20]!r}")
    return clock_time(int(match[1]), int(match[2]), int(match[3] or 0))


def _working_hours(raw: dict[str, Any]) -> tuple[WorkingHours, str]:
    days = raw.get("daysOfWeek") or []
    if not isinstance(days, list) or any(str(day).lower() not in WEEKDAYS for day in days):
        raise ValueError("daysOfWeek holds something other than day names")
    zone_raw = raw.get("timeZone")
    if not isinstance(zone_raw, dict):
        raise ValueError("workingHours has no timeZone")
    zone_name = str(zone_raw.get("name") or "")
    zone: tzinfo
    if "bias" in zone_raw or str(zone_raw.get("@odata.type", "")).endswith("customTimeZone"):
        zone = _custom_zone(zone_raw)
    else:
        zone = resolve_time_zone(zone_name)
    hours = WorkingHours(
        days=tuple(str(day).lower() for day in days),
        start=_time_of_day(raw.get("startTime")),
        end=_time_of_day(raw.get("endTime")),
        time_zone=zone,
        time_zone_name=time_zone_key(zone),
    )
    return hours, zone_name or hours.time_zone_name


@functools.lru_cache(maxsize=4096)
def _hours_from(source: str) -> MailboxHours:
    """Working hours from the compact ``workingHours`` JSON the cache keeps, read by the same parser as
    getSchedule's (what it cannot read there makes the person unreadable; here it raises ValueError)."""
    raw = json.loads(source) if source else {}
    if not isinstance(raw, dict):
        raise ValueError("kept working hours are not an object")
    if not raw:  # the mailbox has no working hours (getSchedule then carries none either)
        return MailboxHours(working_hours=None, time_zone=None, source=source)
    try:
        hours, zone_name = _working_hours(raw)
    except (KeyError, TypeError) as err:
        raise ValueError("kept working hours could not be read") from err
    return MailboxHours(working_hours=hours, time_zone=zone_name, source=source)


def _transition(raw: Any) -> TransitionRule | None:
    """A standardOffset/daylightOffset; month 0 (or absent) means the zone has no such change.

    ``year`` is documented only as how often the change happens, "0 means every year"; no other value
    is described, so every rule is applied yearly."""
    if not isinstance(raw, dict) or not raw.get("month"):
        return None
    return TransitionRule(
        month=int(raw["month"]),
        occurrence=int(raw["dayOccurrence"]),
        weekday=str(raw["dayOfWeek"]).lower(),
        at=_time_of_day(raw.get("time") or "00:00"),
    )


def _custom_zone(raw: dict[str, Any]) -> CustomTimeZone:
    # Windows' sign convention (UTC = local + bias), which the documentation's own example follows
    # ("bias 300, daylightBias -100": daylight time is "+300-100=200"); see shared/timezones.py.
    standard, daylight = _transition(raw.get("standardOffset")), _transition(raw.get("daylightOffset"))
    daylight_raw = raw.get("daylightOffset")
    daylight_bias = int(daylight_raw.get("daylightBias") or 0) if isinstance(daylight_raw, dict) else 0
    if standard is None or daylight is None:
        standard = daylight = None
    return custom_time_zone(
        str(raw.get("name") or ""),
        int(raw.get("bias") or 0),
        standard=standard,
        daylight=daylight,
        daylight_bias_minutes=daylight_bias,
    )
