"""The one-line summaries printed by ``sync --once`` and logged by the engine."""

from __future__ import annotations

from mlconnector.sync.base import FlowResult
from mlconnector.sync.runs import RunReport


def test_run_summary_names_the_flow_once() -> None:
    result = FlowResult("shipments", "acme", read=1, written_back=1)
    report = RunReport("acme", "shipments", result=result)
    assert report.summary() == "shipments@acme: read=1 written_back=1"
    assert result.summary() == "shipments@acme: read=1 written_back=1"


def test_run_summary_of_an_empty_pass_and_a_dry_run() -> None:
    assert RunReport("acme", "orders", result=FlowResult("orders", "acme")).summary() == (
        "orders@acme: nothing to do"
    )
    dry = FlowResult("orders", "acme", dry_run=True, created=2)
    assert RunReport("acme", "orders", dry_run=True, result=dry).summary() == (
        "orders@acme: (dry run) created=2"
    )
    recovered = FlowResult("orders", "acme")
    recovered.recovered = 1
    report = RunReport("acme", "orders", recovered=recovered, result=FlowResult("orders", "acme"))
    assert report.summary() == "orders@acme: recovered=1 resend=0"


def test_the_outcome_is_ok_partial_or_failed_from_one_rule() -> None:
    from mlconnector.sync.runs import outcome_of

    def report(**counts: int) -> RunReport:
        return RunReport("acme", "orders", result=FlowResult("orders", "acme", **counts))

    assert outcome_of(report(read=5, created=2, skipped=3, unchanged=1)) == "ok"
    assert report(read=5, failed=1).outcome == "partial"
    assert report(read=5, quarantined=2).outcome == "partial"
    failed = report(read=5, failed=1)
    failed.error = "ShipStation refused the credentials"
    assert failed.outcome == "failed"
    assert not failed.ok
    # a failure in the crash recovery or the retries makes the run partial too
    retried = FlowResult("retry", "acme", failed=2)
    late = RunReport("acme", "orders", retried=retried, result=FlowResult("orders", "acme"))
    assert late.outcome == "partial"
    assert late.counts()["failed"] == 2


def test_counters_named_dead_or_needs_operator_make_it_partial() -> None:
    from mlconnector.sync.runs import partial_count

    assert partial_count({"dead": 1, "read": 9}) == 1
    assert partial_count({"needs-operator": 1, "needs_operator": 2}) == 3
    assert partial_count({"read": 9, "skipped": 4}) == 0


def test_the_worst_outcome_wins() -> None:
    from mlconnector.sync.runs import worst

    assert worst([]) == "ok"
    assert worst(["ok", "partial", "ok"]) == "partial"
    assert worst(["partial", "failed", "ok"]) == "failed"


def test_last_runs_stored_before_outcomes_are_read_from_ok() -> None:
    from datetime import UTC, datetime

    from mlconnector.sync.runs import LastRun

    old_ok = '{"at": "2026-01-15T12:00:00+00:00", "ok": true, "seconds": 1.0, "owner": "w"}'
    old_failed = '{"at": "2026-01-15T12:00:00+00:00", "ok": false, "error": "boom"}'
    assert LastRun.from_json("orders", old_ok).outcome == "ok"  # type: ignore[union-attr]
    assert LastRun.from_json("orders", old_failed).outcome == "failed"  # type: ignore[union-attr]
    now = datetime(2026, 1, 15, tzinfo=UTC)
    partial = LastRun("inventory", now, True, 2.0, "w", outcome="partial")
    assert not partial.ok  # ok follows the outcome
    again = LastRun.from_json("inventory", partial.to_json())
    assert again is not None
    assert (again.outcome, again.ok) == ("partial", False)
