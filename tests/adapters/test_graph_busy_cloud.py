"""GraphClient.busy_delta and mailbox_hours against the local Microsoft cloud: the blocks a delta round keeps
are getSchedule's items (free ones aside) and the working hours getSchedule's, for private, all-day,
recurring, tentative, out-of-office and declined or cancelled meetings; later rounds bring removals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devtools.cloud import controls
from devtools.cloud.graph import controls as graph_controls
from devtools.cloud.graph.testing import app_only, delegated
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from shared.adapters.graph import GraphClient
from shared.adapters.graph_busy import busy_change, event_key
from shared.config import Settings
from shared.errors import DeltaExpired
from shared.models import AccessToken, FreeBusyStatus

MEGAN = "megan.bowen@contoso.example"
ALEX = "alex.wilber@contoso.example"
MIRIAM = "miriam.graham@contoso.example"  # working hours in a custom zone
LIDIA = "lidia.holloway@contoso.example"
START = datetime(2030, 3, 4, tzinfo=UTC)
END = START + timedelta(days=14)


@pytest.fixture
def world(cloud: RunningCloud) -> World:
    controls.reset_world(cloud.world)
    return cloud.world


@pytest.fixture
def graph(cloud: RunningCloud) -> Iterator[GraphClient]:
    client = GraphClient(Settings(graph_base_url=cloud.graph_url))
    yield client
    client.close()


def app_token(world: World) -> AccessToken:
    header = app_only(world, "contoso.example", ["Calendars.Read", "MailboxSettings.Read"])["Authorization"]
    return AccessToken(token=header.removeprefix("Bearer "), tenant_id="contoso", roles=("Calendars.Read",))


def user_token(world: World) -> AccessToken:
    header = delegated(world, MEGAN, ["Calendars.Read"])["Authorization"]
    return AccessToken(token=header.removeprefix("Bearer "), tenant_id="", scopes=("Calendars.Read",))


def at(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def seed(world: World) -> str:
    """A varied fortnight for Alex; returns the id of a meeting Lidia organises with Alex invited."""
    day = START + timedelta(days=1)
    graph_controls.add_event(
        world, ALEX, {"subject": "Busy", "start": at(day + timedelta(hours=15)), "end": at(day + timedelta(hours=16))}
    )
    graph_controls.add_event(
        world,
        ALEX,
        {
            "subject": "Secret",
            "sensitivity": "private",
            "start": at(day + timedelta(hours=17)),
            "end": at(day + timedelta(hours=18)),
        },
    )
    graph_controls.add_event(
        world,
        ALEX,
        {
            "subject": "Maybe",
            "showAs": "tentative",
            "start": at(day + timedelta(hours=19)),
            "end": at(day + timedelta(hours=20)),
        },
    )
    graph_controls.add_event(
        world,
        ALEX,
        {
            "subject": "Free",
            "showAs": "free",
            "start": at(day + timedelta(hours=20)),
            "end": at(day + timedelta(hours=21)),
        },
    )
    graph_controls.add_event(
        world,
        ALEX,
        {
            "subject": "Away",
            "isAllDay": True,
            "showAs": "oof",
            "start": {"dateTime": "2030-03-07T00:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2030-03-08T00:00:00", "timeZone": "Pacific Standard Time"},
        },
    )
    graph_controls.add_event(
        world,
        ALEX,
        {
            "subject": "Daily",
            "start": at(START + timedelta(hours=16)),
            "end": at(START + timedelta(hours=16, minutes=30)),
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 5},
            },
        },
    )
    return graph_controls.add_event(
        world,
        LIDIA,
        {
            "subject": "Panel",
            "start": at(day + timedelta(days=2, hours=15)),
            "end": at(day + timedelta(days=2, hours=16)),
            "attendees": [{"emailAddress": {"address": ALEX}, "type": "required"}],
        },
    ).id


def blocks_of_schedule(graph: GraphClient, world: World, person: str) -> list[tuple[datetime, datetime, str]]:
    schedule = graph.get_schedules(user_token(world), [person], START, END, deadline=time.monotonic() + 20)[0]
    return sorted((b.start, b.end, b.status.value) for b in schedule.busy if b.status is not FreeBusyStatus.FREE)


def test_a_full_round_keeps_what_get_schedule_shows_and_nothing_more(world: World, graph: GraphClient) -> None:
    seed(world)
    delta = graph.busy_delta(app_token(world), ALEX, delta_link=None, start=START, end=END)
    kept = sorted((c.block.start, c.block.end, c.block.status.value) for c in delta.changes if c.block is not None)
    assert kept == blocks_of_schedule(graph, world, ALEX)
    assert len(kept) >= 9  # busy, private, tentative, all-day, five occurrences, the meeting's copy
    flags = {(c.block.private, c.block.all_day) for c in delta.changes if c.block is not None}
    assert (True, False) in flags and (False, True) in flags
    assert all(len(c.key) == 64 for c in delta.changes)  # hashes, never Graph's ids
    hours = graph.mailbox_hours(app_token(world), MIRIAM)
    live = graph.get_schedules(user_token(world), [MIRIAM], START, END, deadline=time.monotonic() + 20)[0]
    assert hours.working_hours == live.working_hours and hours.time_zone == live.mailbox_time_zone
    again = graph.mailbox_hours_from(hours.source)
    assert again.working_hours == live.working_hours and again.time_zone == live.mailbox_time_zone


def test_later_rounds_bring_declines_moves_and_deletes_and_a_gone_link_raises(world: World, graph: GraphClient) -> None:
    meeting = seed(world)
    token = app_token(world)
    first = graph.busy_delta(token, ALEX, delta_link=None, start=START, end=END)
    kept = {c.key: c.block for c in first.changes if c.block is not None}
    graph_controls.decline(world, meeting, ALEX)
    alex = graph_controls.resolve_user(world, ALEX)
    busy = next(e for e in world.mailbox_events(alex.id) if e.subject == "Busy")
    graph_controls.move_event(world, busy.id, START + timedelta(days=20), START + timedelta(days=20, hours=1))
    second = graph.busy_delta(token, ALEX, delta_link=first.delta_link, start=START, end=END)
    for change in second.changes:
        if change.block is None:
            kept.pop(change.key, None)
        else:
            kept[change.key] = change.block
    assert event_key(busy.id) in {c.key for c in second.changes if c.block is None}  # moved out of the window
    assert sorted((b.start, b.end, b.status.value) for b in kept.values()) == blocks_of_schedule(graph, world, ALEX)
    graph_controls.expire_delta_tokens(world, ALEX, code="syncStateNotFound")
    with pytest.raises(DeltaExpired):
        graph.busy_delta(token, ALEX, delta_link=second.delta_link, start=START, end=END)


def test_entries_are_reduced_to_blocks_or_removals() -> None:
    base = {
        "id": "AAMk1",
        "start": {"dateTime": "2030-03-04T15:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-04T16:00:00.0000000", "timeZone": "UTC"},
        "subject": "never kept",
    }
    assert busy_change({"id": "AAMk1", "@removed": {"reason": "deleted"}}) == busy_change({**base, "isCancelled": True})
    assert busy_change({**base, "showAs": "free"}).block is None  # type: ignore[union-attr]
    assert busy_change({**base, "type": "seriesMaster"}) is None
    odd = busy_change({**base, "showAs": "somethingNew"})
    assert odd is not None and odd.block is not None and odd.block.status is FreeBusyStatus.UNKNOWN
    local = busy_change(
        {**base, "showAs": "busy", "start": {"dateTime": "2030-03-04T07:00:00", "timeZone": "Pacific Standard Time"}}
    )
    assert local is not None and local.block is not None and local.block.start == datetime(2030, 3, 4, 15, tzinfo=UTC)
    with pytest.raises(ValueError):
        busy_change({**base, "end": {"dateTime": "2030-03-04T14:00:00", "timeZone": "UTC"}})
