"""PostgreSQL fixtures: one uniquely named database per test session, dropped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dbutil import temporary_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty, session-wide PostgreSQL database (skips, or fails under CI=true)."""
    with temporary_database() as url:
        yield url
