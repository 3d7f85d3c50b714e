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
