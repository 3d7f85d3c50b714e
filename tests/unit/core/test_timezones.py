"""Time zone conversion at the API edges: V1 naive Pacific, Plex strict UTC ``Z``, V2 offsets.

The expected DST behaviour is computed from the US rules written out below, not from zoneinfo, so
these tests check the tz database and the module's decisions rather than restating the code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlconnector.timezones import (
    TimeFormatError,
    format_iso_utc,
    format_pacific,
    format_pacific_filter,
    format_pacific_filter_ceil,
    format_utc_z,
    pacific_to_utc,
    parse_iso_offset,
    parse_pacific,
    parse_utc_z,
    to_pacific_naive,
)

HOUR = timedelta(hours=1)
SUNDAY = 6


# --- an independent oracle: the US DST rules in force since 1987 ----------------------------------
def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(SUNDAY - first.weekday()) % 7 + 7 * (n - 1))


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - SUNDAY) % 7)


def fall_back_utc(year: int) -> datetime:
    """02:00 PDT (= 09:00 UTC) on the day DST ends; wall time 01:00-02:00 then happens twice."""
    day = _nth_sunday(year, 11, 1) if year >= 2007 else _last_sunday(year, 10)
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def spring_forward_utc(year: int) -> datetime:
    """02:00 PST (= 10:00 UTC) on the day DST starts; wall time 02:00-03:00 never happens."""
    day = _nth_sunday(year, 3, 2) if year >= 2007 else _nth_sunday(year, 4, 1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=UTC)


def in_repeated_hour(instant: datetime) -> bool:
    """True for the *second* occurrence of the repeated wall-clock hour (01:xx PST)."""
    start = fall_back_utc(instant.year)
    return start <= instant < start + HOUR


def expected_round_trip(instant: datetime) -> datetime:
    """The documented V1 decision: the first occurrence wins, so the second reads one hour early."""
    return instant - HOUR if in_repeated_hour(instant) else instant


def test_oracle_matches_known_transition_dates() -> None:
    assert fall_back_utc(2026) == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert spring_forward_utc(2026) == datetime(2026, 3, 8, 10, tzinfo=UTC)
    assert fall_back_utc(2005) == datetime(2005, 10, 30, 9, tzinfo=UTC)
    assert spring_forward_utc(2005) == datetime(2005, 4, 3, 10, tzinfo=UTC)


# --- parsing V1 timestamps ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("2026-01-15T04:00:00", 0),
        ("2026-01-15T04:00:00.1", 100_000),
        ("2026-01-15T04:00:00.12", 120_000),
        ("2026-01-15T04:00:00.123", 123_000),
        ("2026-01-15T04:00:00.1234", 123_400),
        ("2026-01-15T04:00:00.12345", 123_450),
        ("2026-01-15T04:00:00.123456", 123_456),
        ("2026-01-15T04:00:00.1234564", 123_456),  # 7th digit < 5: truncated
        ("2026-01-15T04:00:00.1234565", 123_457),  # 7th digit >= 5: rounded up
        ("2026-01-15T04:00:00.8230000", 823_000),
    ],
)
def test_parse_pacific_reads_zero_to_seven_fractional_digits(text: str, micro: int) -> None:
    parsed = parse_pacific(text)
    assert parsed == datetime(2026, 1, 15, 12, 0, 0, micro, tzinfo=UTC)  # PST is UTC-8
    assert parsed.tzinfo is UTC


def test_seventh_digit_rounding_carries_into_the_next_second() -> None:
    assert parse_pacific("2026-01-15T04:00:59.9999995") == datetime(2026, 1, 15, 12, 1, tzinfo=UTC)


def test_space_and_t_separators_are_the_same_instant() -> None:
    assert parse_pacific("2026-07-04 09:15:00") == parse_pacific("2026-07-04T09:15:00")
    assert parse_pacific("2026-07-04 09:15:00") == datetime(2026, 7, 4, 16, 15, tzinfo=UTC)  # PDT
    assert parse_pacific("2026-07-04 09:15") == datetime(2026, 7, 4, 16, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-15T04:00:00Z", datetime(2026, 1, 15, 4, tzinfo=UTC)),
        ("2026-01-15T04:00:00.5Z", datetime(2026, 1, 15, 4, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-01-15T04:00:00+02:00", datetime(2026, 1, 15, 2, tzinfo=UTC)),
        ("2026-01-15T04:00:00-0700", datetime(2026, 1, 15, 11, tzinfo=UTC)),
        ("2026-07-04T23:30:00-05:30", datetime(2026, 7, 5, 5, tzinfo=UTC)),
    ],
)
def test_values_with_z_or_offset_are_honoured_not_read_as_pacific(
    text: str, expected: datetime
) -> None:
    assert parse_pacific(text) == expected
    assert parse_pacific(text).tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-01-15",
        "2026-01-15T",
        "2026-13-01T00:00:00",
        "2026-02-30T00:00:00",
        "2026-01-15T25:00:00",
        "2026-01-15T04:61:00",
        "2026-01-15T04:00:00.12345678",
        "2026-01-15T04:00:00.",
        "2026-01-15T04:00:00+2",
        "2026-01-15T04:00:00 PST",
        "15/01/2026 04:00:00",
        "2026-01-15T04:00:00Zjunk",
    ],
)
def test_garbage_raises_time_format_error(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_pacific(text)


def test_time_format_error_names_the_value() -> None:
    with pytest.raises(TimeFormatError, match="2026-13-01"):
        parse_pacific("2026-13-01T00:00:00")


# --- the DST decisions, spelled out ---------------------------------------------------------------
def test_fall_back_hour_takes_the_first_occurrence_unless_told_otherwise() -> None:
    assert parse_pacific("2026-11-01 01:30:00") == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # PDT
    assert parse_pacific("2026-11-01 01:30:00", fold=1) == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def test_both_occurrences_of_the_repeated_hour_format_to_the_same_wall_time() -> None:
    first = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    second = first + HOUR
    assert format_pacific(first) == format_pacific(second) == "2026-11-01T01:30:00.0000000"
    assert format_pacific_filter(first) == format_pacific_filter(second) == "2026-11-01 01:30:00"
    # Read back, the second occurrence lands exactly one hour early (never late).
    assert parse_pacific(format_pacific(second)) == first


def test_inside_the_repeated_hour_wall_time_order_can_invert() -> None:
    # 01:50 PDT happens before 01:10 PST, but its wall time is later: V1's naive format cannot
    # order these, which is why cursors overlap by two hours (DESIGN §1) instead of trusting it.
    early = datetime(2026, 11, 1, 8, 50, tzinfo=UTC)
    late = datetime(2026, 11, 1, 9, 10, tzinfo=UTC)
    assert format_pacific(early) > format_pacific(late)
    assert parse_pacific(format_pacific(late)) == late - HOUR


def test_spring_forward_gap_reads_with_the_pre_transition_offset() -> None:
    gap = parse_pacific("2026-03-08T02:30:00")
    assert gap == datetime(2026, 3, 8, 10, 30, tzinfo=UTC)
    # PST applied to 02:30 is the same instant as 03:30 PDT.
    assert gap == parse_pacific("2026-03-08T03:30:00")
    # Before the gap, order with real wall times is kept.
    assert parse_pacific("2026-03-08T01:59:59") < gap


def test_no_real_instant_formats_into_the_spring_forward_gap() -> None:
    before = datetime(2026, 3, 8, 9, 59, 59, tzinfo=UTC)
    after = before + timedelta(seconds=1)
    assert format_pacific_filter(before) == "2026-03-08 01:59:59"
    assert format_pacific_filter(after) == "2026-03-08 03:00:00"


def test_naive_and_aware_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        pacific_to_utc(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="aware"):
        to_pacific_naive(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        format_utc_z(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        format_iso_utc(datetime(2026, 1, 1))


# --- every hour of 41 years -----------------------------------------------------------------------
def test_every_hour_2000_to_2040_round_trips_and_stays_ordered() -> None:
    """Exhaustive over 359,424 hours (about 2.5 s); the filter form is the body's wall time."""
    instant = datetime(2000, 1, 1, tzinfo=UTC)
    end = datetime(2041, 1, 1, tzinfo=UTC)
    repeated = [*(fall_back_utc(year) for year in range(2000, 2041)), end]
    previous_parsed = instant - HOUR
    previous_text = ""
    hours = early_by_one_hour = 0
    while instant < end:
        text = format_pacific(instant)
        parsed = parse_pacific(text)
        expected = instant
        if instant == repeated[early_by_one_hour]:
            expected = instant - HOUR  # the second occurrence reads as the first
            early_by_one_hour += 1
        # Round trip, and never backwards: in instants or in the strings sent as filters.
        ok = parsed == expected and previous_parsed <= parsed and previous_text <= text
        assert ok, (text, parsed, expected)
        assert format_pacific_filter(instant) == text[:10] + " " + text[11:19]
        previous_parsed, previous_text = parsed, text
        hours += 1
        instant += HOUR
    assert hours == 359_424
    assert early_by_one_hour == 41  # exactly one repeated hour per year, no more


@pytest.mark.parametrize("year", [2000, 2006, 2007, 2026, 2037, 2038, 2040])
def test_transition_days_minute_by_minute_filters_round_trip(year: int) -> None:
    """Both transition days of sample years, every minute, through the filter forms."""
    for start in (fall_back_utc(year), spring_forward_utc(year)):
        instant = start - timedelta(hours=12)
        while instant < start + timedelta(hours=12):
            assert parse_pacific(format_pacific_filter(instant)) == expected_round_trip(instant)
            assert parse_pacific(format_pacific(instant)) == expected_round_trip(instant)
            instant += timedelta(minutes=1)


# --- properties -----------------------------------------------------------------------------------
any_instant = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


@st.composite
def near_a_transition(draw: st.DrawFn) -> datetime:
    """Instants within three hours of a DST change, where the interesting cases live."""
    year = draw(st.integers(min_value=2000, max_value=2099))
    pivot = draw(st.sampled_from([fall_back_utc(year), spring_forward_utc(year)]))
    offset = draw(st.integers(min_value=-3 * 3600 * 10**6, max_value=3 * 3600 * 10**6))
    return pivot + timedelta(microseconds=offset)


instants = st.one_of(any_instant, near_a_transition())


@given(instants)
def test_format_then_parse_pacific_round_trips(instant: datetime) -> None:
    text = format_pacific(instant)
    assert len(text) == 27  # yyyy-mm-ddThh:mm:ss.fffffff
    assert parse_pacific(text) == expected_round_trip(instant)


@given(instants)
def test_filter_forms_round_trip_to_the_second(instant: datetime) -> None:
    floor = instant.replace(microsecond=0)
    ceil = floor + timedelta(seconds=1) if instant.microsecond else floor
    assert parse_pacific(format_pacific_filter(instant)) == expected_round_trip(floor)
    assert parse_pacific(format_pacific_filter_ceil(instant)) == expected_round_trip(ceil)


@given(instants, instants)
def test_order_is_preserved_outside_the_repeated_hour(a: datetime, b: datetime) -> None:
    if in_repeated_hour(a) or in_repeated_hour(b):
        return
    first, second = sorted((a, b))
    assert parse_pacific(format_pacific(first)) <= parse_pacific(format_pacific(second))
    assert format_pacific(first) <= format_pacific(second)


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))])))
def test_to_pacific_naive_then_back_is_the_same_instant_outside_the_repeated_hour(
    instant: datetime,
) -> None:
    utc = instant.astimezone(UTC)
    if not 2000 <= utc.year <= 2099 or in_repeated_hour(utc):
        return
    assert pacific_to_utc(to_pacific_naive(instant)) == instant


# --- Plex: strict UTC with Z ----------------------------------------------------------------------
def test_plex_z_format_parses_seven_digits() -> None:
    assert parse_utc_z("2026-01-15T12:00:00.1234567Z") == datetime(
        2026, 1, 15, 12, 0, 0, 123_457, tzinfo=UTC
    )
    assert format_utc_z(datetime(2026, 1, 15, 12, tzinfo=UTC)) == "2026-01-15T12:00:00.0000000Z"


@pytest.mark.parametrize(
    "text",
    ["2026-01-15T12:00:00.0000000", "2026-01-15T12:00:00+00:00", "2026-01-15T12:00:00-05:00"],
)
def test_plex_timestamps_without_z_are_refused(text: str) -> None:
    with pytest.raises(TimeFormatError, match="'Z'"):
        parse_utc_z(text)


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=9))])))
def test_plex_format_round_trips(instant: datetime) -> None:
    text = format_utc_z(instant)
    assert text.endswith("Z")
    assert parse_utc_z(text) == instant


# --- ShipStation V2: ISO with offset --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03-12T19:24:13.657Z", datetime(2019, 3, 12, 19, 24, 13, 657_000, tzinfo=UTC)),
        ("2019-03-12T12:24:13-07:00", datetime(2019, 3, 12, 19, 24, 13, tzinfo=UTC)),
        ("2019-03-13T01:24:13+0600", datetime(2019, 3, 12, 19, 24, 13, tzinfo=UTC)),
    ],
)
def test_v2_offsets_are_applied(text: str, expected: datetime) -> None:
    parsed = parse_iso_offset(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_v2_timestamp_without_offset_is_refused() -> None:
    with pytest.raises(TimeFormatError, match="offset"):
        parse_iso_offset("2019-03-12T19:24:13.657")


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])))
def test_v2_format_round_trips(instant: datetime) -> None:
    text = format_iso_utc(instant)
    assert text.endswith("Z")
    assert parse_iso_offset(text) == instant
