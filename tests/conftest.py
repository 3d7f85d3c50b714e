"""Fixtures shared by every test area. Area-specific fixtures live in each area's conftest."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, settings

from mlconnector.clock import FakeClock
from mlconnector.logsetup import LOGGERS

# Property tests judge results, never speed: on a loaded 2-core CI machine a per-example deadline
# or the "too slow" health check fails a correct test (seen once in test_mapping under load).
settings.register_profile(
    "mlconnector", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("mlconnector")

#: the instant every ``fake_clock`` starts at (a Thursday in January, far from any DST change)
FAKE_START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake_clock() -> FakeClock:
    """Virtual time: ``await fake_clock.sleep(60)`` returns at once with the clock 60 s later."""
    return FakeClock(FAKE_START)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A command run configures the connector's loggers for the process (handler, level):
    put them back after each test so the next one starts from pytest's own set-up."""
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name in LOGGERS
        for lg in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
