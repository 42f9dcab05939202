"""The worker's per-mailbox limiter, driven by a fake clock: nothing here waits for real time.

``enter`` takes a place without blocking, so most tests run on one thread and read ``granted``;
``wait`` is called only where it returns at once (granted, given up) or sleeps on the fake clock.
"""

from __future__ import annotations

import threading

import pytest

from shared.adapters.graph_limiter import LimiterTimeout, MailboxLimiter


class FakeTime:
    """A monotonic clock that only ``sleep`` and ``advance`` move; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def limiter(time: FakeTime) -> MailboxLimiter:
    return MailboxLimiter(clock=time, sleep=time.sleep)


def test_at_most_four_in_flight_per_mailbox_the_rest_wait(limiter: MailboxLimiter, time: FakeTime) -> None:
    places = [limiter.enter("t/megan", time() + 20) for _ in range(6)]
    assert [p.granted for p in places] == [True, True, True, True, False, False]
    assert limiter.in_flight("t/megan") == 4
    assert limiter.waiting("t/megan") == 2
    for place in places[:4]:
        limiter.wait(place)  # granted: returns at once
    limiter.release(places[0])
    assert limiter.in_flight("t/megan") == 4
    assert [p.granted for p in places[4:]] == [True, False]
    limiter.release(places[0])  # a second release of the same place frees nothing more
    assert limiter.in_flight("t/megan") == 4 and not places[5].granted
    assert time.sleeps == []


def test_first_come_first_served_across_requests_and_a_retry_keeps_its_place(
    limiter: MailboxLimiter, time: FakeTime
) -> None:
    big = [limiter.enter("t/megan", time() + 20) for _ in range(4)]  # a big query fills the window
    big_more = limiter.enter("t/megan", time() + 20)  # ...and queues its fifth request
    small = limiter.enter("t/megan", time() + 20)  # a small query arrives after it
    big_last = limiter.enter("t/megan", time() + 20)
    limiter.release(big[0])
    assert big_more.granted and not small.granted and not big_last.granted
    limiter.release(big[1])
    assert small.granted and not big_last.granted  # the small query is not starved by the big one
    # A retry comes back with the ticket it first had: ahead of everyone who came after it.
    retry = limiter.enter("t/megan", time() + 20, ticket=big[2].ticket)
    limiter.release(big[3])
    assert retry.granted and not big_last.granted


def test_a_query_keeps_the_places_it_reserved_ahead_of_a_query_that_came_after_it(
    limiter: MailboxLimiter, time: FakeTime
) -> None:
    earlier, later = limiter.reserve(5), limiter.reserve(2)
    assert list(earlier) == list(range(earlier[0], earlier[0] + 5)) and later[0] == earlier[-1] + 1
    sent = [limiter.enter("t/megan", time() + 20, ticket=place) for place in earlier[:4]]
    waiting = limiter.enter("t/megan", time() + 20, ticket=later[0])
    late_fifth = limiter.enter("t/megan", time() + 20, ticket=earlier[4])  # entered after the later query's
    unreserved = limiter.enter("t/megan", time() + 20)  # a request that reserved nothing comes after both
    assert unreserved.ticket > later[-1]
    limiter.release(sent[0])
    assert late_fifth.granted and not waiting.granted
    limiter.release(sent[1])
    assert waiting.granted and not unreserved.granted
    assert list(limiter.reserve(0)) == []
    with pytest.raises(ValueError):
        limiter.reserve(-1)


def test_a_waiter_whose_deadline_passes_gives_up_and_its_turn_goes_to_the_next(
    limiter: MailboxLimiter, time: FakeTime
) -> None:
    held = [limiter.enter("t/megan", time() + 60) for _ in range(4)]
    hurried = limiter.enter("t/megan", time() + 5)
    patient = limiter.enter("t/megan", time() + 60)
    time.advance(6)
    with pytest.raises(LimiterTimeout) as raised:
        limiter.wait(hurried)
    assert raised.value.throttled is False
    assert limiter.waiting("t/megan") == 1
    limiter.release(held[0])
    assert patient.granted and not hurried.granted
    assert time.sleeps == []


def test_a_head_whose_deadline_passed_is_passed_over_when_a_slot_frees(limiter: MailboxLimiter, time: FakeTime) -> None:
    held = [limiter.enter("t/megan", time() + 60) for _ in range(4)]
    late = limiter.enter("t/megan", time() + 5)
    next_one = limiter.enter("t/megan", time() + 60)
    time.advance(10)
    limiter.release(held[0])  # the expired head does not take the slot it could no longer use
    assert next_one.granted and not late.granted
    with pytest.raises(LimiterTimeout):
        limiter.wait(late)


def test_a_429_shuts_the_window_for_every_request_until_retry_after(limiter: MailboxLimiter, time: FakeTime) -> None:
    running = [limiter.enter("t/megan", time() + 60) for _ in range(2)]
    limiter.shut("t/megan", time() + 2.0)
    first = limiter.enter("t/megan", time() + 60)
    second = limiter.enter("t/megan", time() + 60)
    assert not first.granted and not second.granted  # room for two more, but the window is shut
    limiter.release(running[0])
    assert not first.granted  # a freed slot does not open a shut window
    limiter.wait(first)  # the head of the line sleeps the window out, once for everyone
    assert time.sleeps == [2.0]
    assert first.granted and second.granted
    limiter.wait(second)
    assert time.sleeps == [2.0]


def test_a_waiter_whose_deadline_falls_inside_the_shut_window_gives_up_at_once_as_throttled(
    limiter: MailboxLimiter, time: FakeTime
) -> None:
    limiter.shut("t/megan", time() + 30)
    place = limiter.enter("t/megan", time() + 20)
    with pytest.raises(LimiterTimeout) as raised:
        limiter.wait(place)
    assert raised.value.throttled is True
    assert time.sleeps == []


def test_the_throttled_request_sits_out_the_window_and_then_opens_it(limiter: MailboxLimiter, time: FakeTime) -> None:
    others = [limiter.enter("t/megan", time() + 60) for _ in range(4)]
    behind = limiter.enter("t/megan", time() + 60)
    limiter.sit_out("t/megan", 1.5)
    assert time.sleeps == [1.5]
    limiter.release(others[0])
    assert behind.granted  # open again once Retry-After has passed
    later = limiter.enter("t/megan", time() + 60)
    limiter.release(others[1])
    assert later.granted


def test_a_longer_retry_after_that_arrives_meanwhile_keeps_the_window_shut(
    limiter: MailboxLimiter, time: FakeTime
) -> None:
    limiter.shut("t/megan", time() + 5.0)
    limiter.sit_out("t/megan", 1.0)  # a shorter one is slept out, but the longer one still holds
    assert time.sleeps == [1.0]
    place = limiter.enter("t/megan", time() + 60)
    assert not place.granted
    limiter.wait(place)
    assert time.sleeps == [1.0, 4.0] and place.granted


def test_different_mailboxes_never_wait_for_each_other(limiter: MailboxLimiter, time: FakeTime) -> None:
    for _ in range(4):
        limiter.enter("t/megan", time() + 60)
    limiter.shut("t/megan", time() + 30)
    assert not limiter.enter("t/megan", time() + 60).granted
    others = [limiter.enter("t/alex", time() + 60) for _ in range(4)]
    assert all(p.granted for p in others)
    assert limiter.enter("other-tenant/megan", time() + 60).granted
    assert time.sleeps == []


def test_a_blocked_waiter_on_another_thread_goes_when_a_slot_frees(limiter: MailboxLimiter, time: FakeTime) -> None:
    held = [limiter.enter("t/megan", time() + 60) for _ in range(4)]
    outcome: list[str] = []
    entered = threading.Event()

    def waiter() -> None:
        place = limiter.enter("t/megan", time() + 60)
        entered.set()
        limiter.wait(place)
        outcome.append("granted")

    thread = threading.Thread(target=waiter)
    thread.start()
    assert entered.wait(10)
    limiter.release(held[0])
    thread.join(10)  # a bound for a broken build, not a timing: the release wakes it
    assert outcome == ["granted"]
    assert limiter.in_flight("t/megan") == 4


def test_an_idle_mailbox_is_forgotten(limiter: MailboxLimiter, time: FakeTime) -> None:
    place = limiter.enter("t/megan", time() + 60)
    limiter.release(place)
    assert limiter.in_flight("t/megan") == 0 and limiter.waiting("t/megan") == 0
    assert "t/megan" not in limiter._boxes  # noqa: SLF001 - the memory bound is the point of this test
