"""Timers of the warm busy cache: delta rounds for everyone kept (BUSY_CACHE_DELTA_SCHEDULE: they heal
lost notifications, warm people not synced yet and let go of people nobody asks about) and the daily full
resync (BUSY_CACHE_RESYNC_SCHEDULE)."""

from __future__ import annotations

import azure.functions as func

from shared.bootstrap import get_container

bp = func.Blueprint()


@bp.function_name("busy_cache_rounds")
@bp.timer_trigger(schedule="%BUSY_CACHE_DELTA_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def busy_cache_rounds(timer: func.TimerRequest) -> None:
    from shared.cache.keeper import run_rounds  # imported on first call: cold start

    run_rounds(get_container())


@bp.function_name("busy_cache_resync")
@bp.timer_trigger(schedule="%BUSY_CACHE_RESYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def busy_cache_resync(timer: func.TimerRequest) -> None:
    from shared.cache.keeper import resync_all

    resync_all(get_container())
