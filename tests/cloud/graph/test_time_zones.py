"""Time zones in the local Graph: CLDR's Windows names, custom zones, working hours across UTC midnight,
the March weeks in which the US and Europe change to daylight time on different dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient
from tzlocal.windows_tz import win_tz

from devtools.cloud.graph import controls
from devtools.cloud.graph.fixtures import EU_DAYLIGHT_2030, MARCH_DST_WINDOW, US_DAYLIGHT_2030
from devtools.cloud.graph.pipeline import MAILBOX_CONCURRENCY
from devtools.cloud.graph.store import graph_state
from devtools.cloud.graph.testing import SERVICE_CLIENT_ID, app_only, delegated
from devtools.cloud.graph.timezones import CustomTimeZone, time_zone_base, working_intervals, zone
from devtools.cloud.state import World

MEGAN = "megan.bowen@contoso.example"
LIDIA = "lidia.holloway@contoso.example"
DIEGO = "diego.siciliani@contoso.example"
MIRIAM = "miriam.graham@contoso.example"
HANA = "hana.sato@contoso.example"
OLIVER = "oliver.grant@contoso.example"


def hours_of(world: World, address: str) -> dict[str, Any]:
    user = controls.resolve_user(world, address)
    return dict(user.mailbox_settings["workingHours"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_every_cldr_windows_name_and_its_iana_name_is_a_zone() -> None:
    for windows, iana in win_tz.items():
        assert zone(windows) is not None, windows
        assert zone(windows.upper()) is not None, windows
        assert zone(iana) is not None, iana
    assert zone("Mars Standard Time") is None
    assert zone("") is None


def test_the_fixture_custom_zone_keeps_sydney_time_for_three_years(world: World) -> None:
    custom = time_zone_base(hours_of(world, MIRIAM)["timeZone"])
    assert isinstance(custom, CustomTimeZone)
    sydney = ZoneInfo("Australia/Sydney")
    instant = datetime(2029, 1, 1, 0, 30, tzinfo=UTC)
    while instant < datetime(2032, 1, 1, tzinfo=UTC):
        ours, theirs = instant.astimezone(custom), instant.astimezone(sydney)
        assert ours.replace(tzinfo=None) == theirs.replace(tzinfo=None), instant
        assert ours.astimezone(UTC) == instant
        instant += timedelta(hours=1)


def test_custom_zone_uses_graphs_bias_sign_utc_is_local_plus_bias() -> None:
    # Graph returns +480 for US Pacific (Windows convention), daylight bias -60.
    pacific = CustomTimeZone(
        {
            "bias": 480,
            "standardOffset": {"time": "02:00:00", "dayOccurrence": 1, "dayOfWeek": "sunday", "month": 11},
            "daylightOffset": {
                "daylightBias": -60,
                "time": "02:00:00",
                "dayOccurrence": 2,
                "dayOfWeek": "sunday",
                "month": 3,
            },
        }
    )
    la = ZoneInfo("America/Los_Angeles")
    for text in (
        "2030-01-15T12:00",
        "2030-03-10T09:59",
        "2030-03-10T10:00",
        "2030-07-01T00:00",
        "2030-11-03T08:59",
        "2030-11-03T09:00",
    ):
        instant = utc(text)
        assert instant.astimezone(pacific).utcoffset() == instant.astimezone(la).utcoffset(), text


@pytest.mark.parametrize(
    ("address", "opens", "closes"),
    [
        (HANA, "2030-03-05T23:00", "2030-03-06T09:00"),  # Tokyo 08:00-18:00 on Wednesday 6 March
        (OLIVER, "2030-03-05T22:00", "2030-03-06T06:00"),  # Sydney 09:00-17:00 (daylight time, +11)
        (MIRIAM, "2030-03-05T21:30", "2030-03-06T06:00"),  # custom zone, 08:30-17:00 at +11
    ],
)
def test_working_hours_cross_midnight_in_utc(world: World, address: str, opens: str, closes: str) -> None:
    spans = working_intervals(hours_of(world, address), utc("2030-03-05T12:00"), utc("2030-03-06T12:00"))
    assert spans == [(utc(opens), utc(closes))]


def test_working_hours_follow_the_us_and_the_european_change_on_their_own_dates(world: World) -> None:
    start = datetime.combine(MARCH_DST_WINDOW[0], datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(MARCH_DST_WINDOW[1], datetime.min.time(), tzinfo=UTC)
    new_york = {s.date(): s.hour for s, _ in working_intervals(hours_of(world, MEGAN), start, end)}
    london = {s.date(): s.hour for s, _ in working_intervals(hours_of(world, LIDIA), start, end)}
    berlin = {s.date(): s.hour for s, _ in working_intervals(hours_of(world, DIEGO), start, end)}
    before_us, between, after_eu = date(2030, 3, 8), date(2030, 3, 12), date(2030, 4, 2)
    assert US_DAYLIGHT_2030 < between < EU_DAYLIGHT_2030 < after_eu
    # Megan works 08:00 in New York: 13:00 UTC, then 12:00 UTC from 10 March.
    assert (new_york[before_us], new_york[between], new_york[after_eu]) == (13, 12, 12)
    # Lidia works 09:00 in London: 09:00 UTC until 31 March, then 08:00 UTC; Diego 09:00 in Berlin likewise.
    assert (london[before_us], london[between], london[after_eu]) == (9, 9, 8)
    assert (berlin[before_us], berlin[between], berlin[after_eu]) == (8, 8, 7)
    # Megan opens 4 hours after Lidia in UTC, but 3 hours between the two changes.
    assert [new_york[d] - london[d] for d in (before_us, between, after_eu)] == [4, 3, 4]


def test_a_series_across_both_changes_keeps_its_wall_clock_times(world: World, client: TestClient) -> None:
    first = MARCH_DST_WINDOW[0]
    for address, tz in ((MEGAN, "Eastern Standard Time"), (LIDIA, "GMT Standard Time")):
        controls.add_event(
            world,
            address,
            {
                "subject": "Weekly sync",
                "start": {"dateTime": f"{first}T10:00:00", "timeZone": tz},
                "end": {"dateTime": f"{first}T10:30:00", "timeZone": tz},
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    "range": {"type": "numbered", "startDate": str(first), "numberOfOccurrences": 5},
                },
            },
        )
    headers = delegated(world, MEGAN, ["Calendars.Read"])
    body = {
        "schedules": [MEGAN, LIDIA],
        "startTime": {"dateTime": f"{MARCH_DST_WINDOW[0]}T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": f"{MARCH_DST_WINDOW[1]}T00:00:00", "timeZone": "UTC"},
        "availabilityViewInterval": 30,
    }
    answer = client.post("/v1.0/me/calendar/getSchedule", json=body, headers=headers).json()["value"]
    starts = {
        info["scheduleId"]: [
            i["start"]["dateTime"][:16] for i in info["scheduleItems"] if i.get("subject") == "Weekly sync"
        ]
        for info in answer
    }
    # Megan's 10:00 New York: 15:00 UTC, then 14:00 UTC from 10 March.
    assert starts[MEGAN] == [
        "2030-03-04T15:00",
        "2030-03-11T14:00",
        "2030-03-18T14:00",
        "2030-03-25T14:00",
        "2030-04-01T14:00",
    ]
    # Lidia's 10:00 London: 10:00 UTC, then 09:00 UTC from 31 March.
    assert starts[LIDIA] == [
        "2030-03-04T10:00",
        "2030-03-11T10:00",
        "2030-03-18T10:00",
        "2030-03-25T10:00",
        "2030-04-01T09:00",
    ]
    # The availabilityView marks the same half hours (slot index = half hours since the window start).
    view = next(info for info in answer if info["scheduleId"] == MEGAN)["availabilityView"]
    assert view[30] == "2" and view[29] == "0"  # 4 March 15:00 UTC
    assert view[7 * 48 + 28] == "2" and view[7 * 48 + 30] == "0"  # 11 March 14:00 UTC


def test_get_schedule_answers_a_custom_zone_users_working_hours_as_stored(world: World, client: TestClient) -> None:
    headers = delegated(world, MEGAN, ["Calendars.Read"])
    body = {
        "schedules": [MIRIAM, HANA],
        "startTime": {"dateTime": "2030-03-05T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2030-03-06T00:00:00", "timeZone": "UTC"},
    }
    answer = client.post("/v1.0/me/calendar/getSchedule", json=body, headers=headers).json()["value"]
    assert answer[0]["workingHours"]["timeZone"]["@odata.type"] == "#microsoft.graph.customTimeZone"
    assert answer[0]["workingHours"]["timeZone"]["bias"] == -600
    assert answer[1]["workingHours"]["timeZone"] == {"name": "Tokyo Standard Time"}


def test_parallel_get_schedule_calls_share_the_callers_four_mailbox_slots(world: World, client: TestClient) -> None:
    megan = controls.resolve_user(world, MEGAN)
    headers = delegated(world, MEGAN, ["Calendars.Read"])
    body = {
        "schedules": [LIDIA, DIEGO],
        "startTime": {"dateTime": "2030-03-05T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2030-03-06T00:00:00", "timeZone": "UTC"},
    }
    in_flight = graph_state(world).in_flight
    key = (SERVICE_CLIENT_ID, megan.id)
    in_flight[key] = MAILBOX_CONCURRENCY - 1  # three of Megan's getSchedule calls still running
    assert client.post("/v1.0/me/calendar/getSchedule", json=body, headers=headers).status_code == 200
    assert in_flight[key] == MAILBOX_CONCURRENCY - 1  # the fourth gave its slot back
    in_flight[key] = MAILBOX_CONCURRENCY
    refused = client.post("/v1.0/me/calendar/getSchedule", json=body, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "ApplicationThrottled"
    # Other mailboxes named in the schedules are not entered: their slots are untouched.
    assert all(k[1] == megan.id for k in in_flight)
    # An app-only call runs against another mailbox and is not held up by Megan's four.
    app = app_only(world, "contoso.example", ["Calendars.Read"])
    assert client.post(f"/v1.0/users/{LIDIA}/calendar/getSchedule", json=body, headers=app).status_code == 200
