"""What recording a run costs the store, on SQLite and PostgreSQL: the flow's last run, its
history row and its ``run`` audit event in one write transaction on SQLite, in one statement in
autocommit on PostgreSQL (counted with SQLAlchemy events, not timed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from mlconnector.clock import FakeClock
from mlconnector.store import AuditQuery, Store, UnknownConnectionError
from mlconnector.sync.runs import RunReport, get_last_run, record_run


@contextmanager
def counted(store: Store) -> Iterator[dict[str, Any]]:
    """The statements (first word; transaction control apart) and commits inside the block."""
    seen: dict[str, Any] = {"statements": [], "commits": 0}

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        verb = sql.split()[0].upper()
        if verb not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            seen["statements"].append(verb)

    def commit(*_: Any) -> None:
        seen["commits"] += 1

    engine = store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


async def test_record_run_is_one_write(store: Store, acme: str, fake_clock: FakeClock) -> None:
    report = RunReport(connection=acme, flow="orders", run_id="r-1")
    at = fake_clock.now()
    with counted(store) as seen:
        await record_run(store, report, at=at, seconds=1.5, owner="w1")
    if store.dialect == "postgresql":  # WITH last_run AS (INSERT ...), history AS (...) INSERT
        assert (seen["statements"], seen["commits"]) == (["WITH"], 0)  # autocommit
    else:
        assert seen["commits"] == 1
        assert seen["statements"] == ["INSERT", "INSERT", "INSERT"]  # cursor, history, audit
    last = await get_last_run(store, acme, "orders")
    assert last is not None
    assert (last.at, last.outcome, last.seconds, last.owner) == (at, "ok", 1.5, "w1")
    (run,) = (await store.runs_page(acme, "orders")).items
    assert (run.started_at, run.finished_at - run.started_at) == (at, timedelta(seconds=1.5))
    (audited,) = await store.search_audit(AuditQuery(connection=acme))
    assert (audited.flow, audited.action, audited.outcome) == ("orders", "run", "ok")
    assert audited.details["run_id"] == "r-1"


async def test_record_run_of_an_unknown_connection_writes_nothing(store: Store) -> None:
    report = RunReport(connection="nope", flow="orders", error="Plex 401")
    with pytest.raises(UnknownConnectionError):
        await record_run(store, report, at=store.clock.now(), seconds=0.1, owner="w1")
    assert await store.cursors_named(".last_run") == []
    assert await store.run_flows() == []
    assert await store.count_audit_events() == 0
