"""GraphClient.get_schedules and the per-call retry policy, against httpx.MockTransport.

Time is a fake monotonic clock that the injected sleep moves, so no test waits for a retry.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from shared.adapters.graph import SCHEDULE_RETRIES, GraphClient, split_window
from shared.adapters.graph_requests import BACKOFF_CAP_SECONDS, claims_challenge, mailbox_key
from shared.config import Settings
from shared.errors import GraphRequestFailed, UpstreamUnavailable
from shared.models import AccessToken, BusyBlock, FreeBusyStatus, Schedule, ScheduleStatus

TOKEN = AccessToken(token="delegated-token", tenant_id="tenant-a", scopes=("Calendars.Read",))
START = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
END = START + timedelta(days=14)
Handler = Callable[[httpx.Request], httpx.Response]


class Ticks:
    """A monotonic clock in seconds that only ``sleep`` moves; it records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def people(count: int) -> list[str]:
    return [f"person{i:03d}@contoso.example" for i in range(count)]


def body_of(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)  # type: ignore[no-any-return]


def at(value: datetime) -> dict[str, str]:
    return {"dateTime": value.astimezone(UTC).replace(tzinfo=None).isoformat() + ".0000000", "timeZone": "UTC"}


def information(address: str, items: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "scheduleId": address,
        "availabilityView": "0",
        "scheduleItems": items or [],
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "09:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": "Eastern Standard Time"},
        },
        **extra,
    }


def answer(values: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(200, json={"value": values})


def free_for_all(request: httpx.Request) -> httpx.Response:
    return answer([information(address) for address in body_of(request)["schedules"]])


def graph_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


class Recorder:
    """Wraps a handler; keeps every request (thread-safe) and the largest number in flight at once."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self.handler(request)
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture
def make_client(ticks: Ticks) -> Iterator[Callable[..., tuple[GraphClient, Recorder]]]:
    made: list[GraphClient] = []

    def make(handler: Handler, **options: Any) -> tuple[GraphClient, Recorder]:
        recorder = Recorder(handler)
        client = GraphClient(
            Settings(graph_base_url="https://graph.test/v1.0"),
            transport=httpx.MockTransport(recorder),
            sleep=ticks.sleep,
            clock=ticks,
            jitter=lambda: 0.5,
            **options,
        )
        made.append(client)
        return client, recorder

    yield make
    for client in made:
        client.close()


def by_email(schedules: list[Schedule]) -> dict[str, Schedule]:
    return {schedule.email: schedule for schedule in schedules}


# ---- chunking, windows, concurrency ---------------------------------------------------------------------
def test_45_people_go_out_as_three_requests_of_at_most_20_with_the_users_token_in_utc(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(free_for_all)
    everyone = people(45)
    schedules = client.get_schedules(TOKEN, everyone, START, END, deadline=ticks() + 20)
    assert [s.email for s in schedules] == everyone
    assert all(s.status is ScheduleStatus.OK for s in schedules)
    sent = sorted((body_of(r)["schedules"] for r in recorder.requests), key=lambda chunk: chunk[0])
    assert [len(chunk) for chunk in sent] == [20, 20, 5]
    assert [address for chunk in sent for address in chunk] == everyone
    for request in recorder.requests:
        assert request.method == "POST"
        assert request.url.path == "/v1.0/me/calendar/getSchedule"
        assert request.headers["Authorization"] == "Bearer delegated-token"
        assert request.headers["Prefer"] == 'outlook.timezone="UTC"'
        body = body_of(request)
        assert body["startTime"] == {"dateTime": "2026-12-07T05:00:00", "timeZone": "UTC"}
        assert body["endTime"] == {"dateTime": "2026-12-21T05:00:00", "timeZone": "UTC"}
    assert ticks.waits == []


def test_no_cookie_an_answer_sets_goes_out_with_a_later_call_of_another_tenant(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    def sets_a_cookie(request: httpx.Request) -> httpx.Response:
        answered = free_for_all(request)
        answered.headers["Set-Cookie"] = "affinity=tenant-a-node; Path=/; Secure; HttpOnly"
        return answered

    client, recorder = make_client(sets_a_cookie)
    other = AccessToken(token="other-tenant-token", tenant_id="tenant-b", scopes=("Calendars.Read",))
    for token in (TOKEN, other, TOKEN):
        client.get_schedules(token, people(3), START, END, deadline=ticks() + 20)
    assert len(recorder.requests) == 3
    assert all("cookie" not in request.headers for request in recorder.requests)
    with pytest.raises(TypeError):
        client._client.cookies = {"affinity": "x"}  # noqa: SLF001 (nobody can give the client a jar)


def test_repeated_addresses_are_asked_once_and_answered_in_the_order_given(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(free_for_all)
    asked = ["b@contoso.example", "a@contoso.example", "B@contoso.example"]
    schedules = client.get_schedules(TOKEN, asked, START, END, deadline=ticks() + 20)
    assert [s.email for s in schedules] == asked
    assert [body_of(r)["schedules"] for r in recorder.requests] == [["b@contoso.example", "a@contoso.example"]]


def test_six_month_window_is_split_under_62_days_and_merged_per_person(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    start, end = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 7, 5, tzinfo=UTC)
    pieces = split_window(start, end)
    boundary = pieces[0][1]
    straddling = {
        "status": "busy",
        "start": at(boundary - timedelta(hours=1)),
        "end": at(boundary + timedelta(hours=1)),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        body = body_of(request)
        window_start = datetime.fromisoformat(body["startTime"]["dateTime"]).replace(tzinfo=UTC)
        window_end = datetime.fromisoformat(body["endTime"]["dateTime"]).replace(tzinfo=UTC)
        values = []
        for address in body["schedules"]:
            items = [
                {
                    "status": "oof",
                    "start": at(window_start + timedelta(days=1)),
                    "end": at(window_start + timedelta(days=2)),
                }
            ]
            if window_start < boundary + timedelta(hours=1) and window_end > boundary - timedelta(hours=1):
                items.append(straddling)
            value = information(address, items)
            if window_start != start:  # later windows claim other hours: the first window's are kept
                value["workingHours"]["startTime"] = "06:00:00.0000000"
            values.append(value)
        return answer(values)

    client, recorder = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(25), start, end, deadline=ticks() + 20)

    assert len(pieces) == 3
    windows = sorted(
        {(body_of(r)["startTime"]["dateTime"], body_of(r)["endTime"]["dateTime"]) for r in recorder.requests}
    )
    assert len(recorder.requests) == 6  # 2 chunks x 3 windows
    assert windows[0][0] == "2026-01-05T00:00:00" and windows[-1][1] == "2026-07-05T00:00:00"
    for (_, first_end), (second_start, _) in zip(windows, windows[1:], strict=False):
        assert first_end == second_start
    for window_start, window_end in windows:
        assert datetime.fromisoformat(window_end) - datetime.fromisoformat(window_start) < timedelta(days=62)
    for schedule in schedules:
        assert schedule.status is ScheduleStatus.OK
        assert [b.status for b in schedule.busy].count(FreeBusyStatus.OOF) == 3
        assert [b.start for b in schedule.busy].count(boundary - timedelta(hours=1)) == 1  # merged once
        assert [b.start for b in schedule.busy] == sorted(b.start for b in schedule.busy)
        assert schedule.working_hours is not None and schedule.working_hours.start == time(9)


def test_eight_chunks_run_four_at_a_time_never_more(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    # Every request waits at a barrier for four: it only opens if four really are in flight together.
    barrier = threading.Barrier(4, timeout=10)

    def handler(request: httpx.Request) -> httpx.Response:
        barrier.wait()
        return free_for_all(request)

    client, recorder = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(150), START, END, deadline=ticks() + 20)
    assert len(recorder.requests) == 8
    assert recorder.max_in_flight == 4
    assert all(s.status is ScheduleStatus.OK for s in schedules)


def test_on_turn_is_called_as_each_request_has_its_turn_before_it_is_sent(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    # What the caller waits with (availability's storage read) starts once a request is about to go, not
    # before: the hook runs in the sending thread just ahead of the request, for every request and retry.
    announced = threading.local()
    lock = threading.Lock()
    turns = 0
    unannounced = 0

    def on_turn() -> None:
        nonlocal turns
        announced.pending = True
        with lock:
            turns += 1

    def handler(request: httpx.Request) -> httpx.Response:  # runs in the thread that sends (MockTransport)
        nonlocal unannounced
        with lock:
            unannounced += not getattr(announced, "pending", False)
            first = len(recorder.requests) == 1
        announced.pending = False
        return (
            graph_error(503, "ServiceUnavailable", "Busy", **{"Retry-After": "1"}) if first else free_for_all(request)
        )

    client, recorder = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(45), START, END, deadline=ticks() + 20, on_turn=on_turn)
    assert all(s.status is ScheduleStatus.OK for s in schedules)
    assert len(recorder.requests) == 4  # three chunks, one of them retried once
    assert turns == 4
    assert unannounced == 0


def test_queries_after_the_first_run_on_the_threads_it_started(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    # A thread started per query holds every other submit of the process while it starts; the client
    # keeps its threads instead. Each query's three calls meet at a barrier: three threads at once.
    barrier = threading.Barrier(3, timeout=10)

    def handler(request: httpx.Request) -> httpx.Response:
        barrier.wait()
        return free_for_all(request)

    client, _ = make_client(handler)

    def graph_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("graph")}

    before = graph_threads()
    client.get_schedules(TOKEN, people(45), START, END, deadline=ticks() + 20)
    warm = graph_threads()
    assert len(warm - before) == 3
    for _ in range(4):
        assert all(
            s.status is ScheduleStatus.OK
            for s in client.get_schedules(TOKEN, people(45), START, END, deadline=ticks() + 20)
        )
    assert graph_threads() == warm


# ---- retries -------------------------------------------------------------------------------------------
def failing_first(times: int, failure: Callable[[], httpx.Response]) -> Handler:
    count = {"n": 0}
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            count["n"] += 1
            fail = count["n"] <= times
        return failure() if fail else free_for_all(request)

    return handler


def test_429_waits_as_long_as_retry_after_says_then_reads_everyone(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    throttled = failing_first(2, lambda: graph_error(429, "TooManyRequests", "Too many", **{"Retry-After": "2.128"}))
    client, recorder = make_client(throttled)
    schedules = client.get_schedules(TOKEN, people(3), START, END, deadline=ticks() + 20)
    # Never sooner than Retry-After; jitter (0.5 here) adds up to a tenth of it.
    assert ticks.waits == pytest.approx([2.128 + 0.5 * 0.2128] * 2)
    assert min(ticks.waits) >= 2.128
    assert len(recorder.requests) == 3
    assert all(s.status is ScheduleStatus.OK for s in schedules)


def test_503_honours_retry_after_and_backs_off_with_jitter_without_it(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    answers = iter(
        [
            graph_error(503, "ServiceUnavailable", "Busy", **{"Retry-After": "3"}),
            graph_error(503, "ServiceUnavailable", "Busy"),
            graph_error(502, "BadGateway", "Gateway"),
        ]
    )
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            failure = next(answers, None)
        return failure or free_for_all(request)

    client, _ = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 20)
    # Retry-After first (plus jitter: 0.5 of a tenth of it); then backoff steps of 1 s and 2 s, each half
    # fixed and half jitter (0.5 here).
    assert ticks.waits == pytest.approx([3.0 + 0.5 * 0.3, 0.75, 1.5])
    assert all(s.status is ScheduleStatus.OK for s in schedules)


def test_throttled_past_retries_marks_only_that_chunk_throttled(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "person020@contoso.example" in body_of(request)["schedules"]:
            return graph_error(429, "TooManyRequests", "Too many", **{"Retry-After": "1"})
        return free_for_all(request)

    client, recorder = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(25), START, END, deadline=ticks() + 60)
    statuses = [(s.status, s.reason) for s in schedules]
    assert statuses[:20] == [(ScheduleStatus.OK, None)] * 20
    assert statuses[20:] == [(ScheduleStatus.UNREADABLE, "throttled")] * 5
    assert len(recorder.requests) == 1 + 1 + SCHEDULE_RETRIES  # one good chunk, the other tried 1 + retries


def test_retry_after_longer_than_the_deadline_leaves_allows_gives_up_as_throttled(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(lambda r: graph_error(429, "TooManyRequests", "Slow down", **{"Retry-After": "30"}))
    schedules = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 20)
    assert {(s.status, s.reason) for s in schedules} == {(ScheduleStatus.UNREADABLE, "throttled")}
    assert len(recorder.requests) == 1
    assert ticks.waits == []


def test_server_errors_until_the_deadline_are_reported_as_timeout(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(lambda r: graph_error(500, "InternalServerError", "Something went wrong"))
    deadline = ticks() + 5
    schedules = client.get_schedules(TOKEN, people(2), START, END, deadline=deadline)
    assert {(s.status, s.reason) for s in schedules} == {(ScheduleStatus.UNREADABLE, "timeout")}
    assert ticks.waits == [0.375, 0.75, 1.5]  # the next backoff (3.0 s) would pass the deadline
    assert ticks() < deadline and len(recorder.requests) == 4


def test_a_retry_after_that_would_pass_the_deadline_is_not_waited_for(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(lambda r: graph_error(429, "TooManyRequests", "Slow down", **{"Retry-After": "6"}))
    schedules = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 5)
    assert {(s.status, s.reason) for s in schedules} == {(ScheduleStatus.UNREADABLE, "throttled")}
    assert len(recorder.requests) == 1
    assert ticks.waits == []


def test_timeouts_are_retried_then_reported_as_timeout(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    client, recorder = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 60)
    assert {(s.status, s.reason) for s in schedules} == {(ScheduleStatus.UNREADABLE, "timeout")}
    assert len(recorder.requests) == 1 + SCHEDULE_RETRIES
    assert ticks.waits[:5] == [0.375, 0.75, 1.5, 3.0, 6.0]  # exponential, with the fixed jitter of the test
    assert len(ticks.waits) == SCHEDULE_RETRIES and max(ticks.waits) <= BACKOFF_CAP_SECONDS


def test_a_connection_error_is_retried_and_then_succeeds(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.RemoteProtocolError("connection reset", request=request)
        return free_for_all(request)

    client, _ = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(1), START, END, deadline=ticks() + 20)
    assert schedules[0].status is ScheduleStatus.OK
    assert ticks.waits == [0.375]


# ---- the deadline ----------------------------------------------------------------------------------------
def test_the_deadline_reports_only_the_people_not_yet_read_as_timeout(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    answered = threading.Semaphore(0)

    def handler(request: httpx.Request) -> httpx.Response:
        if "person040@contoso.example" not in body_of(request)["schedules"]:
            response = free_for_all(request)
            answered.release()
            return response
        # The slow chunk: once the others have answered, the deadline passes while it waits.
        assert answered.acquire(timeout=10) and answered.acquire(timeout=10)
        ticks.advance(25)
        raise httpx.ReadTimeout("timed out at the deadline", request=request)

    client, recorder = make_client(handler)
    schedules = client.get_schedules(TOKEN, people(45), START, END, deadline=ticks() + 20)
    assert all(s.status is ScheduleStatus.OK for s in schedules[:40])
    assert {(s.status, s.reason) for s in schedules[40:]} == {(ScheduleStatus.UNREADABLE, "timeout")}
    assert len(recorder.requests) == 3  # no retry once the deadline has passed


def test_a_request_that_hangs_is_abandoned_at_the_deadline(ticks: Ticks) -> None:
    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        release.wait(timeout=10)
        return free_for_all(request)

    import time as real_time

    client = GraphClient(Settings(graph_base_url="https://graph.test/v1.0"), transport=httpx.MockTransport(hang))
    try:
        schedules = client.get_schedules(TOKEN, people(30), START, END, deadline=real_time.monotonic() + 0.05)
    finally:
        release.set()
        client.close()
    assert [(s.status, s.reason) for s in schedules] == [(ScheduleStatus.UNREADABLE, "timeout")] * 30


def test_a_deadline_already_passed_sends_nothing(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(free_for_all)
    schedules = client.get_schedules(TOKEN, people(3), START, END, deadline=ticks() - 1)
    assert {(s.status, s.reason) for s in schedules} == {(ScheduleStatus.UNREADABLE, "timeout")}
    assert recorder.requests == []


# ---- errors ----------------------------------------------------------------------------------------------
def test_per_schedule_error_items_make_people_unreadable_with_a_reason(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    errors = {
        "nobody@contoso.example": ("Unable to resolve e-mail address nobody to an Active Directory object.", "5009"),
        "onprem@contoso.example": (
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            "MailboxNotEnabledForRESTAPI",
        ),
        "policy@contoso.example": ("Access to OData is disabled.", "ErrorAccessDenied"),
        "busy@contoso.example": ("The server cannot service this request right now.", "ErrorServerBusy"),
        "odd@contoso.example": ("Something else went wrong.", "ErrorFreeBusyGenerationFailed"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        values = []
        for address in body_of(request)["schedules"]:
            if address in errors:
                message, code = errors[address]
                values.append({"scheduleId": address, "error": {"message": message, "responseCode": code}})
            else:
                values.append(information(address))
        return answer(values)

    client, _ = make_client(handler)
    asked = ["alex@contoso.example", *errors]
    result = by_email(client.get_schedules(TOKEN, asked, START, END, deadline=ticks() + 20))
    assert result["alex@contoso.example"].status is ScheduleStatus.OK
    reasons = {email: (result[email].status, result[email].reason) for email in errors}
    assert reasons == {
        "nobody@contoso.example": (ScheduleStatus.UNREADABLE, "unknown"),
        "onprem@contoso.example": (ScheduleStatus.UNREADABLE, "on_premises"),
        "policy@contoso.example": (ScheduleStatus.UNREADABLE, "access_policy"),
        "busy@contoso.example": (ScheduleStatus.UNREADABLE, "throttled"),
        "odd@contoso.example": (ScheduleStatus.UNREADABLE, "other"),
    }
    assert all(result[email].busy == () and result[email].working_hours is None for email in errors)


@pytest.mark.parametrize(
    ("response", "reason", "attempts"),
    [
        (lambda: graph_error(403, "ErrorAccessDenied", "Access to OData is disabled."), "access_policy", 1),
        (lambda: graph_error(400, "ErrorInvalidParameter", "Bad"), "other", 1),
        (lambda: graph_error(500, "InternalServerError", "Oops"), "other", 1 + SCHEDULE_RETRIES),
        (lambda: httpx.Response(502, text="<html>Bad gateway</html>"), "other", 1 + SCHEDULE_RETRIES),
        (lambda: httpx.Response(200, json={"value": []}), "other", 1),
    ],
)
def test_a_failed_request_marks_its_people_unreadable_never_free(
    make_client: Callable[..., tuple[GraphClient, Recorder]],
    ticks: Ticks,
    response: Callable[[], httpx.Response],
    reason: str,
    attempts: int,
) -> None:
    client, recorder = make_client(lambda r: response())
    schedules = client.get_schedules(TOKEN, people(3), START, END, deadline=ticks() + 60)
    assert {(s.status, s.reason) for s in schedules} == {(ScheduleStatus.UNREADABLE, reason)}
    assert len(recorder.requests) == attempts


def test_a_refused_token_raises_unauthorized(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(
        lambda r: graph_error(401, "InvalidAuthenticationToken", "Access token has expired.")
    )
    with pytest.raises(GraphRequestFailed) as caught:
        client.get_schedules(TOKEN, people(45), START, END, deadline=ticks() + 20)
    assert caught.value.reason == "unauthorized"
    assert "delegated-token" not in str(caught.value)


CAE_CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}'
CAE_HEADER = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", '
    f'claims="{base64.b64encode(CAE_CLAIMS.encode()).decode()}"'
)


def test_a_refused_token_carries_graph_s_claims_challenge_decoded_and_out_of_the_details(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, _recorder = make_client(
        lambda r: graph_error(401, "InvalidAuthenticationToken", "CAE challenge", **{"WWW-Authenticate": CAE_HEADER})
    )
    with pytest.raises(GraphRequestFailed) as caught:
        client.get_schedules(TOKEN, people(3), START, END, deadline=ticks() + 20)
    assert caught.value.claims_challenge == CAE_CLAIMS
    assert caught.value.details == {}  # what reaches a client never holds it
    assert "nbf" not in str(caught.value)


@pytest.mark.parametrize(
    "header",
    [
        "",
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"',
        'Bearer error="invalid_token", claims="eyJhIjoxfQ=="',  # not a claims challenge
        'Bearer error="insufficient_claims", claims="not base64 json!"',
        'Bearer error="insufficient_claims", claims="WzFd"',  # base64 of a JSON array, not an object
    ],
)
def test_a_401_without_a_usable_claims_challenge_has_none(header: str) -> None:
    assert claims_challenge(header) is None


def test_a_claims_challenge_in_url_safe_base64_without_padding_is_read() -> None:
    encoded = base64.urlsafe_b64encode(CAE_CLAIMS.encode()).decode().rstrip("=")
    assert claims_challenge(f'Bearer error="insufficient_claims", claims="{encoded}"') == CAE_CLAIMS


# ---- parsing ---------------------------------------------------------------------------------------------
def test_busy_items_are_utc_with_subject_and_location_only_where_graph_gave_them(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    items = [
        {
            "isPrivate": False,
            "status": "busy",
            "subject": "Design review",
            "location": "Room 1",
            "start": {"dateTime": "2026-12-08T14:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-08T15:00:00.0000000", "timeZone": "UTC"},
        },
        {
            "status": "tentative",
            "start": {"dateTime": "2026-12-08T09:00:00.0000000", "timeZone": "Eastern Standard Time"},
            "end": {"dateTime": "2026-12-08T09:30:00.0000000", "timeZone": "Eastern Standard Time"},
        },
        {"status": "somethingNew", "start": at(START), "end": at(START + timedelta(minutes=5)), "location": ""},
        {"status": "workingElsewhere", "start": at(END - timedelta(hours=2)), "end": at(END)},
    ]
    client, _ = make_client(lambda r: answer([information("alex@contoso.example", items)]))
    (alex,) = client.get_schedules(TOKEN, ["alex@contoso.example"], START, END, deadline=ticks() + 20)
    assert alex.busy == (
        BusyBlock(START, START + timedelta(minutes=5), FreeBusyStatus.UNKNOWN),
        BusyBlock(
            datetime(2026, 12, 8, 14, tzinfo=UTC),
            datetime(2026, 12, 8, 14, 30, tzinfo=UTC),
            FreeBusyStatus.TENTATIVE,
        ),
        BusyBlock(
            datetime(2026, 12, 8, 14, tzinfo=UTC),
            datetime(2026, 12, 8, 15, tzinfo=UTC),
            FreeBusyStatus.BUSY,
            subject="Design review",
            location="Room 1",
        ),
        BusyBlock(END - timedelta(hours=2), END, FreeBusyStatus.WORKING_ELSEWHERE),
    )
    assert all(block.start.tzinfo is UTC for block in alex.busy)


def test_working_hours_in_windows_iana_and_custom_zones(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    zones: dict[str, dict[str, Any]] = {
        "windows@contoso.example": {"name": "Pacific Standard Time"},
        "iana@contoso.example": {"name": "Europe/Paris"},
        "custom@contoso.example": {  # the local cloud's fixture user: Sydney's rules as a custom zone
            "@odata.type": "#microsoft.graph.customTimeZone",
            "bias": -600,
            "name": "Customized Time Zone",
            "standardOffset": {
                "time": "03:00:00.0000000",
                "dayOccurrence": 1,
                "dayOfWeek": "sunday",
                "month": 4,
                "year": 0,
            },
            "daylightOffset": {
                "daylightBias": -60,
                "time": "02:00:00.0000000",
                "dayOccurrence": 1,
                "dayOfWeek": "sunday",
                "month": 10,
                "year": 0,
            },
        },
        "fixed@contoso.example": {"@odata.type": "#microsoft.graph.customTimeZone", "bias": -330, "name": "Fixed"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        values = []
        for address in body_of(request)["schedules"]:
            value = information(address)
            value["workingHours"]["timeZone"] = zones[address]
            value["workingHours"]["daysOfWeek"] = ["Monday", "friday"]
            values.append(value)
        return answer(values)

    client, _ = make_client(handler)
    result = by_email(client.get_schedules(TOKEN, list(zones), START, END, deadline=ticks() + 20))
    windows, iana, custom, fixed = (result[email] for email in zones)

    assert windows.mailbox_time_zone == "Pacific Standard Time"
    assert windows.working_hours is not None
    assert windows.working_hours.time_zone_name == "America/Los_Angeles"
    assert windows.working_hours.days == ("monday", "friday")
    assert (windows.working_hours.start, windows.working_hours.end) == (time(9), time(17))
    assert iana.working_hours is not None and iana.working_hours.time_zone_name == "Europe/Paris"
    assert iana.mailbox_time_zone == "Europe/Paris"

    assert custom.status is ScheduleStatus.OK and custom.working_hours is not None
    assert custom.mailbox_time_zone == custom.working_hours.time_zone_name == "Customized Time Zone"
    zone = custom.working_hours.time_zone
    assert datetime(2026, 12, 7, 9, tzinfo=zone).utcoffset() == timedelta(hours=11)
    assert datetime(2026, 7, 6, 9, tzinfo=zone).utcoffset() == timedelta(hours=10)
    assert fixed.working_hours is not None
    assert datetime(2026, 7, 6, 9, tzinfo=fixed.working_hours.time_zone).utcoffset() == timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda v: v["workingHours"].update(timeZone={"name": "Atlantis Standard Time"}),
        lambda v: v["workingHours"].update(startTime="9 am"),
        lambda v: v["workingHours"].update(daysOfWeek=["someday"]),
        lambda v: v.update(scheduleItems=[{"status": "busy", "start": {"dateTime": "soon", "timeZone": "UTC"}}]),
        lambda v: v.update(scheduleItems=[{"status": "busy", "start": at(START)}]),
    ],
)
def test_an_answer_that_cannot_be_read_makes_the_person_unreadable_not_free(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks, spoil: Callable[[dict[str, Any]], None]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        value = information("alex@contoso.example")
        spoil(value)
        return answer([value, information("megan@contoso.example")])

    client, _ = make_client(handler)
    alex, megan = client.get_schedules(
        TOKEN, ["alex@contoso.example", "megan@contoso.example"], START, END, deadline=ticks() + 20
    )
    assert (alex.status, alex.reason) == (ScheduleStatus.UNREADABLE, "other")
    assert megan.status is ScheduleStatus.OK


# ---- the per-call retry policy ----------------------------------------------------------------------------
def test_a_create_without_transaction_id_is_never_retried(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(lambda r: graph_error(503, "ServiceUnavailable", "Busy", **{"Retry-After": "1"}))
    with pytest.raises(GraphRequestFailed):
        client.request("POST", "me/events", TOKEN, json={"subject": "Interview"})
    assert len(recorder.requests) == 1

    def times_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    client, recorder = make_client(times_out)
    with pytest.raises(UpstreamUnavailable):
        client.request("POST", "me/events", TOKEN, json={"subject": "Interview"})
    assert len(recorder.requests) == 1
    assert ticks.waits == []


def test_a_create_with_transaction_id_is_retried(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    answers = iter([graph_error(503, "ServiceUnavailable", "Busy", **{"Retry-After": "1"})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(201, json={"id": "event-1"})

    client, recorder = make_client(handler)
    created = client.request("POST", "me/events", TOKEN, json={"subject": "Interview", "transactionId": "tx-1"})
    assert created == {"id": "event-1"}
    assert len(recorder.requests) == 2
    assert body_of(recorder.requests[0]) == body_of(recorder.requests[1])
    assert ticks.waits == [1.0 + 0.5 * 0.1]  # Retry-After and its jitter


def test_a_create_that_never_left_is_retried_without_transaction_id(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201, json={"id": "event-1"})

    client, recorder = make_client(handler)
    assert client.request("POST", "me/events", TOKEN, json={"subject": "Interview"}) == {"id": "event-1"}
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_reads_and_idempotent_writes_are_retried(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks, method: str
) -> None:
    answers = iter([graph_error(500, "InternalServerError", "Oops")])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json={"ok": True})

    client, recorder = make_client(handler)
    assert client.request(method, "me/events/1", TOKEN, json=None if method == "GET" else {}) == {"ok": True}
    assert len(recorder.requests) == 2


def test_a_caller_can_forbid_retries_of_an_otherwise_retried_call(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(lambda r: graph_error(500, "InternalServerError", "Oops"))
    with pytest.raises(GraphRequestFailed):
        client.request("PATCH", "me/events/1", TOKEN, json={}, retry_safe=False)
    assert len(recorder.requests) == 1


def test_existing_lookups_still_retry_a_throttled_read(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    answers = iter([graph_error(429, "TooManyRequests", "Too many", **{"Retry-After": "1"})])

    def handler(request: httpx.Request) -> httpx.Response:
        user = {"id": "u1", "userPrincipalName": "alex@contoso.example", "displayName": "Alex"}
        return next(answers, None) or httpx.Response(200, json=user)

    client, recorder = make_client(handler)
    assert client.get_user(TOKEN, "alex@contoso.example").user_id == "u1"
    assert len(recorder.requests) == 2
    assert ticks.waits == [1.0 + 0.5 * 0.1]  # Retry-After and its jitter


def test_retry_after_given_as_an_http_date_in_the_past_retries_at_once(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    client, recorder = make_client(
        failing_first(1, lambda: graph_error(503, "ServiceUnavailable", "x", **{"Retry-After": past}))
    )
    schedules = client.get_schedules(TOKEN, people(1), START, END, deadline=ticks() + 20)
    assert schedules[0].status is ScheduleStatus.OK
    assert ticks.waits == [0.0]


@pytest.mark.parametrize("content", [b"<html>not json</html>", b"[1, 2]"])
def test_a_success_without_a_json_object_marks_the_chunk_unreadable(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks, content: bytes
) -> None:
    client, _ = make_client(lambda r: httpx.Response(200, content=content))
    schedules = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 20)
    assert {(s.status, s.reason) for s in schedules} == {(ScheduleStatus.UNREADABLE, "other")}
    with pytest.raises(UpstreamUnavailable):
        client.request("GET", "me", TOKEN)


# ---- the worker's one limiter per mailbox ----------------------------------------------------------------
MEGAN = AccessToken(token="megan-token", tenant_id="tenant-a", scopes=("Calendars.Read",), user_id="megan-id")
ALEX = AccessToken(token="alex-token", tenant_id="tenant-a", scopes=("Calendars.Read",), user_id="alex-id")
APP = AccessToken(token="app-token", tenant_id="tenant-a", roles=("Calendars.Read",))


def until(condition: Callable[[], bool]) -> None:
    """Wait for other threads to reach a state (a bound for a broken build, not a timing)."""
    waited = threading.Event()
    for _ in range(2000):
        if condition():
            return
        waited.wait(0.005)
    raise AssertionError("the state was never reached")


def test_the_mailbox_a_request_counts_against() -> None:
    assert mailbox_key("me/calendar/getSchedule", MEGAN) == "tenant-a/megan-id"
    assert mailbox_key("/me/events/AAMk1", MEGAN) == "tenant-a/megan-id"
    assert mailbox_key("users/Alex%40Contoso.example/calendarView/delta", APP) == "tenant-a/alex@contoso.example"
    assert mailbox_key("users/u-1/events", APP) == "tenant-a/u-1"
    assert mailbox_key("users/u-1/mailboxSettings", APP) == "tenant-a/u-1"
    # Directory reads, subscriptions and batches count against no mailbox.
    for route in ("users/u-1", "users", "me", "subscriptions", "subscriptions/s-1/reauthorize", "$batch"):
        assert mailbox_key(route, APP) is None
    # Without the user's id, a delegated /me still has a key of its own, never the app's or another's.
    anonymous = mailbox_key("me/calendar/getSchedule", TOKEN)
    assert anonymous is not None and anonymous.startswith("tenant-a/") and "delegated-token" not in anonymous


def test_concurrent_queries_of_one_recruiter_share_four_in_flight(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    gate = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        gate.wait(10)
        return free_for_all(request)

    client, recorder = make_client(handler)
    results: list[list[Schedule]] = []
    queries = [
        threading.Thread(
            target=lambda: results.append(client.get_schedules(MEGAN, people(150), START, END, deadline=ticks() + 20))
        )
        for _ in range(2)
    ]
    for query in queries:
        query.start()
    # Two queries of eight requests each: four in flight, the other twelve in the mailbox's line.
    until(lambda: recorder.in_flight == 4 and client.limiter.waiting("tenant-a/megan-id") == 12)
    assert recorder.max_in_flight == 4
    gate.set()
    for query in queries:
        query.join(10)
    assert len(recorder.requests) == 16 and recorder.max_in_flight == 4
    assert [s.status for result in results for s in result] == [ScheduleStatus.OK] * 300


def test_the_mailbox_place_is_given_back_when_the_answer_begins_not_after_its_body(
    make_client: Callable[..., tuple[GraphClient, Recorder]],
) -> None:
    in_flight_while_reading: list[int] = []
    client: GraphClient | None = None

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            assert client is not None
            in_flight_while_reading.append(client.limiter.in_flight("tenant-a/megan-id"))
            yield b'{"id": "AAMk1"}'

    client, _ = make_client(lambda request: httpx.Response(200, stream=Body()))
    assert client.request("GET", "me/events/AAMk1", MEGAN) == {"id": "AAMk1"}
    assert in_flight_while_reading == [0]


def test_an_answer_whose_body_breaks_off_is_retried_like_one_that_never_came(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'{"id": '
            raise httpx.ReadError("connection reset while reading the body")

    answers = iter([httpx.Response(200, stream=Broken()), httpx.Response(200, json={"id": "AAMk1"})])
    client, recorder = make_client(lambda request: next(answers))
    assert client.request("GET", "me/events/AAMk1", MEGAN) == {"id": "AAMk1"}
    assert len(recorder.requests) == 2 and len(ticks.waits) == 1
    assert client.limiter.in_flight("tenant-a/megan-id") == 0


def test_a_query_is_read_before_a_query_of_the_same_mailbox_that_came_after_it(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    gate = threading.Event()
    answered: list[str] = []  # whose request, as each is answered
    first_of_later: list[int] = []  # how many of the earlier query's requests were answered when it began
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        later = body_of(request)["schedules"][0].startswith("later")
        with lock:
            if later and not first_of_later:
                first_of_later.append(answered.count("first"))
        gate.wait(10)
        response = free_for_all(request)
        with lock:
            answered.append("later" if later else "first")
        return response

    client, recorder = make_client(handler)
    later_people = [f"later{i:03d}@contoso.example" for i in range(150)]
    first = threading.Thread(target=lambda: client.get_schedules(MEGAN, people(150), START, END, deadline=ticks() + 20))
    first.start()
    until(lambda: recorder.in_flight == 4 and client.limiter.waiting("tenant-a/megan-id") == 4)
    later = threading.Thread(
        target=lambda: client.get_schedules(MEGAN, later_people, START, END, deadline=ticks() + 20)
    )
    later.start()
    until(lambda: client.limiter.waiting("tenant-a/megan-id") == 12)
    gate.set()
    first.join(10)
    later.join(10)
    assert len(answered) == 16
    # The earlier query's last four waited in its reserved places, ahead of the later query: the later
    # one's first request went only when a fifth slot freed, after the earlier one's last was let in.
    assert first_of_later and first_of_later[0] >= 5


def test_a_big_query_reserves_only_as_many_places_as_it_has_threads(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    from shared.adapters.graph_limiter import MailboxLimiter

    gate = threading.Event()
    order: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        whose = "later" if body_of(request)["schedules"][0].startswith("later") else "big"
        order.append(whose)
        if len(order) == 1:
            gate.wait(10)  # the big query's first call holds the mailbox until the later query is in line
        return free_for_all(request)

    limiter = MailboxLimiter(capacity=1, clock=ticks, sleep=ticks.sleep)
    client, _ = make_client(handler, limiter=limiter, query_threads=2)
    big = threading.Thread(target=lambda: client.get_schedules(MEGAN, people(100), START, END, deadline=ticks() + 20))
    big.start()
    until(lambda: limiter.waiting("tenant-a/megan-id") == 1)  # its second reserved call waits
    small = threading.Thread(
        target=lambda: client.get_schedules(MEGAN, ["later@contoso.example"], START, END, deadline=ticks() + 20)
    )
    small.start()
    until(lambda: limiter.waiting("tenant-a/megan-id") == 2)
    gate.set()
    big.join(10)
    small.join(10)
    # Two places reserved (two threads): the later query goes after them, before the big one's other three.
    assert order == ["big", "big", "later", "big", "big", "big"]


def test_one_recruiters_full_mailbox_never_holds_up_another(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    megan_waits = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer megan-token":
            megan_waits.wait(10)
        return free_for_all(request)

    client, recorder = make_client(handler)
    megan: list[list[Schedule]] = []
    thread = threading.Thread(
        target=lambda: megan.append(client.get_schedules(MEGAN, people(150), START, END, deadline=ticks() + 20))
    )
    thread.start()
    until(lambda: client.limiter.in_flight("tenant-a/megan-id") == 4)
    # Megan's mailbox is full and her requests hang; Alex's query is read in full meanwhile.
    alex = client.get_schedules(ALEX, people(150), START, END, deadline=ticks() + 20)
    assert [s.status for s in alex] == [ScheduleStatus.OK] * 150
    assert client.limiter.in_flight("tenant-a/megan-id") == 4 and not megan
    megan_waits.set()
    thread.join(10)
    assert [s.status for s in megan[0]] == [ScheduleStatus.OK] * 150


def test_a_429_is_learned_by_every_later_request_to_that_mailbox(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if len(recorder.requests) == 1:
            return graph_error(429, "ApplicationThrottled", "MailboxConcurrency", **{"Retry-After": "30"})
        return free_for_all(request)

    client, recorder = make_client(handler)
    first = client.get_schedules(MEGAN, people(3), START, END, deadline=ticks() + 20)
    assert {(s.status, s.reason) for s in first} == {(ScheduleStatus.UNREADABLE, "throttled")}
    # The next query of the same mailbox does not discover the 429 on its own: it sends nothing, and
    # its people are unreadable (throttled), never free.
    second = client.get_schedules(MEGAN, people(3), START, END, deadline=ticks() + 20)
    assert {(s.status, s.reason) for s in second} == {(ScheduleStatus.UNREADABLE, "throttled")}
    assert len(recorder.requests) == 1
    # Another mailbox is not affected, and once Retry-After has passed the mailbox is open again.
    assert {s.status for s in client.get_schedules(ALEX, people(3), START, END, deadline=ticks() + 20)} == {
        ScheduleStatus.OK
    }
    ticks.advance(31)
    assert {s.status for s in client.get_schedules(MEGAN, people(3), START, END, deadline=ticks() + 20)} == {
        ScheduleStatus.OK
    }
    assert ticks.waits == []


def test_a_query_waiting_in_the_line_past_its_deadline_reports_timeout_never_free(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    client, recorder = make_client(free_for_all)
    held = [client.limiter.acquire("tenant-a/megan-id", ticks() + 600) for _ in range(4)]
    result: list[list[Schedule]] = []
    thread = threading.Thread(
        target=lambda: result.append(client.get_schedules(MEGAN, people(3), START, END, deadline=ticks() + 5))
    )
    thread.start()
    until(lambda: client.limiter.waiting("tenant-a/megan-id") == 1)
    ticks.advance(6)
    client.limiter.release(held[0])  # the slot frees after the waiter's deadline: it gives up
    thread.join(10)
    assert {(s.status, s.reason) for s in result[0]} == {(ScheduleStatus.UNREADABLE, "timeout")}
    assert recorder.requests == []


# ---- the same answer, the same schedule ------------------------------------------------------------------
def test_an_unchanged_calendar_read_again_is_the_same_schedule_object(
    make_client: Callable[..., tuple[GraphClient, Recorder]], ticks: Ticks
) -> None:
    meeting = {"status": "busy", "start": at(START + timedelta(hours=1)), "end": at(START + timedelta(hours=2))}
    moved = {**meeting, "end": at(START + timedelta(hours=3))}
    calendar = {"person000@contoso.example": [meeting]}

    def handler(request: httpx.Request) -> httpx.Response:
        return answer([information(a, calendar.get(a.lower(), [])) for a in body_of(request)["schedules"]])

    client, _ = make_client(handler)
    first = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 20)
    again = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 20)
    assert [a is b for a, b in zip(first, again, strict=True)] == [True, True]
    # Another spelling of the same address: an equal schedule under the address as asked.
    shouted = client.get_schedules(TOKEN, ["PERSON000@contoso.example"], START, END, deadline=ticks() + 20)
    assert shouted[0].email == "PERSON000@contoso.example" and shouted[0].busy == first[0].busy
    calendar["person000@contoso.example"] = [moved]  # the calendar changed: a new schedule, read anew
    changed = client.get_schedules(TOKEN, people(2), START, END, deadline=ticks() + 20)
    assert changed[0] is not first[0] and changed[0].busy[0].end == START + timedelta(hours=3)
    assert changed[1] is first[1]


def test_the_schedule_reader_keeps_what_each_answer_said_and_bounds_what_it_holds() -> None:
    from shared.adapters.graph_schedules import ScheduleReader

    reader = ScheduleReader(max_blocks=2 * (1 + ScheduleReader.PER_SCHEDULE))  # two one-block schedules
    plain = {"status": "busy", "start": at(START), "end": at(START + timedelta(hours=1))}
    detailed = {**plain, "subject": "Board meeting", "location": "Room 1"}
    seen_plain = reader.read("a@contoso.example", information("a@contoso.example", [plain]))
    seen_detailed = reader.read("a@contoso.example", information("a@contoso.example", [detailed]))
    # Whoever's answer showed no subject gets none: the two texts are two schedules.
    assert seen_plain.busy[0].subject is None and seen_detailed.busy[0].subject == "Board meeting"
    assert reader.read("a@contoso.example", information("a@contoso.example", [plain])) is seen_plain
    reader.read("c@contoso.example", information("c@contoso.example", [plain]))  # a third: the oldest goes
    assert len(reader) == 2
    assert reader.read("a@contoso.example", information("a@contoso.example", [detailed])) is not seen_detailed
    odd = {"scheduleId": "b@contoso.example", "scheduleItems": [], "extra": object()}  # not JSON: never kept
    assert reader.read("b@contoso.example", odd).status is ScheduleStatus.OK and len(reader) == 2


def test_an_answer_read_before_byte_for_byte_is_not_parsed_again() -> None:
    from shared.adapters.graph_schedules import ScheduleReader

    reader = ScheduleReader()
    parsed: list[str] = []
    original = reader.read

    def counting(email: str, raw: dict[str, Any]) -> Schedule:
        parsed.append(email)
        return original(email, raw)

    reader.read = counting  # type: ignore[method-assign]
    chunk = ["a@contoso.example", "b@contoso.example"]
    meeting = {"status": "busy", "start": at(START), "end": at(START + timedelta(hours=1))}
    body = json.dumps({"value": [information(chunk[0], [meeting]), information(chunk[1])]}).encode()
    first = reader.read_answer(chunk, body)
    assert reader.read_answer(chunk, body) == first and all(
        a is b for a, b in zip(reader.read_answer(chunk, body), first, strict=True)
    )
    assert parsed == chunk  # parsed once
    # The same bytes asked for under other addresses are another answer: matched to those addresses.
    other = reader.read_answer(["B@contoso.example", "A@contoso.example"], body)
    assert [s.email for s in other] == ["B@contoso.example", "A@contoso.example"]
    assert other[1].busy == first[0].busy and not other[0].busy
    # One byte different: parsed again; the person whose item did not change is still the same object.
    changed = body.replace(b'"status": "busy"', b'"status": "oof"')
    again = reader.read_answer(chunk, changed)
    assert again[0].busy[0].status is FreeBusyStatus.OOF and again[1] is first[1]
    # Not a JSON object: the caller marks the chunk unreadable (nothing is kept for it).
    with pytest.raises(UpstreamUnavailable):
        reader.read_answer(chunk, b"[]")
