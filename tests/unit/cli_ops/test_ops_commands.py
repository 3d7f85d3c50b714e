"""``sync``, ``audit``, ``replay`` and ``webhooks register``, in-process against the simulators."""

from __future__ import annotations

from typing import Any

from mlconnector.store import AuditQuery, CredentialKind, OperationState, Store
from tests.unit.cli_ops.conftest import Ops


def test_sync_dry_run_prints_the_plan_and_writes_nothing(ops: Ops) -> None:
    result = ops("sync", "orders", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "plan (dry run: nothing was written)" in result.output
    assert "create" in result.output
    assert ops.creates() == 0  # ShipStation saw no createorders
    assert ops.ss.counts()["orders"] == 0

    async def state(store: Store) -> tuple[int, int, int]:
        return (
            len(await store.list_operations(connection="acme")),
            len(await store.list_cursors("acme")),
            len(await store.search_audit(AuditQuery(connection="acme"))),
        )

    assert ops.with_store(state) == (0, 0, 0)


def test_sync_once_sends_then_finds_nothing_to_send(ops: Ops) -> None:
    first = ops("sync", "orders", "--once")
    assert first.exit_code == 0, first.output
    created = ops.ss.counts()["orders"]
    assert created > 0
    assert f"created={created}" in first.output
    second = ops("sync", "orders", "--once")
    assert second.exit_code == 0, second.output
    assert "created=" not in second.output
    assert ops.creates() == 1
    assert ops.ss.counts()["orders"] == created


def test_sync_without_once_points_at_the_scheduler(ops: Ops) -> None:
    result = ops("sync", "orders")
    assert result.exit_code == 1
    assert "mlconnector run" in result.output


def test_audit_filters_by_order_key(ops: Ops) -> None:
    assert ops("sync", "orders", "--once").exit_code == 0
    key = str(ops.ss.all_orders()[0]["orderKey"])
    every = ops("audit", "--connection", "acme", "--limit", "500")
    assert every.exit_code == 0, every.output
    assert "run" in every.output
    one = ops("audit", "--order-key", key)
    assert one.exit_code == 0, one.output
    assert key in one.output
    other = str(ops.ss.all_orders()[1]["orderKey"])
    assert other not in one.output


def test_replay_puts_failed_operations_back_and_needs_a_selection(ops: Ops) -> None:
    async def failed_op(store: Store) -> int:
        op = (await store.enqueue("acme", "orders", "ss.order.upsert", "k-1", {})).operation
        await store.fail(op.id, "boom", next_attempt_at=store.clock.now(), max_attempts=1)
        return op.id

    op_id = ops.with_store(failed_op)
    refused = ops("replay")
    assert refused.exit_code == 1
    result = ops("replay", str(op_id))
    assert result.exit_code == 0, result.output
    assert "replayed 1 operation(s)" in result.output

    async def state(store: Store) -> Any:
        op = await store.get_operation(op_id)
        return op.state if op else None

    assert ops.with_store(state) is OperationState.PENDING


def test_webhooks_register_is_idempotent(ops: Ops) -> None:
    first = ops("webhooks", "register", "--connection", "acme", "--public-url", "https://x.test")
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == 4
    second = ops("webhooks", "register", "--connection", "acme", "--public-url", "https://x.test")
    assert second.exit_code == 0, second.output
    assert second.output.count("kept") == 4
    assert ops.ss.counts()["webhooks_v1"] == 4

    async def token(store: Store) -> str | None:
        return await store.get_credential("acme", CredentialKind.WEBHOOK_TOKEN)

    secret = ops.with_store(token)
    assert secret
    assert secret not in first.output  # the token is masked in the output
    urls = {h.url for h in ops.ss.state.webhooks.values()}
    assert urls == {f"https://x.test/webhooks/shipstation/acme/{secret}"}
    events = {h.hook_type for h in ops.ss.state.webhooks.values()}
    assert events == {
        "SHIP_NOTIFY",
        "ITEM_SHIP_NOTIFY",
        "FULFILLMENT_SHIPPED",
        "FULFILLMENT_REJECTED",
    }


def test_replayed_write_that_lands_has_no_last_error_and_the_audit_shows_the_replay(
    ops: Ops,
) -> None:
    ops.ss.faults.configure(error_rate=1.0, error_status=500)
    ops("sync", "orders", "--once")  # every ShipStation request fails: the writes are failed

    async def operations(store: Store) -> list[Any]:
        return await store.list_operations(connection="acme", flow="orders", limit=500)

    failed = ops.with_store(operations)
    assert failed
    assert all(op.state is OperationState.FAILED and op.last_error for op in failed)
    ops.ss.faults.configure()  # ShipStation is back
    replayed = ops("replay", "--connection", "acme", "--flow", "orders")
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed {len(failed)} operation(s)" in replayed.output
    again = ops("sync", "orders", "--once")
    assert again.exit_code == 0, again.output

    done = ops.with_store(operations)
    assert {op.id for op in done} == {op.id for op in failed}  # nothing new, nothing doubled
    assert all(op.state is OperationState.CONFIRMED for op in done)
    assert [op.last_error for op in done] == [None] * len(done)
    trail = ops("audit", "--connection", "acme", "--limit", "500")
    assert trail.exit_code == 0, trail.output
    assert "replay" in trail.output

    async def replay_events(store: Store) -> list[Any]:
        events = await store.search_audit(AuditQuery(connection="acme", limit=500))
        return [e for e in events if e.action == "replay"]

    events = ops.with_store(replay_events)
    assert sorted(e.idempotency_key for e in events) == sorted(op.idempotency_key for op in failed)
    assert all("500" in str(e.details["last_error"]) for e in events)
