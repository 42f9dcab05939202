"""GraphClient.get_schedules against the local Microsoft cloud over HTTPS: real JSON, real concurrency."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devtools.cloud import controls
from devtools.cloud.graph import controls as graph_controls
from devtools.cloud.graph.testing import delegated
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from shared.adapters.graph import GraphClient
from shared.config import Settings
from shared.errors import GraphRequestFailed
from shared.models import AccessToken, FreeBusyStatus, ScheduleStatus

MEGAN = "megan.bowen@contoso.example"
ALEX = "alex.wilber@contoso.example"
MIRIAM = "miriam.graham@contoso.example"  # working hours in a custom zone (Sydney's rules)
NESTOR = "nestor.wilke@contoso.example"  # mailbox on premises
TOM = "tom.ochieng@fabrikam.example"  # another tenant
START = datetime(2030, 1, 7, tzinfo=UTC)
END = datetime(2030, 7, 7, tzinfo=UTC)  # six months: three windows


@pytest.fixture
def world(cloud: RunningCloud) -> World:
    controls.reset_world(cloud.world)
    return cloud.world


@pytest.fixture
def graph(cloud: RunningCloud) -> Iterator[GraphClient]:
    client = GraphClient(Settings(graph_base_url=cloud.graph_url))
    yield client
    client.close()


def token_of(world: World, user: str) -> AccessToken:
    header = delegated(world, user, ["Calendars.Read"])["Authorization"]
    return AccessToken(token=header.removeprefix("Bearer "), tenant_id="", scopes=("Calendars.Read",))


def test_six_months_for_a_mixed_panel_from_the_local_cloud(world: World, graph: GraphClient) -> None:
    straddle_start = START + timedelta(days=61) - timedelta(hours=1)
    graph_controls.add_event(
        world,
        ALEX,
        {
            "subject": "Offsite",
            "start": {"dateTime": straddle_start.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            "end": {
                "dateTime": (straddle_start + timedelta(hours=2)).replace(tzinfo=None).isoformat(),
                "timeZone": "UTC",
            },
            "showAs": "oof",
        },
    )
    asked = [ALEX, MIRIAM, NESTOR, "nobody@contoso.example", TOM, MEGAN]
    schedules = graph.get_schedules(token_of(world, MEGAN), asked, START, END, deadline=time.monotonic() + 20)
    result = {s.email: s for s in schedules}
    assert [s.email for s in schedules] == asked

    alex = result[ALEX]
    assert alex.status is ScheduleStatus.OK
    offsite = [b for b in alex.busy if b.start == straddle_start]
    assert len(offsite) == 1 and offsite[0].status is FreeBusyStatus.OOF
    assert offsite[0].end == straddle_start + timedelta(hours=2)
    assert alex.working_hours is not None and alex.mailbox_time_zone

    miriam = result[MIRIAM]
    assert miriam.status is ScheduleStatus.OK and miriam.working_hours is not None
    assert miriam.working_hours.time_zone_name == "Customized Time Zone"
    zone = miriam.working_hours.time_zone
    assert datetime(2030, 1, 14, 9, tzinfo=zone).utcoffset() == timedelta(hours=11)
    assert datetime(2030, 6, 10, 9, tzinfo=zone).utcoffset() == timedelta(hours=10)

    assert (result[NESTOR].status, result[NESTOR].reason) == (ScheduleStatus.UNREADABLE, "on_premises")
    assert (result["nobody@contoso.example"].reason, result[TOM].reason) == ("unknown", "unknown")
    assert result[MEGAN].status is ScheduleStatus.OK


def test_a_token_the_local_cloud_refuses_raises_unauthorized(world: World, graph: GraphClient) -> None:
    forged = AccessToken(token="not-a-token", tenant_id="")  # noqa: S106 - a deliberately bad value
    with pytest.raises(GraphRequestFailed) as caught:
        graph.get_schedules(forged, [ALEX], START, START + timedelta(days=1), deadline=time.monotonic() + 20)
    assert caught.value.reason == "unauthorized"
