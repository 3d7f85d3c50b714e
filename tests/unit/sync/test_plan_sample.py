"""A run's plan is a bounded sample: memory does not grow with the number of records, the
counters still cover every decision, and a failure late in a long run is still shown."""

from __future__ import annotations

from mlconnector.sync import FlowResult, PlanItem
from mlconnector.sync.base import ERROR_SAMPLE, PLAN_SAMPLE, PlanSample


def test_the_plan_keeps_a_bounded_sample_and_counts_the_rest() -> None:
    result = FlowResult("orders", "acme")
    for n in range(10 * PLAN_SAMPLE):
        result.add(PlanItem("create", "order", f"k{n}"), "created")
    assert len(result.plan) == PLAN_SAMPLE
    assert result.plan_total == 10 * PLAN_SAMPLE
    assert result.created == 10 * PLAN_SAMPLE  # the counters are never sampled
    assert [i.key for i in result.plan[:2]] == ["k0", "k1"]


def test_a_late_failure_is_kept_beside_the_done_sample() -> None:
    result = FlowResult("orders", "acme")
    for n in range(5 * PLAN_SAMPLE):
        result.add(PlanItem("create", "order", f"k{n}"))
    result.add(PlanItem("skip", "order", "late-skip", "frozen"), "frozen")
    settled = result.settle(("order", "late-failure"), "dead", "refused")
    kept = {i.key: i.result() for i in result.plan}
    assert kept["late-skip"] == "skipped"
    assert kept["late-failure"] == "dead"
    assert settled.outcome == "dead"
    assert len(result.plan) == PLAN_SAMPLE + 2


def test_settling_a_kept_decision_moves_it_to_the_attention_budget() -> None:
    plan = PlanSample(limit=2)
    plan.append(PlanItem("create", "order", "a"))
    plan.append(PlanItem("create", "order", "b"))
    plan.append(PlanItem("create", "order", "c"))  # over the done budget
    assert [i.key for i in plan] == ["a", "b"]
    result = FlowResult("orders", "acme", plan=plan)
    result.settle(("order", "a"), "failed", "503")
    plan.append(PlanItem("create", "order", "d"))  # a done slot was freed by the settle
    assert [(i.key, i.result()) for i in plan] == [
        ("a", "failed"),
        ("b", "done"),
        ("d", "done"),
    ]
    assert plan.total == 4


def test_errors_are_bounded_and_merged_samples_keep_their_drop_count() -> None:
    result, sub = FlowResult("retry", "acme"), FlowResult("orders", "acme")
    for n in range(ERROR_SAMPLE + 5):
        sub.errors.append(f"e{n}")
    for n in range(PLAN_SAMPLE + 7):
        sub.add(PlanItem("create", "order", f"k{n}"))
    result.errors.extend(sub.errors)
    result.plan.extend(sub.plan)
    assert len(result.errors) == ERROR_SAMPLE
    assert result.plan_total == PLAN_SAMPLE + 7
