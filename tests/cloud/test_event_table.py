"""The world's event table: its index by mailbox follows every change made to the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devtools.cloud.state import Event, EventTable, World

START = datetime(2030, 1, 7, 9, tzinfo=UTC)


def _event(event_id: str, mailbox: str, *, calendar: str | None = None) -> Event:
    end = START + timedelta(hours=1)
    return Event(id=event_id, mailbox_id=mailbox, subject=event_id, start=START, end=end, calendar_id=calendar)


def _ids(table: EventTable, mailbox: str) -> list[str]:
    return [e.id for e in table.of_mailbox(mailbox)]


def _scan(table: EventTable, mailbox: str) -> list[str]:
    return [e.id for e in table.values() if e.mailbox_id == mailbox]


def test_every_way_of_changing_the_table_keeps_the_index() -> None:
    table = EventTable({"a1": _event("a1", "alex"), "b1": _event("b1", "blair")})
    table["a2"] = _event("a2", "alex", calendar="interviews")
    table.update({"b2": _event("b2", "blair")}, a3=_event("a3", "alex"))
    table |= {"c1": _event("c1", "casey")}
    table.setdefault("c2", _event("c2", "casey"))
    table.setdefault("c1", _event("c1-again", "alex"))  # present: nothing changes
    assert _ids(table, "alex") == ["a1", "a2", "a3"] and _ids(table, "casey") == ["c1", "c2"]

    table["a1"] = _event("a1", "alex")  # replaced in place: keeps its position
    table["b1"] = _event("b1", "casey")  # the same id in another mailbox moves there
    del table["a2"]
    assert table.pop("b2").id == "b2" and table.pop("missing", None) is None
    with pytest.raises(KeyError):
        table.pop("missing")
    with pytest.raises(KeyError):
        del table["missing"]
    for mailbox in ("alex", "blair", "casey", "nobody"):
        assert _ids(table, mailbox) == _scan(table, mailbox)
    assert _ids(table, "alex") == ["a1", "a3"] and _ids(table, "blair") == []

    key, gone = table.popitem()
    assert key not in _ids(table, gone.mailbox_id)
    table.clear()
    assert table == {} and _ids(table, "alex") == [] and _ids(table, "casey") == []


def test_a_world_given_a_plain_mapping_indexes_it() -> None:
    world = World()
    world.events = {"a1": _event("a1", "alex"), "b1": _event("b1", "blair")}
    assert isinstance(world.events, EventTable)
    assert [e.id for e in world.mailbox_events("alex")] == ["a1"]
    fresh = World()
    fresh.events["c1"] = _event("c1", "alex")
    world.reset_from(fresh)
    assert [e.id for e in world.mailbox_events("alex")] == ["c1"] and world.mailbox_events("blair") == []
