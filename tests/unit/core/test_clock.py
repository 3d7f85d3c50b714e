"""FakeClock: virtual time that jumps, wakes sleepers in deadline order, can be moved by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mlconnector.clock import FakeClock, SystemClock
from tests.conftest import FAKE_START


async def test_sleep_jumps_virtual_time_instantly(fake_clock: FakeClock) -> None:
    # An hour of virtual sleep must not take an hour: the real-time guard fails the test
    # instead of hanging if sleep ever waited for real.
    await asyncio.wait_for(fake_clock.sleep(3600), timeout=10)
    assert fake_clock.monotonic() == 3600
    assert fake_clock.now() == FAKE_START + timedelta(hours=1)


async def test_sleep_zero_or_negative_does_not_move_time(fake_clock: FakeClock) -> None:
    await fake_clock.sleep(0)
    await fake_clock.sleep(-5)
    assert fake_clock.monotonic() == 0
    assert fake_clock.now() == FAKE_START


async def test_concurrent_sleepers_wake_in_deadline_order_at_their_deadline(
    fake_clock: FakeClock,
) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await fake_clock.sleep(seconds)
        woke.append((name, fake_clock.monotonic()))

    await asyncio.gather(sleeper("c", 5), sleeper("a", 1), sleeper("d", 7.5), sleeper("b", 3))

    assert woke == [("a", 1), ("b", 3), ("c", 5), ("d", 7.5)]
    # Concurrent sleeps overlap: the clock ends at the longest deadline, not the sum (16.5).
    assert fake_clock.monotonic() == 7.5


async def test_sleepers_that_sleep_again_interleave_like_real_time(fake_clock: FakeClock) -> None:
    ticks: list[tuple[str, float]] = []

    async def ticker(name: str, period: float, count: int) -> None:
        for _ in range(count):
            await fake_clock.sleep(period)
            ticks.append((name, fake_clock.monotonic()))

    await asyncio.gather(ticker("slow", 3, 2), ticker("fast", 2.5, 3))

    assert ticks == [("fast", 2.5), ("slow", 3), ("fast", 5), ("slow", 6), ("fast", 7.5)]


async def test_advance_moves_time_and_wakes_due_sleepers(fake_clock: FakeClock) -> None:
    woke_at: list[float] = []

    async def sleeper() -> None:
        await fake_clock.sleep(10)
        woke_at.append(fake_clock.monotonic())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)  # let it register its deadline

    fake_clock.advance(4)
    assert fake_clock.monotonic() == 4
    assert not task.done()

    # Past the deadline by hand: the sleeper wakes at the advanced time, not at its deadline,
    # which tells advance() apart from the automatic jump.
    fake_clock.advance(21)
    await task
    assert woke_at == [25]
    assert fake_clock.now() == FAKE_START + timedelta(seconds=25)


def test_advance_refuses_to_go_backwards(fake_clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="backwards"):
        fake_clock.advance(-1)


def test_set_jumps_to_an_instant_only_forwards(fake_clock: FakeClock) -> None:
    target = FAKE_START + timedelta(minutes=5)
    fake_clock.set(target)
    assert fake_clock.now() == target
    assert fake_clock.monotonic() == 300

    fake_clock.set(FAKE_START)  # the past: ignored
    assert fake_clock.now() == target


async def test_cancelled_sleepers_do_not_hold_time_back_or_drag_it_forward(
    fake_clock: FakeClock,
) -> None:
    early = asyncio.create_task(fake_clock.sleep(1))
    late = asyncio.create_task(fake_clock.sleep(1000))
    await asyncio.sleep(0)
    early.cancel()
    late.cancel()

    await fake_clock.sleep(5)
    # Neither the cancelled 1 s nor the cancelled 1000 s deadline shaped the clock.
    assert fake_clock.monotonic() == 5
    await fake_clock.sleep(1)
    assert fake_clock.monotonic() == 6
    assert early.cancelled()
    assert late.cancelled()


def test_fake_clock_is_utc_and_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2026, 1, 1))
    clock = FakeClock(datetime(2026, 1, 1, 4, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


async def test_system_clock_is_aware_utc_and_monotonic() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    first = clock.monotonic()
    await clock.sleep(0)
    await clock.sleep(-1)  # clamped, never an error
    assert clock.monotonic() >= first


async def test_a_positive_sleep_below_float_resolution_still_moves_time(
    fake_clock: FakeClock,
) -> None:
    # At 60.05 s a float cannot hold 60.05 + 3e-15; the clock must still move forward, or a
    # caller that loops until its computed delay reaches 0 would spin forever.
    fake_clock.advance(60.05)
    before = fake_clock.monotonic()
    await asyncio.wait_for(fake_clock.sleep(3e-15), timeout=5)
    assert fake_clock.monotonic() > before
