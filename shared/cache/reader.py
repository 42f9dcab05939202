"""The warm read: each asked-about person's ``Schedule`` from the busy cache, exactly as the Graph adapter
would build it from getSchedule (the same statuses, working hours and zone; no titles), or nothing for
that person, who is then read live.

Per worker, what was read is remembered per tenant under the tenant's epoch (as the session guard
remembers sessions): one point read of the epoch per query tells whether it all still holds, since every
cache write moves it (the notification worker's marks and rounds included). People not remembered are
read in parallel, one partition query each. Everything storage must answer for one query shares a
budget of ``READ_BUDGET_SECONDS``: whoever is not read by then, or whose read failed, is cold (read
live), never free. A person is used only while warm (see ``shared.cache.keeper``) and only when the
window asked for lies inside the window their sync covers.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared import threads
from shared.errors import NotFound, ServiceError
from shared.memo import IdentityMemo
from shared.models import BusyBlock, CachedBlock, CachedPerson, MailboxHours, Schedule
from shared.ports import Dependencies

logger = logging.getLogger(__name__)

READ_BUDGET_SECONDS = 1.0
READERS = 16
MARGIN = timedelta(days=2)  # read a little more than any sync window holds: one read serves every query


@dataclass(frozen=True)
class WarmSchedule:
    schedule: Schedule
    as_of: datetime  # the start of the delta round the data is from


@dataclass(frozen=True)
class _Entry:
    """What a worker remembers of a person: their blocks as the schedule's busy blocks, in order of start
    (``starts`` beside them), so a query takes its window with two bisections instead of a scan."""

    record: CachedPerson | None
    busy: tuple[BusyBlock, ...] = ()
    starts: tuple[datetime, ...] = ()
    longest: timedelta = timedelta(0)
    hours: MailboxHours | None = None

    @classmethod
    def of(cls, record: CachedPerson, blocks: Sequence[CachedBlock], hours: MailboxHours | None) -> _Entry:
        busy = tuple(
            BusyBlock(start=b.start, end=b.end, status=b.status) for b in sorted(blocks, key=lambda b: (b.start, b.end))
        )
        longest = max((b.end - b.start for b in busy), default=timedelta(0))
        return cls(record, busy, tuple(b.start for b in busy), longest, hours)

    def busy_within(self, start: datetime, end: datetime) -> tuple[BusyBlock, ...]:
        """The blocks that overlap [start, end), in order of start."""
        first = bisect_left(self.starts, start - self.longest)
        last = bisect_left(self.starts, end)
        return tuple(b for b in self.busy[first:last] if b.end > start)


@dataclass
class _TenantMemory:
    epoch: str
    people: dict[str, _Entry] = field(default_factory=dict)


_lock = threading.Lock()
# Loads still running (a query that gave up on one leaves it running): a later query waits for the same
# load instead of queueing another behind it. Keyed by the dependencies' identity too (the running load
# holds them, so the identity is not reused while the key is here), then tenant, epoch and person.
_loading: dict[tuple[int, str, str, str], Future[_Entry]] = {}
# A remembered person's schedule per window asked about: the same object from one query to the next, so
# what the slot engine and the answer derive from it is derived once (``shared.memo``).
_schedules: IdentityMemo[WarmSchedule] = IdentityMemo()
_memory: dict[str, _TenantMemory] = {}


def forget_worker_memory() -> None:
    with _lock:
        _memory.clear()
        _loading.clear()


def _load_once(
    deps: Dependencies, tenant_id: str, epoch: str, person: str, lo: datetime, hi: datetime
) -> Future[_Entry]:
    """The load of ``person`` under ``epoch``: the one running, or a new one."""
    key = (id(deps), tenant_id, epoch, person)
    pool = threads.pool("busy-read", READERS)
    with _lock:
        running = _loading.get(key)
        if running is not None:
            return running
        future = _loading[key] = pool.submit(_load, deps, tenant_id, person, lo, hi)
    future.add_done_callback(lambda _: _forget_load(key, future))
    return future


def _forget_load(key: tuple[int, str, str, str], future: Future[_Entry]) -> None:
    with _lock:
        if _loading.get(key) is future:
            del _loading[key]


def read_warm(
    deps: Dependencies, tenant_id: str, people: Sequence[str], start: datetime, end: datetime
) -> dict[str, WarmSchedule]:
    """The warm people among ``people`` (keyed by lower-cased address) over [start, end); everyone else
    is left out, to be read live. Never raises: a cache that cannot answer in time answers nobody."""
    settings = deps.settings
    wanted = sorted({p.strip().lower() for p in people if p.strip()})
    if not settings.busy_cache_enabled or not wanted:
        return {}
    deadline = time.monotonic() + READ_BUDGET_SECONDS
    try:
        # On threads of its own: never queued behind loads that earlier queries left running.
        epoch = threads.pool("busy-epoch", 4).submit(deps.busy.get_epoch, tenant_id).result(timeout=READ_BUDGET_SECONDS)
    except TimeoutError:
        logger.warning("The busy cache did not answer in time: every interviewer is read live")
        return {}
    except ServiceError as err:
        logger.warning("The busy cache could not be read (%s): every interviewer is read live", err.code)
        return {}
    with _lock:
        memory = _memory.get(tenant_id)
        if memory is None or memory.epoch != epoch:
            memory = _memory[tenant_id] = _TenantMemory(epoch)
        known = dict(memory.people)
    now = deps.clock.now()
    freshness = timedelta(seconds=settings.busy_cache_freshness_seconds)
    found: dict[str, WarmSchedule] = {}
    for person in wanted:
        entry = known.get(person)
        warm = _warm(entry, now, freshness, start, end) if entry is not None else None
        if warm is not None:
            found[person] = warm
    # Not remembered, or remembered cold: read again (a round that only confirmed a person moves no epoch,
    # so a remembered record may be older than the stored one; never newer).
    missing = [p for p in wanted if p not in found]
    if missing:
        lo = now - timedelta(days=settings.busy_cache_past_days) - MARGIN
        hi = now + timedelta(days=settings.busy_cache_future_days) + MARGIN
        futures = {p: _load_once(deps, tenant_id, epoch, p, lo, hi) for p in missing}
        wait(list(futures.values()), timeout=max(0.0, deadline - time.monotonic()))
        loaded: dict[str, _Entry] = {}
        for person, future in futures.items():
            if future.done() and future.exception() is None:
                loaded[person] = future.result()
        failed = len(missing) - len(loaded)
        if failed:
            logger.warning("The busy cache could not read %d people in time: they are read live", failed)
        with _lock:
            if memory.epoch == epoch:
                memory.people.update(loaded)
        for person, entry in loaded.items():
            warm = _warm(entry, now, freshness, start, end)
            if warm is not None:
                found[person] = warm
    return found


def _load(deps: Dependencies, tenant_id: str, person: str, lo: datetime, hi: datetime) -> _Entry:
    try:
        record, blocks = deps.busy.read_person(tenant_id, person, lo, hi)
    except NotFound:
        return _Entry(None)
    hours: MailboxHours | None = None
    if record.hours is not None:
        try:
            hours = deps.graph.mailbox_hours_from(record.hours.source)
        except ValueError:
            logger.warning("Kept working hours of a person of tenant %s could not be read", tenant_id)
    return _Entry.of(record, blocks, hours)


def _warm(entry: _Entry, now: datetime, freshness: timedelta, start: datetime, end: datetime) -> WarmSchedule | None:
    record, hours = entry.record, entry.hours
    if record is None or hours is None or record.synced_at is None:
        return None
    if record.window_start is None or record.window_end is None:
        return None
    if record.notified_at is not None and record.notified_at >= record.synced_at:
        return None  # a change was reported after the last round began (or at the same instant)
    if now - record.synced_at > freshness:
        return None  # too old: never used, whatever it holds
    if start < record.window_start or end > record.window_end:
        return None
    synced_at = record.synced_at
    return _schedules.get(
        entry,
        (start, end),
        lambda: WarmSchedule(
            Schedule(
                email=record.person,
                mailbox_time_zone=hours.time_zone,
                working_hours=hours.working_hours,
                busy=entry.busy_within(start, end),
            ),
            as_of=synced_at,
        ),
    )
