"""Timer: purge expired flow states and sessions, on the schedule in the PURGE_SCHEDULE app setting."""

from __future__ import annotations

import azure.functions as func

from shared.bootstrap import get_container

bp = func.Blueprint()


@bp.function_name("purge_expired")
@bp.timer_trigger(schedule="%PURGE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def purge_expired(timer: func.TimerRequest) -> None:
    from shared.maintenance import purge_expired as purge  # imported on first call: cold start

    purge(get_container())
