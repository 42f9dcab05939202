"""A getSchedule load for benchmarks, and the unit other benchmarks count in: one Graph round trip.

``seed_schedule_load`` adds people whose calendars look like a busy fortnight (about 16 items each over
14 days: a weekday standup series, meetings, a tentative one, an all-day out-of-office day).
``measure_round_trip`` is the unit: the median wall time of one ``POST /me/calendar/getSchedule`` of
20 schedules over 14 days, sent alone to a running cloud with ``latency`` seconds added to each Graph
request. Benchmarks of the service divide their end-to-end times by it::

    from devtools.cloud.graph.load import measure_round_trip
    unit = measure_round_trip(base_url, token, 0.1, schedules=people[:20], start=monday, verify=ca_bundle)
"""

from __future__ import annotations

import statistics
import time
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from devtools.cloud.graph import controls
from devtools.cloud.state import User, World, new_id

WINDOW_DAYS = 14


def seed_schedule_load(
    world: World, tenant_domain: str, *, count: int, monday: date, prefix: str = "load"
) -> list[str]:
    """Add ``count`` people to the tenant, each with about 16 items in the 14 days from ``monday``; their addresses."""
    tenant = world.tenant_by_id_or_domain(tenant_domain)
    if tenant is None:
        raise KeyError(tenant_domain)
    zones = ["Eastern Standard Time", "W. Europe Standard Time", "Pacific Standard Time", "Tokyo Standard Time"]
    addresses: list[str] = []
    for index in range(count):
        address = f"{prefix}{index:03d}@{tenant.domain}"
        tz = zones[index % len(zones)]
        user = User(
            tenant_id=tenant.tenant_id,
            id=new_id(),
            user_principal_name=address,
            display_name=f"Load {index:03d}",
            mail=address,
            mailbox_settings={
                "timeZone": tz,
                "workingHours": {
                    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                    "startTime": "09:00:00.0000000",
                    "endTime": "17:00:00.0000000",
                    "timeZone": {"name": tz},
                },
            },
        )
        with world.lock:
            world.users[user.id] = user
        _seed_calendar(world, address, tz, monday, index)
        addresses.append(address)
    return addresses


def _at(day: date, clock: str, tz: str) -> dict[str, str]:
    return {"dateTime": f"{day.isoformat()}T{clock}:00", "timeZone": tz}


def _seed_calendar(world: World, address: str, tz: str, monday: date, index: int) -> None:
    # 10 standups (weekdays of two weeks) from one series that began two months earlier.
    first = monday - timedelta(days=56)
    controls.add_event(
        world,
        address,
        {
            "subject": "Standup",
            "start": _at(first, "09:30", tz),
            "end": _at(first, "09:45", tz),
            "recurrence": {
                "pattern": {
                    "type": "weekly",
                    "interval": 1,
                    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                },
                "range": {"type": "noEnd", "startDate": first.isoformat(), "recurrenceTimeZone": tz},
            },
        },
    )
    singles: list[tuple[int, str, str, dict[str, Any]]] = [
        (0, "11:00", "12:00", {}),
        (1, "14:00", "15:30", {"showAs": "tentative"}),
        (3, "10:00", "11:00", {"sensitivity": "private"}),
        (7, "13:00", "14:00", {}),
        (9, "15:00", "16:00", {"showAs": "free"}),
    ]
    for offset, start, end, extra in singles:
        day = monday + timedelta(days=offset + index % 2)
        controls.add_event(
            world,
            address,
            {"subject": f"Meeting {offset}", "start": _at(day, start, tz), "end": _at(day, end, tz), **extra},
        )
    away = monday + timedelta(days=11)
    controls.add_event(
        world,
        address,
        {
            "subject": "Out of office",
            "isAllDay": True,
            "showAs": "oof",
            "start": _at(away, "00:00", tz),
            "end": _at(away + timedelta(days=1), "00:00", tz),
        },
    )


def get_schedule_body(
    schedules: list[str], start: datetime, days: int = WINDOW_DAYS, interval: int = 30
) -> dict[str, Any]:
    end = start + timedelta(days=days)
    return {
        "schedules": schedules,
        "startTime": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "endTime": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "availabilityViewInterval": interval,
    }


def set_latency(base_url: str, seconds: float, *, verify: str | bool = True) -> None:
    """Set the cloud's added latency through its control API."""
    response = httpx.post(f"{base_url}/_control/graph/switches/latency", json={"seconds": seconds}, verify=verify)
    response.raise_for_status()


def measure_round_trip(
    base_url: str,
    token: str,
    latency: float,
    *,
    schedules: list[str],
    start: datetime,
    runs: int = 7,
    verify: str | bool = True,
) -> float:
    """Median seconds of one getSchedule (these schedules, 14 days) sent alone with ``latency`` added.

    Sets the cloud's latency switch to ``latency`` and leaves it so. ``token`` is a delegated access
    token of the caller whose mailbox the request runs against (``/me``).
    """
    set_latency(base_url, latency, verify=verify)
    body = get_schedule_body(schedules, start)
    headers = {"Authorization": f"Bearer {token}"}
    samples: list[float] = []
    with httpx.Client(base_url=f"{base_url}/v1.0", verify=verify, timeout=30) as client:
        client.post("/me/calendar/getSchedule", json=body, headers=headers).raise_for_status()  # warm the connection
        for _ in range(runs):
            began = time.perf_counter()
            response = client.post("/me/calendar/getSchedule", json=body, headers=headers)
            samples.append(time.perf_counter() - began)
            response.raise_for_status()
    return statistics.median(samples)
