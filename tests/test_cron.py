"""Cron semantics: Vixie/Debian rules, DST transitions, and errors a user can act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from jobtui import CronExpression, InvalidTrigger

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")

EXPRESSIONS = [
    "30 2 * * *",  # specific time inside the gap / the repeated hour
    "0 2 * * *",
    "0 3 * * *",
    "15,45 2 * * *",
    "0 * * * *",  # wildcard hour: follows real time
    "*/30 2 * * *",
    "*/20 * * * *",
    "0 1-3 * * *",
    "30 1 * * 0",
    "0 0 13 * 5",  # dom and dow both restricted: OR
    "0 0 */2 * 1",  # dom starts with *: AND
    "59 23 * * *",
    "0 0 L * *",
    "0 0 * * 5#3",
]
ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "America/Santiago",
    "Asia/Tehran",
    "Pacific/Chatham",
    "America/Havana",  # DST at midnight
    "UTC",
]
# Windows that contain spring-forward and fall-back transitions in both hemispheres.
STARTS = [datetime(2026, 3, 1), datetime(2026, 9, 25), datetime(2025, 3, 20), datetime(2024, 10, 1)]


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_matches_cronsim_across_transitions(zone_name: str, expr: str) -> None:
    """cronsim implements Debian cron's DST handling; jobtui must agree instant for instant."""
    zone = ZoneInfo(zone_name)
    ours = CronExpression(expr)
    count = 150 if expr.split()[1] == "*" else 45
    for start in STARTS:
        begin = start.replace(tzinfo=zone)
        oracle = CronSim(expr, begin)
        current = begin
        for _ in range(count):
            expected = next(oracle).astimezone(UTC)
            current = ours.next_after(current, zone)
            assert current == expected, f"{expr} in {zone_name} from {start}"


def _day(expr: str, zone: ZoneInfo, day: datetime) -> list[str]:
    """Local wall times (with offsets) at which ``expr`` fires on ``day``."""
    start = day.replace(tzinfo=zone)
    end = start + timedelta(days=1)
    out, current = [], start - timedelta(seconds=1)
    ce = CronExpression(expr)
    while True:
        current = ce.next_after(current, zone)
        if current.astimezone(zone) >= end:
            return out
        out.append(current.astimezone(zone).strftime("%H:%M%z"))


@pytest.mark.parametrize(
    ("zone", "gap_day", "fixed", "after_gap"),
    [
        (BERLIN, datetime(2026, 3, 29), "30 2 * * *", "03:00+0200"),
        (NEW_YORK, datetime(2026, 3, 8), "30 2 * * *", "03:00-0400"),
        (SYDNEY, datetime(2026, 10, 4), "30 2 * * *", "03:00+1100"),
    ],
)
def test_fixed_time_in_dst_gap_runs_once_right_after_it(zone, gap_day, fixed, after_gap) -> None:
    assert _day(fixed, zone, gap_day) == [after_gap]
    assert _day(fixed, zone, gap_day + timedelta(days=1))[0].startswith("02:30")


@pytest.mark.parametrize(
    ("zone", "fold_day", "first"),
    [
        (BERLIN, datetime(2026, 10, 25), "02:30+0200"),
        (NEW_YORK, datetime(2026, 11, 1), "01:30-0400"),
        (SYDNEY, datetime(2026, 4, 5), "02:30+1100"),
    ],
)
def test_fixed_time_in_repeated_hour_runs_once_at_first_occurrence(zone, fold_day, first) -> None:
    hour = first[:2]
    assert _day(f"30 {int(hour)} * * *", zone, fold_day) == [first]


@pytest.mark.parametrize(
    ("zone", "short_day", "long_day"),
    [
        (BERLIN, datetime(2026, 3, 29), datetime(2026, 10, 25)),
        (NEW_YORK, datetime(2026, 3, 8), datetime(2026, 11, 1)),
        (SYDNEY, datetime(2026, 10, 4), datetime(2026, 4, 5)),
    ],
)
def test_wildcard_hour_follows_real_time(zone, short_day, long_day) -> None:
    assert len(_day("0 * * * *", zone, short_day)) == 23
    assert len(_day("0 * * * *", zone, long_day)) == 25
    assert len(_day("0 * * * *", zone, long_day + timedelta(days=1))) == 24


def test_wildcard_minute_in_a_fixed_hour_runs_in_both_folds() -> None:
    assert _day("*/30 2 * * *", BERLIN, datetime(2026, 10, 25)) == [
        "02:00+0200",
        "02:30+0200",
        "02:00+0100",
        "02:30+0100",
    ]


def test_day_of_month_and_week_or_unless_a_field_starts_with_star() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    ors = CronExpression("0 0 13 * 5")
    days = []
    current = after
    for _ in range(4):
        current = ors.next_after(current, UTC)
        days.append(current.strftime("%a %d"))
    assert days == ["Fri 02", "Fri 09", "Tue 13", "Fri 16"]
    ands = CronExpression("0 0 */2 * 1")
    current, days = after, []
    for _ in range(3):
        current = ands.next_after(current, UTC)
        days.append(current.strftime("%a %d %b"))
    assert days == ["Mon 05 Jan", "Mon 19 Jan", "Mon 09 Feb"]


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_zero_and_seven_are_sunday(sunday: str) -> None:
    fire = CronExpression(f"0 0 * * {sunday}").next_after(datetime(2026, 1, 1, tzinfo=UTC), UTC)
    assert fire.strftime("%A") == "Sunday"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("@hourly", "2026-01-01T01:00:00+00:00"),
        ("@daily", "2026-01-02T00:00:00+00:00"),
        ("@weekly", "2026-01-04T00:00:00+00:00"),
        ("@monthly", "2026-02-01T00:00:00+00:00"),
        ("@yearly", "2027-01-01T00:00:00+00:00"),
        ("0 0 L * *", "2026-01-31T00:00:00+00:00"),
        ("0 0 * * fri#3", "2026-01-16T00:00:00+00:00"),
        ("0 0 * * 5L", "2026-01-30T00:00:00+00:00"),
        ("0 12 * jan,feb mon", "2026-01-05T12:00:00+00:00"),
        ("*/15 0 0 * * *", "2026-01-01T00:00:15+00:00"),  # six fields: seconds first
        ("0 0 29 2 *", "2028-02-29T00:00:00+00:00"),  # leap day
    ],
)
def test_syntax(expr: str, expected: str) -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert CronExpression(expr).next_after(after, UTC).isoformat() == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 31 2 *", "never fires: February has no 31st"),
        ("0 0 30 2 *", "never fires: February has no 30th"),
        ("0 0 31 4,6 *", "never fires: April and June have no 31st"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * foo *", 'month field: cannot read "foo"'),
        ("* * * *", "has 4 fields; write 5"),
        ("* * * * * * *", "has 7 fields"),
        ("5-2 * * * *", "minute range 5-2 goes backwards"),
        ("*/0 * * * *", 'step "/0" must be a whole number above 0'),
        ("0 0 * * fri#6", "the number after # is the week of the month, 1-5"),
        ("@reboot", "@reboot is not a schedule"),
        ("@fortnightly", "unknown macro"),
    ],
)
def test_errors_name_the_problem(expr: str, message: str) -> None:
    with pytest.raises(InvalidTrigger) as info:
        CronExpression(expr)
    assert message in str(info.value)
    assert info.value.key == "cron"


def test_lord_howe_half_hour_fall_back_keeps_the_single_two_oclock() -> None:
    """Lord Howe moves its clocks back 30 minutes at 02:00, so 01:30-02:00 repeats and 02:00
    itself happens once. cronsim skips that 02:00 for `*/30 2`; jobtui fires at it, because it
    is a real instant whose wall time matches the expression (a known divergence from the
    oracle, asserted here so that it is a decision rather than an accident)."""
    zone = ZoneInfo("Australia/Lord_Howe")
    assert _day("*/30 2 * * *", zone, datetime(2026, 4, 5)) == ["02:00+1030", "02:30+1030"]


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("30 2 * * *", "at 02:30 every day"),
        ("0 9 * * mon", "at 09:00 every Monday"),
        ("0 9 * * 1-5", "at 09:00 on weekdays"),
        ("15 6 1 * *", "at 06:15 on day 1 of every month"),
        ("5 * * * *", "every hour at :05"),
        ("*/15 * * * *", "every 15 minutes"),
        ("@daily", "at 00:00 every day"),
        ("0 0 13 * 5", "cron 0 0 13 * 5"),  # anything else is shown as written
    ],
)
def test_cron_in_words(expr: str, words: str) -> None:
    assert CronExpression(expr).describe() == words
