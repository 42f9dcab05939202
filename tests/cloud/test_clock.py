"""The local cloud's clock follows CLOCK_OFFSET_SECONDS, the setting that also moves the service's clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from devtools.cloud.graph.fixtures import current_monday
from devtools.cloud.seed import load_world
from devtools.cloud.state import utcnow


def _offset_to(day: date) -> float:
    now = datetime.now(UTC)
    return (datetime.combine(day, now.timetz()) - now).total_seconds()


@pytest.mark.parametrize("day", [date(2027, 1, 13), date(2027, 7, 14)])
def test_the_offset_moves_the_cloud_s_calendar_to_that_week(monkeypatch: pytest.MonkeyPatch, day: date) -> None:
    monkeypatch.setenv("CLOCK_OFFSET_SECONDS", repr(_offset_to(day)))
    assert utcnow().date() == day
    world = load_world()
    assert world.now().date() == day
    monday = day - timedelta(days=day.weekday())
    assert current_monday("Pacific Standard Time") == monday
    # The fixtures' one-off "Lunch" (Monday of the current week, Alex's zone) lands in the pinned week.
    lunch = [e for e in world.events.values() if e.subject == "Lunch"]
    assert lunch and all(e.start.astimezone(UTC).date() == monday for e in lunch)


def test_a_malformed_offset_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOCK_OFFSET_SECONDS", "next week")
    with pytest.raises(ValueError, match="CLOCK_OFFSET_SECONDS"):
        utcnow()
