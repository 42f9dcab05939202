"""Windows, IANA and Outlook custom time zones, across daylight-saving changes in both hemispheres."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from dateutil.tz import tzrange

from shared.timezones import (
    CustomTimeZone,
    TransitionRule,
    UnknownTimeZone,
    custom_time_zone,
    resolve_time_zone,
    time_zone_key,
    windows_name_of,
)

# The same rules Windows uses for these zones, written the way Graph's customTimeZone carries them.
US_EASTERN = custom_time_zone(
    "US Eastern (custom)",
    300,
    standard=TransitionRule(month=11, occurrence=1, weekday="sunday", at=time(2)),
    daylight=TransitionRule(month=3, occurrence=2, weekday="sunday", at=time(2)),
    daylight_bias_minutes=-60,
)
CENTRAL_EUROPE = custom_time_zone(
    "Central Europe (custom)",
    -60,
    standard=TransitionRule(month=10, occurrence=5, weekday="sunday", at=time(3)),
    daylight=TransitionRule(month=3, occurrence=5, weekday="sunday", at=time(2)),
    daylight_bias_minutes=-60,
)
SYDNEY = custom_time_zone(  # the local cloud's fixture user with a custom zone
    "Customized Time Zone",
    -600,
    standard=TransitionRule(month=4, occurrence=1, weekday="sunday", at=time(3)),
    daylight=TransitionRule(month=10, occurrence=1, weekday="sunday", at=time(2)),
    daylight_bias_minutes=-60,
)


def wall(zone: tzinfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)  # type: ignore[misc]


# ---- names ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Eastern Standard Time", "America/New_York"),
        ("eastern standard time", "America/New_York"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
        ("UTC", "Etc/UTC"),
        ("America/New_York", "America/New_York"),
        ("Europe/London", "Europe/London"),
        ("Etc/GMT+5", "Etc/GMT+5"),
    ],
)
def test_windows_and_iana_names_resolve_to_the_cldr_zone(name: str, key: str) -> None:
    zone = resolve_time_zone(name)
    assert time_zone_key(zone) == key


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus_Mons",
        "Eastern Time",
        "America",
        "../../etc/passwd",
        "/etc/localtime",
        "UTC\n",
        " Asia/Kolkata",
        "a" * 300,
    ],
)
def test_unknown_names_raise_a_value_error_naming_the_zone(name: str) -> None:
    with pytest.raises(UnknownTimeZone) as caught:
        resolve_time_zone(name)
    assert isinstance(caught.value, ValueError)
    assert caught.value.name == name


def test_windows_name_of_an_iana_zone_comes_from_cldr() -> None:
    assert windows_name_of("America/New_York") == "Eastern Standard Time"
    assert windows_name_of("Europe/Paris") == "Romance Standard Time"
    assert windows_name_of("Not/AZone") is None


def test_a_windows_zone_changes_to_daylight_time_on_its_own_date() -> None:
    eastern = resolve_time_zone("Eastern Standard Time")
    berlin = resolve_time_zone("W. Europe Standard Time")
    # March 2026: the US changes on the 8th, Europe on the 29th; in between they are 5 hours apart.
    assert wall(eastern, 2026, 3, 7, 12).utcoffset() == timedelta(hours=-5)
    assert wall(eastern, 2026, 3, 9, 12).utcoffset() == timedelta(hours=-4)
    assert wall(berlin, 2026, 3, 28, 12).utcoffset() == timedelta(hours=1)
    assert wall(berlin, 2026, 3, 30, 12).utcoffset() == timedelta(hours=2)
    gap = wall(berlin, 2026, 3, 16, 9) - wall(eastern, 2026, 3, 16, 9)
    assert gap == timedelta(hours=-5)


# ---- custom zones against the IANA zones with the same rules ------------------------------------------
@pytest.mark.parametrize(
    ("custom", "iana"),
    [(US_EASTERN, "America/New_York"), (CENTRAL_EUROPE, "Europe/Berlin"), (SYDNEY, "Australia/Sydney")],
)
def test_custom_zone_matches_the_iana_zone_every_quarter_hour_for_two_years(custom: CustomTimeZone, iana: str) -> None:
    reference = ZoneInfo(iana)
    instant = datetime(2025, 1, 1, tzinfo=UTC)
    while instant < datetime(2027, 1, 1, tzinfo=UTC):
        ours, theirs = instant.astimezone(custom), instant.astimezone(reference)
        assert (ours.replace(tzinfo=None), ours.fold) == (theirs.replace(tzinfo=None), theirs.fold), instant
        assert ours.utcoffset() == theirs.utcoffset(), instant
        assert ours.dst() == theirs.dst(), instant
        assert ours.astimezone(UTC) == instant
        # reading the wall clock back (with its fold) names the same instant
        again = ours.replace(tzinfo=None).replace(tzinfo=custom, fold=ours.fold)
        assert again.astimezone(UTC) == instant, instant
        instant += timedelta(minutes=15)


def test_custom_us_zone_skips_the_hour_on_the_second_sunday_of_march() -> None:
    # 02:30 on 8 March 2026 does not exist: fold 0 reads it with the offset before the jump (PEP 495).
    assert wall(US_EASTERN, 2026, 3, 8, 1, 59).utcoffset() == timedelta(hours=-5)
    assert wall(US_EASTERN, 2026, 3, 8, 2, 30).utcoffset() == timedelta(hours=-5)
    assert wall(US_EASTERN, 2026, 3, 8, 2, 30, fold=1).utcoffset() == timedelta(hours=-4)
    assert wall(US_EASTERN, 2026, 3, 8, 3, 0).utcoffset() == timedelta(hours=-4)
    assert wall(US_EASTERN, 2026, 3, 8, 3, 0).dst() == timedelta(hours=1)


def test_custom_us_zone_repeats_the_hour_on_the_first_sunday_of_november() -> None:
    first = wall(US_EASTERN, 2026, 11, 1, 1, 30)
    second = wall(US_EASTERN, 2026, 11, 1, 1, 30, fold=1)
    assert first.utcoffset() == timedelta(hours=-4)
    assert second.utcoffset() == timedelta(hours=-5)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert datetime(2026, 11, 1, 6, 30, tzinfo=UTC).astimezone(US_EASTERN).fold == 1


def test_custom_europe_zone_uses_the_last_sunday_of_march_and_october() -> None:
    # 2026: last Sundays are 29 March and 25 October, three weeks after the US change.
    assert wall(CENTRAL_EUROPE, 2026, 3, 28, 12).utcoffset() == timedelta(hours=1)
    assert wall(CENTRAL_EUROPE, 2026, 3, 29, 3, 0).utcoffset() == timedelta(hours=2)
    assert wall(CENTRAL_EUROPE, 2026, 10, 25, 2, 30).utcoffset() == timedelta(hours=2)
    assert wall(CENTRAL_EUROPE, 2026, 10, 25, 2, 30, fold=1).utcoffset() == timedelta(hours=1)
    # 2027: 31 October is itself the fifth Sunday
    assert wall(CENTRAL_EUROPE, 2027, 10, 30, 12).utcoffset() == timedelta(hours=2)
    assert wall(CENTRAL_EUROPE, 2027, 10, 31, 12).utcoffset() == timedelta(hours=1)


def test_custom_southern_zone_is_in_daylight_time_over_new_year() -> None:
    assert wall(SYDNEY, 2026, 1, 15, 9).utcoffset() == timedelta(hours=11)
    assert wall(SYDNEY, 2026, 1, 15, 9).dst() == timedelta(hours=1)
    assert wall(SYDNEY, 2026, 7, 15, 9).utcoffset() == timedelta(hours=10)
    assert wall(SYDNEY, 2026, 7, 15, 9).dst() == timedelta(0)
    # first Sunday of April 2026 is the 5th: 03:00 daylight becomes 02:00 standard
    assert wall(SYDNEY, 2026, 4, 5, 2, 30).utcoffset() == timedelta(hours=11)
    assert wall(SYDNEY, 2026, 4, 5, 2, 30, fold=1).utcoffset() == timedelta(hours=10)
    # first Sunday of October 2026 is the 4th: 02:00 standard becomes 03:00 daylight
    assert wall(SYDNEY, 2026, 10, 4, 1, 59).utcoffset() == timedelta(hours=10)
    assert wall(SYDNEY, 2026, 10, 4, 3, 0).utcoffset() == timedelta(hours=11)


def test_graph_documentation_example_zone_is_utc_plus_3_20_and_5_in_daylight_time() -> None:
    # The customTimeZone of Graph's "get mailboxSettings" example: bias -200, daylightBias -100,
    # daylight from the 2nd Sunday of October, standard from the 4th Sunday of May.
    zone = custom_time_zone(
        "Customized Time Zone",
        -200,
        standard=TransitionRule(month=5, occurrence=4, weekday="sunday", at=time(2)),
        daylight=TransitionRule(month=10, occurrence=2, weekday="sunday", at=time(2)),
        daylight_bias_minutes=-100,
    )
    assert wall(zone, 2026, 8, 1, 12).utcoffset() == timedelta(hours=3, minutes=20)
    assert wall(zone, 2026, 12, 1, 12).utcoffset() == timedelta(hours=5)
    assert wall(zone, 2026, 12, 1, 12).tzname() == "Customized Time Zone"
    assert time_zone_key(zone) == "Customized Time Zone"


def test_custom_zone_without_rules_has_a_fixed_offset() -> None:
    zone = custom_time_zone("Fixed", -330)
    for month in (1, 4, 7, 10):
        assert wall(zone, 2026, month, 1, 9).utcoffset() == timedelta(hours=5, minutes=30)
        assert wall(zone, 2026, month, 1, 9).dst() == timedelta(0)
    assert datetime(2026, 6, 1, 3, 30, tzinfo=UTC).astimezone(zone).hour == 9


@pytest.mark.parametrize(
    "build",
    [
        lambda: custom_time_zone("x", 20 * 60),
        lambda: custom_time_zone("x", 0, standard=TransitionRule(10, 5, "sunday", time(3))),
        lambda: TransitionRule(13, 1, "sunday", time(2)),
        lambda: TransitionRule(3, 0, "sunday", time(2)),
        lambda: TransitionRule(3, 6, "sunday", time(2)),
        lambda: TransitionRule(3, 1, "Sundays", time(2)),
    ],
)
def test_invalid_custom_zone_values_raise_value_error(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_equal_custom_zones_compare_equal() -> None:
    twin = custom_time_zone(
        "Customized Time Zone",
        -600,
        standard=TransitionRule(month=4, occurrence=1, weekday="sunday", at=time(3)),
        daylight=TransitionRule(month=10, occurrence=1, weekday="sunday", at=time(2)),
        daylight_bias_minutes=-60,
    )
    assert twin == SYDNEY and hash(twin) == hash(SYDNEY)
    assert twin != US_EASTERN


# ---- why the custom zone is dateutil's tzrange with two readings of its own ----------------------------
def _plain_tzrange(zone: CustomTimeZone) -> tzrange:
    """dateutil's tzrange over the same rules, without this module's two readings."""
    return tzrange(
        zone.name, zone._std_offset, zone.name, zone._dst_offset, start=zone._start_delta, end=zone._end_delta
    )


def test_a_skipped_wall_time_reads_as_zoneinfo_does_where_plain_tzrange_reads_daylight_time() -> None:
    # 02:30 on 8 March 2026 does not exist in New York; PEP 495 reads fold 0 with the offset before the jump.
    new_york = wall(ZoneInfo("America/New_York"), 2026, 3, 8, 2, 30)
    assert wall(US_EASTERN, 2026, 3, 8, 2, 30).utcoffset() == new_york.utcoffset() == timedelta(hours=-5)
    assert wall(_plain_tzrange(US_EASTERN), 2026, 3, 8, 2, 30).utcoffset() == timedelta(hours=-4)


def test_an_instant_near_new_year_follows_the_rules_of_its_local_year() -> None:
    # Daylight time (UTC+14) ends on the first Sunday of January at 03:00: on 1 January 2023, a Sunday, at
    # 13:00 UTC of 31 December 2022. An hour later the local year's rule has passed: 03:00 standard time.
    zone = custom_time_zone(
        "Near the date line",
        -780,
        standard=TransitionRule(month=1, occurrence=1, weekday="sunday", at=time(3)),
        daylight=TransitionRule(month=11, occurrence=1, weekday="sunday", at=time(2)),
        daylight_bias_minutes=-60,
    )
    instant = datetime(2022, 12, 31, 14, tzinfo=UTC)
    assert instant.astimezone(zone).replace(tzinfo=None) == datetime(2023, 1, 1, 3)
    assert instant.astimezone(zone).utcoffset() == timedelta(hours=13)
    # plain tzrange reads the rules of the UTC instant's year (2022) and still sees daylight time
    assert instant.astimezone(_plain_tzrange(zone)).replace(tzinfo=None) == datetime(2023, 1, 1, 4)


def test_a_change_on_the_day_before_its_rule_day_is_found_from_that_days_weekday() -> None:
    # Paraguay until 2024: daylight time ended on the fourth Sunday of March at 00:00 daylight time, which is
    # 23:00 standard time on the Saturday before; it began on the first Sunday of October at 00:00.
    paraguay = custom_time_zone(
        "Paraguay (custom)",
        240,
        standard=TransitionRule(month=3, occurrence=4, weekday="sunday", at=time(0)),
        daylight=TransitionRule(month=10, occurrence=1, weekday="sunday", at=time(0)),
        daylight_bias_minutes=-60,
    )
    reference = ZoneInfo("America/Asuncion")
    instant = datetime(2019, 1, 1, tzinfo=UTC)
    while instant < datetime(2021, 1, 1, tzinfo=UTC):
        ours, theirs = instant.astimezone(paraguay), instant.astimezone(reference)
        assert (ours.replace(tzinfo=None), ours.fold, ours.utcoffset()) == (
            theirs.replace(tzinfo=None),
            theirs.fold,
            theirs.utcoffset(),
        ), instant
        instant += timedelta(minutes=15)


def test_a_zone_whose_daylight_time_moves_clocks_back_matches_irelands_winter_time() -> None:
    # tzdata writes Ireland's winter as daylight time one hour behind standard (IST, UTC+1): a positive
    # daylight bias. Daylight time begins on the last Sunday of October at 02:00 and ends on the last
    # Sunday of March at 01:00 (its own clock).
    ireland = custom_time_zone(
        "Ireland (custom)",
        -60,
        standard=TransitionRule(month=3, occurrence=5, weekday="sunday", at=time(1)),
        daylight=TransitionRule(month=10, occurrence=5, weekday="sunday", at=time(2)),
        daylight_bias_minutes=60,
    )
    reference = ZoneInfo("Europe/Dublin")
    instant = datetime(2025, 1, 1, tzinfo=UTC)
    while instant < datetime(2027, 1, 1, tzinfo=UTC):
        ours, theirs = instant.astimezone(ireland), instant.astimezone(reference)
        assert (ours.replace(tzinfo=None), ours.fold, ours.utcoffset()) == (
            theirs.replace(tzinfo=None),
            theirs.fold,
            theirs.utcoffset(),
        ), instant
        instant += timedelta(minutes=15)
    assert wall(ireland, 2026, 1, 15, 12).dst() == timedelta(hours=-1)
    assert wall(ireland, 2026, 7, 15, 12).dst() == timedelta(0)
