"""Timers: purge expired flow states and sessions (PURGE_SCHEDULE), and settle pending bookings whose
request died (RECOVERY_SCHEDULE)."""

from __future__ import annotations

import azure.functions as func

from shared.bootstrap import get_container

bp = func.Blueprint()


@bp.function_name("purge_expired")
@bp.timer_trigger(schedule="%PURGE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def purge_expired(timer: func.TimerRequest) -> None:
    from shared.identity.maintenance import purge_expired as purge  # imported on first call: cold start

    purge(get_container())


@bp.function_name("recover_pending_bookings")
@bp.timer_trigger(schedule="%RECOVERY_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def recover_pending_bookings(timer: func.TimerRequest) -> None:
    from shared.booking.recovery import recover_pending_bookings as recover  # imported on first call

    recover(get_container())
