"""Counting what a store call sends: statements (SQLAlchemy's cursor events on the engine) and
the transactions they open (a statement sent outside autocommit on an idle connection makes the
driver send BEGIN first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class Counts:
    statements: int = 0
    transactions: int = 0

    def take(self) -> tuple[int, int]:
        """(statements, transactions) since the last take."""
        got = (self.statements, self.transactions)
        self.statements = self.transactions = 0
        return got


def count_statements(engine: AsyncEngine) -> Counts:
    """Counts of everything ``engine`` sends from now on."""
    counts = Counts()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _statement(conn: Any, *_: object) -> None:
        counts.statements += 1
        driver = conn.connection.driver_connection
        if not driver.autocommit and driver.info.transaction_status == TransactionStatus.IDLE:
            counts.transactions += 1

    return counts
