"""What a scheduled run that finds nothing to do costs the store, per flow (the flow-run
function, ``FlowRunner.run``, against both simulators): its statements and transactions,
counted with SQLAlchemy events (``benchmarks/run_cpu.py`` prints the CPU figures). Every read
is one statement without a transaction; the writes are the pass's audit events and the run's
record (last run, history, ``run`` event) in one transaction."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from mlconnector.store import AuditQuery
from mlconnector.sync import LogAlertSink
from mlconnector.sync.flowrun import FlowRunner
from tests.unit.sync_ops.conftest import CONNECTION, OpsEnv

READ = ["SELECT"]
AUDIT = ["BEGIN", "INSERT"]  # one transaction, however many events
RECORD = ["BEGIN", "INSERT", "INSERT", "INSERT"]  # last run, history row, run event
#: per flow: the statements of a no-change run (first word, BEGIN included) and its commits
EXPECTED = {
    # due operations, read cursor, open quarantine; the read event; the run
    "orders": (READ * 3 + AUDIT + RECORD, 2),
    # due operations, open quarantine, poll cursors, pending webhooks; the read event; the run
    "shipments": (READ * 4 + AUDIT + RECORD, 2),
    # cursor, open quarantine; the run
    "order_status": (READ * 2 + RECORD, 1),
    # due operations, open quarantine; the unmapped locations' skip events; snapshot and
    # unwritten quantities; the read event; the run
    "inventory": (READ * 2 + AUDIT + READ * 2 + AUDIT + RECORD, 3),
}


@pytest.mark.parametrize("flow", sorted(EXPECTED))
async def test_a_no_change_run_costs_a_fixed_number_of_statements(env: OpsEnv, flow: str) -> None:
    runner = FlowRunner(
        env.config(), env.store, env.clock, http_factory=env.http_factory, alerts=LogAlertSink()
    )
    try:
        for _ in range(2):  # crash recovery, the first window walk and the first pushes
            await runner.run(CONNECTION, flow)
        env.clock.advance(60)
        seen: dict[str, Any] = {"sql": [], "commits": 0}

        def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
            seen["sql"].append(sql.split()[0].upper())

        def commit(*_: Any) -> None:
            seen["commits"] += 1

        engine = env.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "commit", commit)
        try:
            report = await runner.run(CONNECTION, flow)
        finally:
            event.remove(engine, "before_cursor_execute", statement)
            event.remove(engine, "commit", commit)
    finally:
        await runner.aclose()
    assert report.outcome == "ok", report.summary()
    assert (seen["sql"], seen["commits"]) == EXPECTED[flow]
    (last,) = await env.store.search_audit(AuditQuery(connection=CONNECTION, flow=flow, limit=1))
    assert (last.action, last.details["run_id"]) == ("run", report.run_id)
