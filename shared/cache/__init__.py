"""The warm busy cache: each interviewer's busy blocks, working hours and zone, kept in Table Storage from
``calendarView/delta`` (application permissions) and change notifications, so availability can answer
warm interviewers with no Graph call and exactly what a live getSchedule read would give the slot engine.

``keeper``: who is kept (first sight, a per-tenant cap, eviction), full syncs and delta rounds, what
notifications and lifecycle events do, the timers. ``reader``: the warm read availability uses (a
per-worker memory checked against the tenant's epoch; anything it cannot read in time is cold, never
free). ``view``: the cache's part of the subscriptions health view.
"""
