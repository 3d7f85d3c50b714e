"""The periodic tasks of the procrastinate app fire at their interval, every minute of the hour.

Built without a database (procrastinate's connector opens nothing until the app is opened); the
timestamps come from procrastinate's own periodic deferrer, the code a worker runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from procrastinate.periodic import PeriodicDeferrer

from mlconnector.sync.jobs import (
    RETRY_STALLED,
    RETRY_STALLED_EVERY,
    SCHEDULE,
    SCHEDULE_EVERY,
    build_app,
)


def ticks(task: str, start: datetime, seconds: int) -> list[int]:
    """The defer timestamps of ``task`` in ``seconds`` from ``start`` (procrastinate's deferrer)."""
    app = build_app("postgresql+psycopg://nobody@127.0.0.1:1/none")
    deferrer = PeriodicDeferrer(app.periodic_registry)
    periodic = next(
        p for (name, _), p in app.periodic_registry.periodic_tasks.items() if name == task
    )
    since = int(start.timestamp())
    return list(deferrer.get_timestamps(periodic_task=periodic, since=since, until=since + seconds))


@pytest.mark.parametrize(
    ("task", "every"), [(SCHEDULE, SCHEDULE_EVERY), (RETRY_STALLED, RETRY_STALLED_EVERY)]
)
@pytest.mark.parametrize("minute", [0, 7, 30, 59])
def test_a_periodic_task_fires_at_its_interval_in_every_minute(
    task: str, every: int, minute: int
) -> None:
    start = datetime(2026, 3, 1, 10, minute, 0, tzinfo=UTC)
    got = ticks(task, start, 120)
    first = int(start.timestamp())
    assert got == list(range(first + every, first + 121, every))
