"""One limiter per mailbox for the whole worker: Outlook's "Four concurrent requests" per app and mailbox.

Every Graph request that targets a mailbox takes a place here first, whichever request of the worker
sends it (availability, booking's free/busy check, sync's reads). At most ``capacity`` run at once per
mailbox; the rest wait first come, first served (a retry keeps the place it first had), each bounded
by its own deadline. A query that needs several requests reserves their places together when it arrives
(``reserve``): its later requests stay ahead of a query that came after it, so queries finish in the
order they came instead of all together at the end, each after the work of everyone who came before it.
A 429 shuts the mailbox's window until its Retry-After has passed, for every request in the worker: the
next in line sleeps it out, the others wait behind it. Different mailboxes never wait for each other.

Across instances of the app the limiter is not shared; there Graph's 429 is the backstop.

``clock`` (``time.monotonic``-like) and ``sleep`` are injectable, so tests move time instead of waiting.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAILBOX_CONCURRENCY = 4  # Outlook service limits: "Four concurrent requests" per app ID and mailbox
IDLE_SWEEP_AT = 1024  # mailboxes remembered before idle ones are forgotten


class LimiterTimeout(Exception):
    """The waiter's deadline passed (or will pass while the mailbox's window is shut) before its turn."""

    def __init__(self, message: str, *, throttled: bool) -> None:
        super().__init__(message)
        self.throttled = throttled


@dataclass(eq=False)
class Waiter:
    """One place in a mailbox's line. ``ticket`` orders the line; a retry passes its first ticket."""

    mailbox: str
    ticket: int
    deadline: float
    box: _Mailbox = field(repr=False)
    wake: threading.Condition = field(repr=False)  # on the limiter's lock: only this waiter is woken
    granted: bool = False
    gone: bool = False  # gave up, or was passed over because its deadline had passed

    def __lt__(self, other: Waiter) -> bool:
        return self.ticket < other.ticket


@dataclass
class _Mailbox:
    in_flight: int = 0
    shut_until: float = 0.0
    sleeping: bool = False  # the head of the line is sleeping out the shut window
    line: list[Waiter] = field(default_factory=list)  # a heap by ticket

    def head(self) -> Waiter | None:
        while self.line and (self.line[0].gone or self.line[0].granted):
            heapq.heappop(self.line)
        return self.line[0] if self.line else None

    def idle(self, now: float) -> bool:
        return self.in_flight == 0 and self.head() is None and self.shut_until <= now and not self.sleeping


class MailboxLimiter:
    """Per-mailbox admission for one worker process. Thread-safe."""

    def __init__(
        self,
        *,
        capacity: int = MAILBOX_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._boxes: dict[str, _Mailbox] = {}
        self._tickets = itertools.count()

    def reserve(self, count: int) -> range:
        """``count`` consecutive places in line, for the requests of one query (whatever their mailbox):
        pass each as ``ticket``. A place nobody uses costs nothing."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            first = next(self._tickets)
            self._tickets = itertools.count(first + max(count, 1))
            return range(first, first + count)

    # ---- the two halves of acquire (tests drive them one at a time) ------------------------------------
    def enter(self, mailbox: str, deadline: float, *, ticket: int | None = None) -> Waiter:
        """Take a place in the mailbox's line (granted at once when the window is open and not full)."""
        with self._lock:
            if len(self._boxes) >= IDLE_SWEEP_AT:
                self._sweep()
            box = self._boxes.setdefault(mailbox, _Mailbox())
            ticket = next(self._tickets) if ticket is None else ticket
            waiter = Waiter(mailbox, ticket, deadline, box, threading.Condition(self._lock))
            heapq.heappush(box.line, waiter)
            self._pump(box)
            return waiter

    def wait(self, waiter: Waiter) -> None:
        """Block until ``waiter`` may send. Raises LimiterTimeout when its deadline comes first (it then
        leaves the line)."""
        with self._lock:
            box = waiter.box
            while not waiter.granted:
                now = self._clock()
                shut_past_deadline = box.shut_until >= waiter.deadline
                if waiter.gone or now >= waiter.deadline or shut_past_deadline:
                    self._leave(box, waiter)
                    if shut_past_deadline:
                        raise LimiterTimeout("The mailbox is throttled past the deadline.", throttled=True)
                    raise LimiterTimeout("The deadline passed while waiting for the mailbox.", throttled=False)
                if box.shut_until > now and not box.sleeping and box.head() is waiter:
                    box.sleeping = True
                    slept_out = box.shut_until
                    self._lock.release()
                    try:
                        self._sleep(slept_out - now)
                    finally:
                        self._lock.acquire()
                        box.sleeping = False
                    if box.shut_until == slept_out:  # not shut again meanwhile: the window is open
                        box.shut_until = 0.0
                    self._pump(box)
                    continue
                waiter.wake.wait(timeout=max(waiter.deadline - now, 0.0))

    def acquire(self, mailbox: str, deadline: float, *, ticket: int | None = None) -> Waiter:
        waiter = self.enter(mailbox, deadline, ticket=ticket)
        self.wait(waiter)
        return waiter

    def release(self, waiter: Waiter) -> None:
        """The request of a granted waiter has its answer (or failed): its slot is free."""
        with self._lock:
            box = waiter.box
            if not waiter.granted or waiter.gone:
                return
            waiter.gone = True
            box.in_flight -= 1
            self._pump(box)
            self._forget_if_idle(waiter.mailbox, box)

    def shut(self, mailbox: str, until: float) -> None:
        """Graph answered 429 for this mailbox: nobody in the worker sends to it before ``until``."""
        with self._lock:
            box = self._boxes.setdefault(mailbox, _Mailbox())
            box.shut_until = max(box.shut_until, until)
            self._wake_all(box)  # waiters whose deadline falls inside the window give up now

    def sit_out(self, mailbox: str, seconds: float) -> None:
        """Shut the window for ``seconds`` and sleep them out here (the throttled request itself), then
        open it unless another 429 shut it longer meanwhile. When someone already sleeps for this
        mailbox, only shut: that sleeper, or the head of the line after it, opens the window."""
        with self._lock:
            box = self._boxes.setdefault(mailbox, _Mailbox())
            until = self._clock() + seconds
            box.shut_until = max(box.shut_until, until)
            self._wake_all(box)
            if box.sleeping:
                return
            box.sleeping = True
            self._lock.release()
            try:
                self._sleep(seconds)
            finally:
                self._lock.acquire()
                box.sleeping = False
            if box.shut_until == until:
                box.shut_until = 0.0
            self._pump(box)

    # ---- what tests and logs may ask -----------------------------------------------------------------
    def in_flight(self, mailbox: str) -> int:
        with self._lock:
            box = self._boxes.get(mailbox)
            return box.in_flight if box is not None else 0

    def waiting(self, mailbox: str) -> int:
        with self._lock:
            box = self._boxes.get(mailbox)
            return sum(1 for w in box.line if not (w.gone or w.granted)) if box is not None else 0

    # ---- inside the lock -------------------------------------------------------------------------------
    def _pump(self, box: _Mailbox) -> None:
        """Grant the head of the line while the window is open and not full, waking each one granted.
        While the window is shut, the head is woken to sleep it out (unless someone already does)."""
        now = self._clock()
        while box.in_flight < self._capacity and box.shut_until <= now:
            head = box.head()
            if head is None:
                break
            heapq.heappop(box.line)
            if now < head.deadline:
                head.granted = True
                box.in_flight += 1
            else:
                head.gone = True  # its own wait() reports the timeout; the slot goes to the next
            head.wake.notify()
        if box.shut_until > now and not box.sleeping:
            head = box.head()
            if head is not None:
                head.wake.notify()

    @staticmethod
    def _wake_all(box: _Mailbox) -> None:
        for waiter in box.line:
            waiter.wake.notify()

    def _leave(self, box: _Mailbox, waiter: Waiter) -> None:
        waiter.gone = True
        self._pump(box)  # the head may have changed: the next one may be the sleeper now
        self._forget_if_idle(waiter.mailbox, box)

    def _forget_if_idle(self, mailbox: str, box: _Mailbox) -> None:
        if self._boxes.get(mailbox) is box and box.idle(self._clock()):
            del self._boxes[mailbox]

    def _sweep(self) -> None:
        now = self._clock()
        for name in [name for name, box in self._boxes.items() if box.idle(now)]:
            del self._boxes[name]
