"""How every Graph request is sent: the one request loop the Graph client and its mixins call.

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
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict, Unpack
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from shared.adapters.graph_limiter import LimiterTimeout, MailboxLimiter, Waiter
from shared.config import WORKER_THREADS, Settings
from shared.errors import GraphRequestFailed, NotFound, UpstreamUnavailable
from shared.models import AccessToken

logger = logging.getLogger(__name__)

ON_PREMISES_CODES = frozenset({"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"})
ON_PREMISES_MARKERS = ("on premises", "on-premise", "hybrid", "REST API is not yet supported")

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
# Threads one query's getSchedule calls run on. The mailbox's limiter keeps four in flight; the rest of a
# query's calls wait in the mailbox's line from the start, each in the place the query reserved on arrival,
# so a slot that frees goes to the query that came first (a call that waited for a pool thread would enter
# the line only when one of its query's calls came back, behind every query that arrived meanwhile).
QUERY_THREADS = 16
# One ``name="value"`` parameter of a WWW-Authenticate challenge (RFC 9110 auth-param, quoted form).
CHALLENGE_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*"([^"]*)"')


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


def unreadable_answer(what: str, err: Exception) -> GraphRequestFailed:
    """The error for a successful answer that holds ``what`` ("an event", "a message") in a shape this
    adapter cannot read: raise it ``from err``."""
    return GraphRequestFailed(
        f"Microsoft Graph answered {what} that could not be read ({type(err).__name__}).", status=200, reason="other"
    )


class TimedOut(UpstreamUnavailable):
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


class CallOptions(TypedDict, total=False):
    """What one Graph call may say besides its method, path and token (``GraphRequests.request``)."""

    params: dict[str, str] | None
    json: Any
    headers: dict[str, str] | None
    retry_safe: bool | None
    deadline: float | None
    max_retries: int | None
    place: int | None
    on_turn: Callable[[], None] | None  # called each time the call has its turn, just before it is sent


class _NoCookies(httpx.Cookies):
    """An empty jar that stays empty: Set-Cookie in an answer is not read, no Cookie header is sent."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _GraphHTTP(httpx.Client):
    """The ``httpx.Client`` Graph is called with: it keeps no cookies. Graph authenticates every call by
    its bearer token alone, and one client serves every tenant and user of the worker, whereas httpx keeps
    what any answer sets and sends it with every later request to that host: a cookie set in one
    tenant's answer would go out with another tenant's calls. Not reading Set-Cookie also spares every
    call the cookie jar's work (about a tenth of a getSchedule call's CPU in the worker)."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("The Graph client keeps no cookies.")


class GraphRequests:
    """The request loop over one ``httpx.Client``: the base of ``GraphClient`` and its mixins, which
    build paths and bodies and read the answers.

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
        query_threads: int = QUERY_THREADS,
        limiter: MailboxLimiter | None = None,
    ) -> None:
        self._timeout = settings.http_timeout_seconds
        self._client = _GraphHTTP(
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
        self._query_threads = query_threads
        # One per worker: the composition root builds one GraphClient per process.
        self._limiter = limiter if limiter is not None else MailboxLimiter(clock=clock, sleep=sleep)
        # The threads queries' calls run on (``shared.threads.in_lanes``), kept from one query to the next:
        # enough for every invocation the worker runs at once to have all of its lanes.
        self._calls = ThreadPoolExecutor(max_workers=WORKER_THREADS * query_threads, thread_name_prefix="graph")

    @property
    def limiter(self) -> MailboxLimiter:
        return self._limiter

    def close(self) -> None:
        self._calls.shutdown(wait=False, cancel_futures=True)
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

    def request(self, method: str, path: str, token: AccessToken, **options: Unpack[CallOptions]) -> dict[str, Any]:
        """Send one Graph call and return its JSON body ({} when empty).

        ``retry_safe`` overrides the default decision (``may_retry``); ``deadline`` (a ``clock()``
        value) bounds every attempt and every wait; ``place`` is a place in the mailbox's line reserved
        for this request (``MailboxLimiter.reserve``), else it takes the next. Raises NotFound, GraphRequestFailed, or
        UpstreamUnavailable when Graph did not answer."""
        return self._body(self._exchange(method, path, token, **options))

    def _exchange(
        self,
        method: str,
        path: str,
        token: AccessToken,
        **options: Unpack[CallOptions],
    ) -> httpx.Response:
        """The request loop of ``request``: Graph's first answer below 400, after the retries that were due
        (for the mixins that read the body themselves, as getSchedule's reader does)."""
        params, json, deadline = options.get("params"), options.get("json"), options.get("deadline")
        retry_safe, max_retries = options.get("retry_safe"), options.get("max_retries")
        retryable = self.may_retry(method, json) if retry_safe is None else retry_safe
        limit = self._max_retries if max_retries is None else max_retries
        all_headers = {"Authorization": f"Bearer {token.token}", **(options.get("headers") or {})}
        route = path.split("?")[0]
        mailbox = mailbox_key(route, token)
        attempt = 0
        ticket = options.get("place")  # a retry keeps its place in the mailbox's line
        on_turn = options.get("on_turn")
        while True:
            turn = self._take_place(mailbox, deadline, ticket)
            ticket = turn.ticket if turn is not None else None
            if on_turn is not None:
                on_turn()
            try:
                response = self._send(
                    method, path, params=params, json=json, headers=all_headers, deadline=deadline, turn=turn
                )
            except httpx.RequestError as err:
                wait_for = self._wait_after_failure(
                    err, method, route, retryable=retryable, attempt=attempt, limit=limit, deadline=deadline
                )
                attempt += 1
                self._sleep(wait_for)
                continue
            if response.status_code < 400:
                return response
            self._wait_after_refusal(
                response, method, route, mailbox, retryable=retryable, attempt=attempt, limit=limit, deadline=deadline
            )
            attempt += 1

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        json: Any,
        headers: dict[str, str],
        deadline: float | None,
        turn: Waiter | None,
    ) -> httpx.Response:
        """One attempt, its body read. The mailbox's place is given back as soon as Graph's answer begins
        (status and headers): Graph has done the work by then, and reading a large body (a getSchedule
        answer for 20 people) does not occupy the mailbox, so the next request in line goes meanwhile."""
        try:
            request = self._client.build_request(
                method,
                path.lstrip("/"),
                params=params,
                json=json,
                headers=headers,
                timeout=self._attempt_timeout(deadline),
            )
            response = self._client.send(request, stream=True)
        finally:
            self._free(turn)
        try:
            response.read()
        finally:
            response.close()
        return response

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
        """How long to wait before retrying a request Graph never answered. Raises TimedOut or
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
            raise TimedOut(f"Microsoft Graph did not answer in time ({type(err).__name__}).") from err
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
        retry is due; TimedOut when the deadline, not Graph, ends the retries."""
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
            raise TimedOut(f"Microsoft Graph answered HTTP {response.status_code} until the deadline.") from (
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
            raise TimedOut("The deadline passed while waiting for the mailbox.") from err

    def _free(self, place: Waiter | None) -> None:
        if place is not None:
            self._limiter.release(place)  # a second release of the same place does nothing

    @staticmethod
    def _body(response: httpx.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = orjson.loads(response.content)  # a getSchedule answer is large: several times json's speed
        except ValueError:  # orjson.JSONDecodeError is one
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
            raise TimedOut("The deadline for Microsoft Graph passed.")
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

    def _relative(self, link: str) -> str:
        """A nextLink/deltaLink relative to the client's base URL (it carries its own query string)."""
        base = str(self._client.base_url)
        if link.startswith(base):
            return link[len(base) :]
        parts = urlsplit(link)
        base_parts = urlsplit(base)
        if (parts.scheme, parts.netloc) != (base_parts.scheme, base_parts.netloc):
            raise ValueError("A Graph link points away from the Graph base URL.")
        path = parts.path
        if path.startswith(base_parts.path):
            path = path[len(base_parts.path) :]
        return path.lstrip("/") + (f"?{parts.query}" if parts.query else "")


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
