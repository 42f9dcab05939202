"""NCRONTAB parsing and next-occurrence rules of the local host's timer trigger."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devtools.host.config import HostConfigurationError
from devtools.host.ncrontab import NCrontab, NCrontabError
from devtools.host.timers import parse_schedule


def occurrences(expression: str, start: datetime, count: int) -> list[datetime]:
    schedule = NCrontab.parse(expression)
    found: list[datetime] = []
    moment = start
    for _ in range(count):
        following = schedule.next_after(moment)
        assert following is not None
        found.append(following)
        moment = following
    return found


def test_every_five_minutes_on_the_minute() -> None:
    assert occurrences("0 */5 * * * *", datetime(2025, 3, 4, 10, 58, 30), 3) == [
        datetime(2025, 3, 4, 11, 0, 0),
        datetime(2025, 3, 4, 11, 5, 0),
        datetime(2025, 3, 4, 11, 10, 0),
    ]


def test_office_hours_on_weekdays_skip_the_weekend() -> None:
    # 2025-03-07 is a Friday.
    assert occurrences("0 0 9-17 * * Mon-Fri", datetime(2025, 3, 7, 16, 30), 3) == [
        datetime(2025, 3, 7, 17, 0),
        datetime(2025, 3, 10, 9, 0),
        datetime(2025, 3, 10, 10, 0),
    ]


def test_seconds_field_comes_first() -> None:
    assert occurrences("*/15 * * * * *", datetime(2025, 1, 1, 0, 0, 0), 4) == [
        datetime(2025, 1, 1, 0, 0, 15),
        datetime(2025, 1, 1, 0, 0, 30),
        datetime(2025, 1, 1, 0, 0, 45),
        datetime(2025, 1, 1, 0, 1, 0),
    ]


def test_next_occurrence_is_strictly_after_the_given_moment() -> None:
    schedule = NCrontab.parse("0 30 9 * * *")
    assert schedule.next_after(datetime(2025, 1, 1, 9, 30, 0)) == datetime(2025, 1, 2, 9, 30, 0)
    assert schedule.next_after(datetime(2025, 1, 1, 9, 29, 59, 999999)) == datetime(2025, 1, 1, 9, 30, 0)


def test_lists_ranges_with_steps_and_start_with_step() -> None:
    schedule = NCrontab.parse("5/20 0,30 1-7/3 * * *")
    assert schedule.seconds == (5, 25, 45)
    assert schedule.minutes == (0, 30)
    assert schedule.hours == (1, 4, 7)


def test_month_and_day_names_are_case_insensitive_prefixes() -> None:
    schedule = NCrontab.parse("0 0 12 * jan,MAR-may sunday,Sat")
    assert schedule.months == (1, 3, 4, 5)
    assert schedule.days_of_week == (0, 6)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # NCrontab semantics, unlike Unix cron's "either": Friday the 13th only.
    assert occurrences("0 0 0 13 * Fri", datetime(2024, 1, 1), 2) == [
        datetime(2024, 9, 13),
        datetime(2024, 12, 13),
    ]


def test_february_29th_waits_for_a_leap_year() -> None:
    assert occurrences("0 0 0 29 Feb *", datetime(2025, 1, 1), 1) == [datetime(2028, 2, 29)]


def test_times_keep_the_time_zone_of_the_given_moment() -> None:
    following = NCrontab.parse("0 0 * * * *").next_after(datetime(2025, 1, 1, 10, 15, tzinfo=UTC))
    assert following == datetime(2025, 1, 1, 11, 0, tzinfo=UTC)


def test_five_field_unix_form_is_refused_with_a_hint() -> None:
    with pytest.raises(NCrontabError, match="five fields.*six, seconds first"):
        NCrontab.parse("*/5 * * * *")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("60 * * * * *", "outside the second field's range 0-59"),
        ("0 0 24 * * *", "outside the hour field's range 0-23"),
        ("0 0 0 0 * *", "outside the day field's range 1-31"),
        ("0 0 0 * 13 *", "outside the month field's range 1-12"),
        ("0 0 0 * * 7", "outside the day-of-week field's range 0-6"),
        ("*/0 * * * * *", "step in the second field must be a positive number"),
        ("5-1 * * * * *", "runs backwards"),
        ("0 0 0 * Foo *", "'Foo' is not valid in the month field"),
        ("x * * * * *", "'x' is not valid in the second field"),
        ("0,,5 * * * * *", "empty list item"),
        ("0 0 0 30 Feb *", "never occurs"),
        ("0 0 0 * * * *", "7 fields"),
        ("", "0 fields"),
    ],
)
def test_invalid_expressions_are_refused_naming_the_problem(expression: str, message: str) -> None:
    with pytest.raises(NCrontabError, match=message):
        NCrontab.parse(expression)


def test_percent_setting_schedule_is_resolved_from_settings() -> None:
    schedule = parse_schedule(
        "%RENEWAL_SCHEDULE%",
        {"RENEWAL_SCHEDULE": "0 0 */6 * * *"},
        function_name="renew",
    )
    assert schedule.expression == "0 0 */6 * * *"
    assert schedule.hours == (0, 6, 12, 18)


def test_missing_schedule_setting_names_the_setting_and_function() -> None:
    with pytest.raises(HostConfigurationError, match="function 'renew'.*'RENEWAL_SCHEDULE'"):
        parse_schedule("%RENEWAL_SCHEDULE%", {}, function_name="renew")


def test_invalid_schedule_from_a_setting_names_the_function() -> None:
    with pytest.raises(HostConfigurationError, match="function 'renew' is invalid.*five fields"):
        parse_schedule("%S%", {"S": "0 */6 * * *"}, function_name="renew")
