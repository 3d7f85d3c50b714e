"""Regression: the sliding-window limiter must not spin on floating-point residue.

Waking exactly at ``oldest + window + safety`` leaves a delay of ~3e-15 s; before the fix the
limiter slept that long again and again, and with a FakeClock (whose ``now + 3e-15 == now``)
virtual time never moved: the 201st V2 request hung forever.
"""

from __future__ import annotations

import asyncio

from mlconnector.clock import FakeClock
from mlconnector.http import RateLimiter


async def test_sliding_window_wakes_after_residue_delay(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(fake_clock, limit_per_minute=200)
    for _ in range(201):
        await asyncio.wait_for(limiter.acquire(), timeout=5)
        limiter.release()
    assert limiter.waits == 1
    assert 60.0 <= fake_clock.monotonic() < 60.1
