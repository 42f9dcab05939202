"""Keeping the busy cache: who is kept, full syncs and delta rounds, notifications, lifecycle events, timers.

Who: everyone who appears in an availability query of a tenant (``note_asked``), added on first sight
and warmed by the notification worker (a ``warm`` queue message: subscribe the mailbox, reusing the sync
subscription where it has one, then a full sync), so the first query is answered live; at most
``BUSY_CACHE_MAX_PEOPLE`` per tenant; let go after ``BUSY_CACHE_EVICT_DAYS`` without being asked about.

A full sync reads the mailbox's working hours and one ``calendarView/delta`` round over the rolling window
(``BUSY_CACHE_PAST_DAYS`` back, ``BUSY_CACHE_FUTURE_DAYS`` ahead, whole UTC days) and makes its blocks the
person's only blocks. A delta round follows the stored delta link: blocks written, removals (and blocks
that left the window) deleted; the same change twice rewrites the same row. A full sync happens on the
first round, when the window has rolled a day, on Graph's 410 (``syncStateNotFound``/``resyncRequired``),
on a ``missed`` or ``subscriptionRemoved`` lifecycle event, and daily for everyone
(``BUSY_CACHE_RESYNC_SCHEDULE``), because notifications are not fully reliable.

Warm means: a round that started at ``synced_at`` completed, no notification came at or after it
(``notified_at``), and ``synced_at`` is within ``BUSY_CACHE_FRESHNESS_SECONDS``. A change notification
first records ``notified_at`` (the person is cold from then on, in every worker: the write moves the
tenant's epoch), then runs a round; a round that fails leaves the person cold. Rounds of one person run
one at a time in a worker; if another instance's round completed after this one started, this one's
result may be the older one, so the person is left cold for the next round to settle.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from shared.config import Settings
from shared.conflicts import retry_on_conflict
from shared.errors import ConcurrencyConflict, DeltaExpired, NotFound, ServiceError
from shared.identity.tokens import with_app_token
from shared.models import BusyDelta, CachedBlock, CachedPerson, MailboxHours
from shared.ports import Dependencies
from shared.sync.intake import encode_messages
from shared.sync.subscriptions import ensure_mailbox_subscription

logger = logging.getLogger(__name__)

WARM_KIND = "warm"  # the queue message kind that asks the worker to warm people up
ROLL_AFTER = timedelta(days=1)  # a delta window is fixed when opened: a new one once it is a day behind
ASKED_WRITE_EVERY = timedelta(hours=6)  # last_asked_at is rewritten at most this often (eviction is in days)
COUNT_MEMORY = timedelta(seconds=60)
ROUND_WORKERS = 4  # rounds of different mailboxes at once (each mailbox has its own four-request limit)
LIFECYCLE_RESYNC = frozenset({"missed", "subscriptionRemoved"})
TICK = timedelta(milliseconds=1)  # the finest time Table Storage is relied on to keep

_lock = threading.Lock()
_person_locks: dict[tuple[str, str], threading.Lock] = {}
_asked: dict[tuple[str, str], datetime] = {}
_counts: dict[str, tuple[int, datetime]] = {}


@dataclass(frozen=True)
class RoundReport:
    synced: int = 0
    failed: int = 0
    evicted: int = 0


def person_key(address: str) -> str:
    return address.strip().lower()


def window(settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """The rolling window a sync opened now covers: whole UTC days around ``now``."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=settings.busy_cache_past_days), day + timedelta(days=settings.busy_cache_future_days)


def forget_worker_memory() -> None:
    with _lock:
        _asked.clear()
        _counts.clear()


def _person_lock(tenant_id: str, person: str) -> threading.Lock:
    with _lock:
        return _person_locks.setdefault((tenant_id, person), threading.Lock())


def _update(deps: Dependencies, tenant_id: str, person: str, change: Callable[[CachedPerson], CachedPerson]) -> None:
    def attempt() -> CachedPerson:
        return deps.busy.update_person(change(deps.busy.get_person(tenant_id, person)))

    retry_on_conflict(attempt)


# ---- who is kept --------------------------------------------------------------------------------------
def note_asked(deps: Dependencies, tenant_id: str, people: Iterable[str]) -> int:
    """People seen in a query: new ones are added (up to the cap) and queued to be warmed; known ones have
    ``last_asked_at`` moved now and then. Returns how many were added. Never raises (logged): the query
    that asked has its answer already."""
    settings = deps.settings
    if not settings.busy_cache_enabled:
        return 0
    now = deps.clock.now()
    added: list[str] = []
    for person in sorted({person_key(p) for p in people if p.strip()}):
        with _lock:
            seen = _asked.get((tenant_id, person))
        if seen is not None and now - seen < ASKED_WRITE_EVERY:
            continue
        try:
            if _note_one(deps, tenant_id, person, now):
                added.append(person)
        except ServiceError as err:
            logger.warning("The busy cache could not note a person of tenant %s (%s)", tenant_id, err.code)
            break
        with _lock:
            _asked[(tenant_id, person)] = now
    _queue_warm(deps, tenant_id, added, now)
    return len(added)


def _note_one(deps: Dependencies, tenant_id: str, person: str, now: datetime) -> bool:
    try:
        record = deps.busy.get_person(tenant_id, person)
    except NotFound:
        if _count(deps, tenant_id, now) >= deps.settings.busy_cache_max_people:
            return False
        try:
            deps.busy.create_person(CachedPerson(tenant_id, person, added_at=now, last_asked_at=now))
        except ConcurrencyConflict:
            return False  # another request added them first
        with _lock:
            count, at = _counts.get(tenant_id, (0, now))
            _counts[tenant_id] = (count + 1, at)
        return True
    if now - record.last_asked_at >= ASKED_WRITE_EVERY:
        _update(deps, tenant_id, person, lambda r: replace(r, last_asked_at=max(r.last_asked_at, now)))
    return False


def _count(deps: Dependencies, tenant_id: str, now: datetime) -> int:
    with _lock:
        known = _counts.get(tenant_id)
    if known is not None and now - known[1] < COUNT_MEMORY:
        return known[0]
    count = len(deps.busy.list_people(tenant_id))
    with _lock:
        _counts[tenant_id] = (count, now)
    return count


def _queue_warm(deps: Dependencies, tenant_id: str, people: Sequence[str], now: datetime) -> int:
    if not people:
        return 0
    try:
        for message in encode_messages(WARM_KIND, [{"t": tenant_id, "m": p} for p in people], now):
            deps.notification_queue.send(message)
    except ServiceError as err:
        # The records exist unsynced: the delta timer warms them on its next run.
        logger.warning("Could not queue %d people of tenant %s to be warmed (%s)", len(people), tenant_id, err.code)
    return len(people)


def warm_people(deps: Dependencies, tenant_id: str, people: Iterable[str]) -> RoundReport:
    """The worker's part of first sight: subscribe each mailbox (reusing a subscription it has) and fully
    sync it. Failures are recorded on the person (who stays cold) and logged, never raised."""
    report = RoundReport()
    for person in {person_key(p) for p in people if p.strip()}:
        ensure_mailbox_subscription(deps, tenant_id, person)
        ok = sync_person(deps, tenant_id, person, full=True)
        report = replace(report, synced=report.synced + ok, failed=report.failed + (not ok))
    return report


# ---- rounds -------------------------------------------------------------------------------------------
# What one round did: (delta, hours, window, whether it was a full sync, whether a 410 caused it, whether any
# block was written or removed).
_Outcome = tuple[BusyDelta, MailboxHours, tuple[datetime, datetime], bool, bool, bool]


def sync_person(
    deps: Dependencies,
    tenant_id: str,
    person: str,
    *,
    full: bool = False,
    refresh_hours: bool = False,
    missed: bool = False,
) -> bool:
    """One round for one kept person (a full sync when ``full`` or when one is due). True when it
    completed; False when the person is not kept or the round failed (recorded; the person stays cold)."""
    person = person_key(person)
    with _person_lock(tenant_id, person):
        record = _kept_person(deps, tenant_id, person)
        if record is None:
            return False
        started = _round_start(deps, record)
        try:
            outcome = _round(deps, record, started, full=full, refresh_hours=refresh_hours)
        except ServiceError as err:
            logger.warning("A busy cache round of tenant %s failed (%s)", tenant_id, err.code)
            _record_error(deps, tenant_id, person, err.code)
            return False
        return _record_round(deps, tenant_id, person, record, started, outcome, missed=missed)


def _kept_person(deps: Dependencies, tenant_id: str, person: str) -> CachedPerson | None:
    """The person's record; None when they are not kept or it could not be read (logged)."""
    try:
        return deps.busy.get_person(tenant_id, person)
    except NotFound:
        return None
    except ServiceError as err:
        logger.warning("The busy cache could not read a person of tenant %s (%s)", tenant_id, err.code)
        return None


def _round_start(deps: Dependencies, record: CachedPerson) -> datetime:
    """When the round starts: now, but always after the person's last change mark."""
    started = deps.clock.now()
    if record.notified_at is not None and started <= record.notified_at:
        # This round reads Graph after it read the mark, so after the change the mark stands for; the
        # stored times may be coarser than the clock, so it is dated just past the mark.
        started = record.notified_at + TICK
    return started


def _record_round(
    deps: Dependencies,
    tenant_id: str,
    person: str,
    record: CachedPerson,
    started: datetime,
    outcome: _Outcome,
    *,
    missed: bool,
) -> bool:
    """Store a completed round on the person and bump the tenant's epoch when a warm answer changed. False
    when the person was evicted meanwhile or the round could not be recorded (logged)."""
    delta, hours, span, was_full, gone, wrote = outcome
    # Readers must drop what they remember when what they would answer changed: blocks, hours, or a
    # person going cold. A round that only confirms (synced_at moves on) changes no warm answer; a
    # reader re-reads anyone its memory holds as cold (shared.cache.reader).
    changed = wrote or (record.hours is None or hours.source != record.hours.source)
    overtaken = False

    def settle(current: CachedPerson) -> CachedPerson:
        nonlocal overtaken
        if current.synced_at is not None and current.synced_at > started:
            # Another instance's round completed after this one started: whichever wrote last, the
            # blocks may be the older ones. Cold until the next round settles it.
            overtaken = True
            return replace(current, notified_at=deps.clock.now())
        return replace(
            current,
            delta_link=delta.delta_link,
            window_start=span[0],
            window_end=span[1],
            synced_at=started,
            full_sync_at=started if was_full else current.full_sync_at,
            hours=hours,
            last_error=None,
            resyncs_gone=current.resyncs_gone + gone,
            resyncs_missed=current.resyncs_missed + missed,
        )

    try:
        _update(deps, tenant_id, person, settle)
        if changed or overtaken:
            deps.busy.bump_epoch(tenant_id)
    except NotFound:
        return False  # evicted meanwhile
    except ServiceError as err:
        logger.warning("A busy cache round of tenant %s could not be recorded (%s)", tenant_id, err.code)
        return False
    return True


def _round(deps: Dependencies, record: CachedPerson, started: datetime, *, full: bool, refresh_hours: bool) -> _Outcome:
    """Read and store one round: (delta, hours, window, whether it was a full sync, whether a 410 caused it,
    whether any block was written or removed)."""
    tenant_id, person = record.tenant_id, record.person
    start, end = window(deps.settings, started)
    kept_start, kept_end = record.window_start, record.window_end
    need_full = (
        full
        or record.delta_link is None
        or kept_start is None
        or kept_end is None
        or record.hours is None
        or kept_start < start - ROLL_AFTER
    )
    hours = record.hours
    if hours is None or need_full or refresh_hours:
        hours = with_app_token(deps, tenant_id, lambda token: deps.graph.mailbox_hours(token, person))
    gone = False
    if not need_full and kept_start is not None and kept_end is not None:
        span = (kept_start, kept_end)
        try:
            delta = with_app_token(
                deps,
                tenant_id,
                lambda token: deps.graph.busy_delta(
                    token, person, delta_link=record.delta_link, start=span[0], end=span[1]
                ),
            )
        except DeltaExpired:
            gone = True
        else:
            upserts = [c.block for c in delta.changes if c.block is not None and _inside(c.block, span)]
            removals = [c.key for c in delta.changes if c.block is None or not _inside(c.block, span)]
            if upserts or removals:
                deps.busy.apply_changes(tenant_id, person, upserts, removals)
            return delta, hours, span, False, False, bool(upserts or removals)
    span = (start, end)
    delta = with_app_token(
        deps, tenant_id, lambda token: deps.graph.busy_delta(token, person, delta_link=None, start=start, end=end)
    )
    blocks = [c.block for c in delta.changes if c.block is not None and _inside(c.block, span)]
    deps.busy.replace_blocks(tenant_id, person, blocks)
    return delta, hours, span, True, gone, True


def _inside(block: CachedBlock, span: tuple[datetime, datetime]) -> bool:
    return block.start < span[1] and block.end > span[0]


def _record_error(deps: Dependencies, tenant_id: str, person: str, code: str) -> None:
    # Storage may be what failed: the person then stays cold by their synced_at anyway.
    with contextlib.suppress(ServiceError):
        _update(deps, tenant_id, person, lambda r: replace(r, last_error=code))


# ---- notifications and lifecycle events -----------------------------------------------------------------
def mark_changed(deps: Dependencies, tenant_id: str, mailbox: str) -> bool:
    """A change notification (or catch-up item) for ``mailbox``: the person is cold from now until a round
    that starts after this completes. Returns whether the mailbox is kept. Raises ServiceError when the
    mark cannot be written (the worker retries the message: a stale warm answer must not stand)."""
    if not _mark(deps, tenant_id, person_key(mailbox)):
        return False
    deps.busy.bump_epoch(tenant_id)
    return True


def _mark(deps: Dependencies, tenant_id: str, person: str) -> bool:
    """The kept person's record says a change came now (the epoch is the caller's to move)."""
    now = deps.clock.now()
    try:
        _update(deps, tenant_id, person, lambda r: replace(r, notified_at=now))
    except NotFound:
        return False
    return True


def note_written(deps: Dependencies, tenant_id: str, mailboxes: Iterable[str]) -> None:
    """The service itself just wrote to these mailboxes' calendars (an interview booked, moved or
    cancelled): each kept person is cold from now, as a notification would make them, so the next answer
    reads them live and shows the write (a recruiter who books and searches again must not be offered the
    hour just booked while the notification is on its way). Never raises: the notification that follows
    within seconds marks them too."""
    if not deps.settings.busy_cache_enabled:
        return
    try:
        marked = [p for p in sorted({person_key(m) for m in mailboxes if m.strip()}) if _mark(deps, tenant_id, p)]
        if marked:
            deps.busy.bump_epoch(tenant_id)  # once for all of them: every worker re-checks what it remembers
    except ServiceError as err:
        logger.warning("The busy cache could not note a write for tenant %s (%s)", tenant_id, err.code)


def on_changes(deps: Dependencies, tenant_id: str, mailboxes: Iterable[str]) -> int:
    """Notifications for these mailboxes: mark each kept one changed, then bring it up to date with a delta
    round (from notification to store within seconds). Returns how many rounds completed. Raises
    ServiceError only when a mark cannot be written."""
    if not deps.settings.busy_cache_enabled:
        return 0
    kept = [m for m in {person_key(m) for m in mailboxes if m.strip()} if mark_changed(deps, tenant_id, m)]
    return sum(sync_person(deps, tenant_id, person) for person in kept)


def on_lifecycle(deps: Dependencies, tenant_id: str, mailbox: str, event: str) -> bool:
    """``missed`` and ``subscriptionRemoved``: notifications may have been lost, so the person is marked
    changed and fully resynced. Other events change nothing here."""
    if event not in LIFECYCLE_RESYNC or not deps.settings.busy_cache_enabled:
        return False
    if not mark_changed(deps, tenant_id, mailbox):
        return False
    return sync_person(deps, tenant_id, mailbox, full=True, missed=True)


# ---- timers -------------------------------------------------------------------------------------------
def run_rounds(deps: Dependencies) -> RoundReport:
    """The delta timer: let go of people nobody asked about for ``BUSY_CACHE_EVICT_DAYS``, then a delta
    round (with working hours read again) for everyone else; people not synced yet get their full sync."""
    return _each(deps, full=False)


def resync_all(deps: Dependencies) -> RoundReport:
    """The daily timer: a full sync of everyone kept (and the same eviction)."""
    return _each(deps, full=True)


def _each(deps: Dependencies, *, full: bool) -> RoundReport:
    if not deps.settings.busy_cache_enabled:
        return RoundReport()
    now = deps.clock.now()
    limit = timedelta(days=deps.settings.busy_cache_evict_days)
    report = RoundReport()
    keep: list[CachedPerson] = []
    for record in deps.busy.list_people():
        if now - record.last_asked_at > limit:
            try:
                deps.busy.delete_person(record.tenant_id, record.person)
                deps.busy.bump_epoch(record.tenant_id)
            except ServiceError as err:
                logger.warning("Could not let go of a person of the busy cache (%s)", err.code)
                continue
            with _lock:
                _asked.pop((record.tenant_id, record.person), None)
                _counts.pop(record.tenant_id, None)
            report = replace(report, evicted=report.evicted + 1)
        else:
            keep.append(record)
    if not keep:
        return report
    with ThreadPoolExecutor(max_workers=min(ROUND_WORKERS, len(keep)), thread_name_prefix="busy") as pool:
        results = list(
            pool.map(lambda r: sync_person(deps, r.tenant_id, r.person, full=full, refresh_hours=True), keep)
        )
    synced = sum(results)
    logger.info("busy cache: %d rounds, %d failed, %d let go", synced, len(results) - synced, report.evicted)
    return replace(report, synced=synced, failed=len(results) - synced)
