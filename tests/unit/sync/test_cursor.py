"""Cursor rules: record timestamps only, inclusive overlap window, de-duplication, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from mlconnector.sync.cursor import (
    DEFAULT_OVERLAP,
    DEFAULT_SAFETY_LAG,
    CursorState,
    ReadPairs,
    advance,
    read_bound,
    read_window,
)
from mlconnector.timezones import to_pacific_naive

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


def test_first_window_starts_at_the_initial_lookback() -> None:
    start, end = read_window(CursorState(), T0, initial_lookback=timedelta(days=10))
    assert start == T0 - timedelta(days=10)
    assert end == T0 - DEFAULT_SAFETY_LAG


def test_window_overlaps_the_cursor_and_stops_before_run_start() -> None:
    state = CursorState(since=T0 - timedelta(hours=5))
    start, end = read_window(state, T0)
    assert start == T0 - timedelta(hours=5) - DEFAULT_OVERLAP
    assert end == T0 - timedelta(minutes=2)
    # a cursor in the future (clock skew) never produces an inverted window
    start, end = read_window(CursorState(since=T0 + timedelta(hours=5)), T0)
    assert start <= end


def test_advance_uses_record_times_never_the_clock() -> None:
    end = T0 - DEFAULT_SAFETY_LAG
    state = CursorState(since=T0 - timedelta(days=1))
    assert advance(state, [], end) == state  # nothing read: the cursor stays
    newer = T0 - timedelta(hours=3)
    moved = advance(state, [("a", newer), ("b", None)], end)
    assert moved.since == newer
    # a record stamped after the window end (late clock on the server) is not trusted
    assert advance(state, [("c", T0 + timedelta(hours=1))], end).since == state.since
    # never backwards
    assert advance(moved, [("d", newer - timedelta(days=3))], end).since == newer


def test_overlap_records_are_deduplicated_on_id_and_modified() -> None:
    end = T0
    m1 = T0 - timedelta(minutes=30)
    state = advance(CursorState(), [("a", m1), ("b", m1 - timedelta(hours=3))], end)
    assert not state.is_new("a", m1)  # re-read in the overlap: skip
    assert state.is_new("a", m1 + timedelta(seconds=1))  # modified again: process
    assert state.is_new("b", m1 - timedelta(hours=3))  # outside the overlap: not kept
    later = advance(state, [("c", T0 - timedelta(minutes=1))], end)
    assert not later.is_new("a", m1)  # still inside the new overlap


@given(since=instants, ids=st.lists(st.text(min_size=1, max_size=8), max_size=5))
def test_json_round_trip(since: datetime, ids: list[str]) -> None:
    state = advance(CursorState(), [(i, since) for i in ids], since + timedelta(days=1))
    if not ids:
        assert state == CursorState()
        return
    assert CursorState.from_json(state.to_json()) == state
    assert CursorState.from_json(None) == CursorState()
    assert CursorState.from_json("2026-01-15T12:00:00.0000000Z").since == datetime(
        2026, 1, 15, 12, tzinfo=UTC
    )


@given(since=instants, later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=6)))
def test_pacific_filter_never_misses_a_record_after_the_cursor(
    since: datetime, later: timedelta
) -> None:
    """ShipStation V1 filters on Pacific wall time. With the 2 h overlap, the wall time of the
    window start is at or before the wall time of every record at or after the cursor, even
    across the repeated fall-back hour and the spring-forward gap."""
    start, _ = read_window(CursorState(since=since), since + timedelta(days=1))
    assert to_pacific_naive(start) <= to_pacific_naive(since + later)


def test_a_short_overlap_would_miss_the_fall_back_hour() -> None:
    # 2026-11-01 08:45Z is 01:45 PDT; 09:10Z is 01:10 PST (the repeated hour)
    since = datetime(2026, 11, 1, 8, 45, tzinfo=UTC)
    record = datetime(2026, 11, 1, 9, 10, tzinfo=UTC)
    short, _ = read_window(CursorState(since=since), since, overlap=timedelta(minutes=30))
    assert to_pacific_naive(short) > to_pacific_naive(record)  # would be missed
    full, _ = read_window(CursorState(since=since), since + timedelta(days=1))
    assert to_pacific_naive(full) <= to_pacific_naive(record)


def test_read_pairs_keep_what_advance_needs_and_advance_the_same() -> None:
    base = datetime(2026, 1, 15, tzinfo=UTC)
    end = base + timedelta(hours=50)
    # 5,000 records over 48 h (in read order, window by window), some re-read, one past the end
    every = [(f"o:{n}", base + timedelta(seconds=35 * n)) for n in range(5000)]
    every += [("o:17", base + timedelta(seconds=35 * 17)), ("o:late", end + timedelta(seconds=1))]
    every.append(("o:none", None))
    pairs = ReadPairs(end, overlap=DEFAULT_OVERLAP)
    for record_id, modified in every:
        pairs.add(record_id, modified)
    state = CursorState(
        since=base - timedelta(hours=1), seen=frozenset({("o:old", "2026-01-14T23:30:00Z")})
    )
    assert advance(state, pairs, end) == advance(state, every, end)
    # the pairs of the last overlap (2 h ≈ 206 records) plus at most one pruning period
    assert len(pairs) < 1024 + 2 * 206
    assert pairs.newest == base + timedelta(seconds=35 * 4999)


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6 * 3600)), max_size=3000),
    st.integers(0, 6 * 3600),
)
def test_read_pairs_advance_like_every_pair_in_any_read_order(
    records: list[tuple[int, int]], end_offset: int
) -> None:
    end = T0 + timedelta(seconds=end_offset)
    every = [(f"r:{i}", T0 + timedelta(seconds=s)) for i, s in records]
    pairs = ReadPairs(end, overlap=timedelta(minutes=30))
    for record_id, modified in every:
        pairs.add(record_id, modified)
    state = CursorState(since=T0, seen=frozenset({("r:0", "2026-03-01T12:00:00Z")}))
    overlap = timedelta(minutes=30)
    assert advance(state, pairs, end, overlap=overlap) == advance(
        state, every, end, overlap=overlap
    )


def test_a_whole_read_of_a_quiet_source_moves_the_cursor_to_the_end_minus_the_overlap() -> None:
    run_start = T0
    start, end = read_window(CursorState(), run_start)
    assert start == T0 - timedelta(days=60)  # the first run walks the initial lookback
    # nothing read, the whole window read without error
    moved = advance(CursorState(), [], end, read_through=end)
    assert moved.since == end - DEFAULT_OVERLAP
    # the next window re-reads two overlaps before what was read (late commits, clock skew)
    later = run_start + timedelta(minutes=5)
    start2, end2 = read_window(moved, later)
    assert start2 == end - 2 * DEFAULT_OVERLAP
    assert end2 - start2 < timedelta(hours=5)
    # without read_through (a read left incomplete) the old rule holds: nothing read, no move
    assert advance(CursorState(), [], end) == CursorState()


def test_a_quiet_cursor_steps_once_per_overlap_not_every_run() -> None:
    state = advance(CursorState(), [], T0, read_through=T0)
    writes, widest = 0, timedelta(0)
    for minutes in range(5, 48 * 60, 5):  # two days of runs every 5 minutes
        run_start = T0 + timedelta(minutes=minutes)
        start, end = read_window(state, run_start)
        widest = max(widest, end - start)
        new = advance(state, [], end, read_through=end)
        writes += new != state
        state = new
    assert 20 <= writes <= 25  # one step per 2 h overlap, not 575 writes
    assert widest <= 3 * DEFAULT_OVERLAP + timedelta(minutes=5)


def test_read_through_never_passes_the_window_end_nor_goes_backwards() -> None:
    end = T0 - DEFAULT_SAFETY_LAG
    # asked to go past the window end: capped at it
    assert advance(CursorState(), [], end, read_through=end + timedelta(days=1)).since == (
        end - DEFAULT_OVERLAP
    )
    # a recent record keeps the record rule (the step would be less than one overlap)
    recent = T0 - timedelta(minutes=30)
    state = advance(CursorState(), [("a", recent)], end, read_through=end)
    assert state.since == recent
    assert not state.is_new("a", recent)
    # an old cursor with nothing new: steps forward, keeps what is still inside the overlap
    old = CursorState(since=T0 - timedelta(days=3))
    assert advance(old, [], end, read_through=end).since == end - DEFAULT_OVERLAP
    # a step backwards is never taken
    ahead = CursorState(since=end - timedelta(minutes=1))
    assert advance(ahead, [], end, read_through=end).since == ahead.since
    # a record just before the end, re-read in the next overlap, is de-duplicated there
    near_end = end - timedelta(minutes=1)
    state = advance(old, [("b", near_end)], end, read_through=end)
    assert state.since == near_end
    assert not state.is_new("b", near_end)


def test_read_bound_is_the_server_clock_when_it_is_behind_ours() -> None:
    end = T0 - DEFAULT_SAFETY_LAG
    assert read_bound(end, None) == end
    assert read_bound(end, T0 + timedelta(hours=1)) == end  # server ahead: our window end
    behind = T0 - timedelta(hours=5)  # our clock five hours ahead of the server's
    assert read_bound(end, behind) == behind - DEFAULT_SAFETY_LAG
    moved = advance(CursorState(), [], end, read_through=read_bound(end, behind))
    assert moved.since == behind - DEFAULT_SAFETY_LAG - DEFAULT_OVERLAP
