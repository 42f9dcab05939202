"""The warm busy cache end to end: the local host, Azurite and the local Microsoft cloud.

The differential test: after random changes made through the cloud's controls (create, move, delete,
accept, decline, private, all-day, recurring, out of office) and once their notifications have settled,
every warm answer (each interviewer from the cache) has the slots of a live answer (``"freshness":
"live"``), query by query. The default run asks ``--busy-cache-queries`` (40) random queries; the full run
is ``pytest tests/e2e/test_busy_cache.py --busy-cache-queries=1000`` (panels up to 100, windows up to
14 days, random buffers and notice). Also: a change in Outlook reaches the warm answer through the
notification, the queue and the worker; a lost notification heals at the next delta round; a cache whose
storage is down answers live; the health view counts warm and cold interviewers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest

from devtools.cloud import notify
from devtools.cloud.graph import controls as graph
from devtools.cloud.graph import store
from devtools.cloud.graph.load import seed_schedule_load
from shared.bootstrap import Container, get_container, set_container
from shared.cache import keeper, reader
from shared.errors import UpstreamUnavailable
from tests.e2e.conftest import Stack
from tests.kit import CONTOSO, CONTOSO_ADMIN, KEY, RECRUITER, browser_sign_in, consent, stack_today

pytestmark = pytest.mark.e2e

T = TypeVar("T")
WAIT_SECONDS = 120.0  # a full suite run keeps the worker busy; each wait returns as soon as it holds
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Pacific Standard Time"]
SHOWS = ["busy", "busy", "tentative", "oof", "workingElsewhere", "free"]


def wait_for(what: str, fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = WAIT_SECONDS) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}; last seen: {value!r}")
        time.sleep(0.1)


def next_monday() -> date:
    """The Monday after next: at least eight days ahead, so every window the tests ask starts far enough
    from now for any minimum notice they pick (on a Sunday evening the next Monday is an hour away)."""
    today = stack_today()
    return today + timedelta(days=14 - today.weekday())


@pytest.fixture
def recruiter(e2e: Stack) -> Iterator[Any]:
    keeper.forget_worker_memory()
    reader.forget_worker_memory()
    consent(e2e)
    yield browser_sign_in(e2e, RECRUITER)
    keeper.forget_worker_memory()
    reader.forget_worker_memory()


def ask(browser: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = browser.request("POST", "/api/availability", headers=KEY, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def day_window(day: date, days: int = 1) -> dict[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}


def is_settled(record: Any, since: datetime | None) -> bool:
    """A round completed after the last mark, and (when ``since``) the mark came after ``since``."""
    if record is None or record.synced_at is None:
        return False
    if record.notified_at is not None and record.notified_at >= record.synced_at:
        return False
    return since is None or (record.notified_at is not None and record.notified_at >= since)


def records() -> dict[str, Any]:
    return {p.person: p for p in get_container().busy.list_people(CONTOSO)}


def warm_up(browser: Any, people: list[str], day: date) -> None:
    """First sight answers live and queues the people; the worker subscribes and syncs them."""
    first = ask(browser, {"interviewers": people, **day_window(day), "duration_minutes": 30})
    assert {p["source"] for p in first["interviewers"]} == {"live"}
    wait_for(
        "every interviewer warm",
        records,
        lambda found: all(is_settled(found.get(p.lower()), None) for p in people),
        timeout=max(WAIT_SECONDS, 2.0 * len(people)),
    )


class Changes:
    """Random changes through the cloud's controls, remembering when each mailbox last changed."""

    def __init__(self, stack: Stack, people: list[str], monday: date, rng: random.Random) -> None:
        self.world = stack.world
        self.people = people
        self.monday = monday
        self.rng = rng
        self.singles: list[str] = []
        self.meetings: list[tuple[str, list[str]]] = []
        self.series: list[str] = []
        self.changed: dict[str, datetime] = {}
        self.kinds: dict[str, int] = {}
        self._seq = store.graph_state(self.world).seq

    def _when(self) -> tuple[datetime, datetime]:
        day = self.monday + timedelta(days=self.rng.randint(-2, 20))
        start = datetime(
            day.year, day.month, day.day, self.rng.randint(5, 21), self.rng.choice([0, 15, 30]), tzinfo=UTC
        )
        return start, start + timedelta(minutes=self.rng.choice([30, 60, 90, 150]))

    @staticmethod
    def _at(moment: datetime) -> dict[str, str]:
        return {"dateTime": moment.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}

    def _note(self, kind: str) -> None:
        state = store.graph_state(self.world)
        with self.world.lock:
            fresh = [c for c in state.changes if c.seq > self._seq]
            self._seq = state.seq
            mailboxes = {self.world.users[c.mailbox_id].mail.lower() for c in fresh if c.mailbox_id in self.world.users}
        now = get_container().clock.now()
        for mailbox in mailboxes:
            self.changed[mailbox] = now
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def one(self) -> None:
        rng = self.rng
        kind = rng.choice(
            ["single", "single", "meeting", "move", "delete", "respond", "series", "series_move", "allday"]
        )
        if kind == "move" and self.singles:
            event_id = rng.choice(self.singles)
            start, end = self._when()
            graph.move_event(self.world, event_id, start, end)
        elif kind == "delete" and self.singles:
            graph.delete_event(self.world, self.singles.pop(rng.randrange(len(self.singles))))
        elif kind == "respond" and self.meetings:
            event_id, attendees = rng.choice(self.meetings)
            graph.respond(
                self.world, event_id, rng.choice(attendees), rng.choice(["accepted", "declined", "tentativelyAccepted"])
            )
        elif kind == "series_move" and self.series:
            start, end = self._when()
            graph.move_event(self.world, rng.choice(self.series), start, end)
        elif kind == "series":
            start, end = self._when()
            body = {
                "subject": "Series",
                "start": self._at(start),
                "end": self._at(end),
                "showAs": rng.choice(SHOWS[:4]),
                "recurrence": {
                    "pattern": {"type": "daily", "interval": rng.choice([1, 2])},
                    "range": {
                        "type": "numbered",
                        "startDate": start.date().isoformat(),
                        "numberOfOccurrences": rng.randint(2, 6),
                    },
                },
            }
            self.series.append(graph.add_event(self.world, rng.choice(self.people), body).id)
        elif kind == "allday":
            day = self.monday + timedelta(days=rng.randint(-1, 18))
            body = {
                "subject": "Away",
                "isAllDay": True,
                "showAs": rng.choice(["oof", "busy", "free"]),
                "start": {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": "UTC"},
                "end": {
                    "dateTime": f"{(day + timedelta(days=rng.randint(1, 2))).isoformat()}T00:00:00",
                    "timeZone": "UTC",
                },
            }
            self.singles.append(graph.add_event(self.world, rng.choice(self.people), body).id)
        elif kind == "meeting":
            organizer, *attendees = rng.sample(self.people, rng.randint(2, 4))
            start, end = self._when()
            body = {
                "subject": "Meeting",
                "start": self._at(start),
                "end": self._at(end),
                "showAs": rng.choice(SHOWS[:4]),
                "attendees": [{"emailAddress": {"address": a}, "type": "required"} for a in attendees],
            }
            self.meetings.append((graph.add_event(self.world, organizer, body).id, attendees))
        else:
            kind = "single"
            start, end = self._when()
            body = {
                "subject": "Private" if rng.random() < 0.3 else "Single",
                "start": self._at(start),
                "end": self._at(end),
                "showAs": rng.choice(SHOWS),
                "sensitivity": "private" if rng.random() < 0.3 else "normal",
            }
            self.singles.append(graph.add_event(self.world, rng.choice(self.people), body).id)
        self._note(kind)

    def settle(self) -> None:
        """Every notification delivered now; wait until each changed person's mark has a round after it."""
        notify.flush_notifications(self.world)
        wanted = {p: t for p, t in self.changed.items() if p in {x.lower() for x in self.people}}
        wait_for(
            f"{len(wanted)} changed interviewers synced after their notifications",
            records,
            lambda found: all(is_settled(found.get(p), t) for p, t in wanted.items()),
        )
        self.changed.clear()


def random_query(rng: random.Random, people: list[str], monday: date) -> dict[str, Any]:
    size = min(len(people), rng.choice([1, 2, 3, 5, 8, 13, 20, 40, 70, 100]))
    panel = rng.sample(people, size)
    start = monday + timedelta(days=rng.randint(0, 10))
    # The notice must end before the window: where "now + notice" falls inside it, two answers asked a moment
    # apart may differ by the slot that moment crossed, whatever their source.
    ahead = datetime(start.year, start.month, start.day, tzinfo=UTC) - get_container().clock.now()
    notices = [n for n in (0, 60, 24 * 60, 3 * 24 * 60) if timedelta(minutes=n + 90) < ahead]
    return {
        "interviewers": [{"email": p, "required": i == 0 or rng.random() < 0.8} for i, p in enumerate(panel)],
        **day_window(start, rng.randint(1, 14)),
        "duration_minutes": rng.choice([30, 45, 60, 90]),
        "interval_minutes": rng.choice([15, 30, 60]),
        "buffer_before_minutes": rng.choice([0, 0, 5, 10, 15, 30]),
        "buffer_after_minutes": rng.choice([0, 0, 5, 10, 15, 30]),
        "minimum_notice_minutes": rng.choice(notices),
        "time_zone": rng.choice(ZONES),
        "tentative_is_busy": rng.random() < 0.7,
        "working_hours": rng.random() < 0.8,
    }


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the source: the slots, their count, the next page, the explanation, and each
    interviewer's status, hours and busy blocks (free ones and titles aside: the cache keeps neither)."""
    return {
        "slots": answer["slots"],
        "total_slots": answer["total_slots"],
        "next": answer["next"],
        "explanation": answer["explanation"],
        "interviewers": [
            {
                "email": p["email"],
                "status": p["status"],
                "time_zone": p["time_zone"],
                "working_hours": p["working_hours"],
                "busy": sorted((b["start"], b["end"], b["status"]) for b in p["busy"] if b["status"] != "free"),
                "load": p["load"],
            }
            for p in answer["interviewers"]
        ],
    }


def test_warm_answers_equal_live_answers_after_random_changes(
    recruiter: Any, e2e: Stack, request: pytest.FixtureRequest
) -> None:
    queries: int = request.config.getoption("--busy-cache-queries")
    full = queries >= 1000
    rng = random.Random(20261206 + queries)
    monday = next_monday()
    people = seed_schedule_load(e2e.world, "contoso.example", count=100 if full else 16, monday=monday, prefix="diff")
    warm_up(recruiter, people, monday)
    changes = Changes(e2e, people, monday, rng)
    rounds = max(4, queries // 100)
    per_round = queries // rounds
    compared = 0
    for index in range(rounds):
        for _ in range(8 if full else 6):
            changes.one()
        changes.settle()
        if index:
            keeper.run_rounds(get_container())  # the delta timer: keeps everyone inside the freshness bound
        ask(recruiter, {"interviewers": people, **day_window(monday), "duration_minutes": 30})  # fills memory
        for _ in range(per_round + (queries - per_round * rounds if index == rounds - 1 else 0)):
            body = random_query(rng, people, monday)
            warm = ask(recruiter, body)
            assert {p["source"] for p in warm["interviewers"]} == {"cache"}, body
            assert all(b["subject"] is None for p in warm["interviewers"] for b in p["busy"])
            live = ask(recruiter, {**body, "freshness": "live"})
            assert {p["source"] for p in live["interviewers"]} == {"live"}
            assert comparable(warm) == comparable(live), body
            compared += 1
    assert compared == queries
    assert {"single", "meeting"} <= set(changes.kinds)


def test_a_change_in_outlook_reaches_the_warm_answer_and_a_lost_notification_heals_at_the_next_round(
    recruiter: Any, e2e: Stack
) -> None:
    monday = next_monday()
    people = seed_schedule_load(e2e.world, "contoso.example", count=2, monday=monday, prefix="fresh")
    warm_up(recruiter, people, monday)
    day = monday + timedelta(days=2)  # a Wednesday: the seeded calendars leave 13:00-14:00 UTC free
    body = {
        "interviewers": [people[0]],
        **day_window(day),
        "duration_minutes": 60,
        "interval_minutes": 60,
        "working_hours": False,
        "time_zone": "UTC",
    }
    before = ask(recruiter, body)
    assert before["interviewers"][0]["source"] == "cache"
    starts = {s["start"] for s in before["slots"]}
    hour = next(h for h in (13, 2, 3, 4) if datetime(day.year, day.month, day.day, h, tzinfo=UTC).isoformat() in starts)
    taken = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    began = time.monotonic()
    graph.add_event(
        e2e.world,
        people[0],
        {"subject": "New", "start": Changes._at(taken), "end": Changes._at(taken + timedelta(hours=1))},
    )
    after = wait_for(
        "the new meeting in the warm answer",
        lambda: ask(recruiter, body),
        lambda a: (
            a["interviewers"][0]["source"] == "cache" and taken.isoformat() not in {s["start"] for s in a["slots"]}
        ),
    )
    print(f"notification to warm answer: {time.monotonic() - began:.2f} s")
    assert after["interviewers"][0]["busy"]
    # A notification that never arrives: the answer stays as it was until the next delta round heals it.
    notify.stop_delivery(e2e.world)
    try:
        lost = taken + timedelta(hours=1)
        graph.add_event(
            e2e.world,
            people[0],
            {"subject": "Lost", "start": Changes._at(lost), "end": Changes._at(lost + timedelta(hours=1))},
        )
        with e2e.world.lock:
            notify.state(e2e.world).pending.clear()
        keeper.run_rounds(get_container())
        healed = ask(recruiter, body)
        assert healed["interviewers"][0]["source"] == "cache"
        assert lost.isoformat() not in {s["start"] for s in healed["slots"]}
        assert healed["slots"] == ask(recruiter, {**body, "freshness": "live"})["slots"]
    finally:
        notify.start_delivery(e2e.world)


class DownBusyCache:
    """A busy cache whose storage does not answer."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise UpstreamUnavailable("storage is down")

        return fail


def test_a_cache_whose_storage_is_down_answers_live_never_free(recruiter: Any, e2e: Stack) -> None:
    monday = next_monday()
    people = seed_schedule_load(e2e.world, "contoso.example", count=3, monday=monday, prefix="down")
    warm_up(recruiter, people, monday)
    body = {"interviewers": people, **day_window(monday, 5), "duration_minutes": 60, "time_zone": "UTC"}
    warm = ask(recruiter, body)
    assert {p["source"] for p in warm["interviewers"]} == {"cache"}
    reader.forget_worker_memory()
    working = get_container()
    set_container(Container(working.settings, busy=DownBusyCache()))  # type: ignore[arg-type]
    try:
        down = ask(recruiter, body)
    finally:
        set_container(working)
    assert {p["source"] for p in down["interviewers"]} == {"live"}
    assert comparable(down) == comparable(warm)


def test_the_health_view_shows_the_cache(recruiter: Any, e2e: Stack) -> None:
    monday = next_monday()
    people = seed_schedule_load(e2e.world, "contoso.example", count=3, monday=monday, prefix="health")
    warm_up(recruiter, people, monday)
    graph.expire_delta_tokens(e2e.world, people[0], code="syncStateNotFound")
    assert keeper.sync_person(get_container(), CONTOSO, people[0])
    admin = browser_sign_in(e2e, CONTOSO_ADMIN)
    response = admin.request("GET", "/api/subscriptions/health", headers=KEY)
    assert response.status_code == 200, response.text
    cache = response.json()["busy_cache"]
    assert cache["enabled"] is True and cache["interviewers"] == 3
    assert (cache["warm"], cache["cold"]) == (3, 0)
    assert cache["resyncs_after_gone"] == 1 and cache["resyncs_after_missed"] == 0
    assert cache["last_delta_round_at"] and cache["last_full_resync_at"]
    subscribed = {s["mailbox"].lower() for s in response.json()["subscriptions"]}
    assert {p.lower() for p in people} <= subscribed  # each interviewer's mailbox has one subscription
