"""``replay`` of unknown ids, ``operations list``, ``--json`` on audit/operations/replay and the
80-column audit layout, in-process against the simulators."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

from mlconnector.cli import app
from mlconnector.clock import FakeClock
from mlconnector.commands.context import CliContext
from mlconnector.store import OperationState, Store
from tests.unit.cli_ops.conftest import Ops


def _failed(ops: Ops, key: str = "k-1", *, dead: bool = False) -> int:
    async def make(store: Store) -> int:
        op = (await store.enqueue("acme", "orders", "ss.order.upsert", key, {})).operation
        attempts = 1 if dead else 5
        await store.fail(
            op.id, "boom: 500", next_attempt_at=store.clock.now(), max_attempts=attempts
        )
        return op.id

    return int(ops.with_store(make))


def test_replay_of_an_unknown_id_is_an_error_naming_it(ops: Ops) -> None:
    known = _failed(ops)
    result = ops("replay", "99999", str(known))
    assert result.exit_code == 1
    assert "operation 99999 does not exist" in result.output
    assert "nothing was replayed" in result.output

    async def state(store: Store) -> OperationState | None:
        op = await store.get_operation(known)
        return op.state if op else None

    assert ops.with_store(state) is OperationState.FAILED  # the known one was not touched


def test_replay_of_an_operation_in_another_state_is_refused(ops: Ops) -> None:
    async def confirmed(store: Store) -> int:
        op = (await store.enqueue("acme", "orders", "ss.order.upsert", "k-c", {})).operation
        await store.mark_sent(op.id)
        await store.confirm(op.id, remote_ref="1")
        return op.id

    op_id = int(ops.with_store(confirmed))
    result = ops("replay", str(op_id))
    assert result.exit_code == 1
    assert f"operation {op_id} is confirmed, not failed or dead" in result.output


def test_replay_says_when_the_retries_go_out(ops: Ops) -> None:
    op_id = _failed(ops)
    result = ops("replay", str(op_id))
    assert result.exit_code == 0, result.output
    assert "sent by the next run" in result.output
    assert "`mlconnector sync orders --once`" in result.output


def test_replay_json(ops: Ops) -> None:
    op_id = _failed(ops)
    result = ops("replay", str(op_id), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert [(o["id"], o["state"]) for o in body] == [(op_id, "pending")]


def test_operations_list_filters_by_state_and_flow(ops: Ops) -> None:
    failed = _failed(ops, "k-f")
    dead = _failed(ops, "k-d", dead=True)
    listed = ops("operations", "list", "--state", "dead")
    assert listed.exit_code == 0, listed.output
    assert f"#{dead}  dead" in listed.output
    assert f"#{failed} " not in listed.output
    assert "error: boom: 500" in listed.output
    assert "`mlconnector replay ID …`" in listed.output
    both = json.loads(
        ops("operations", "list", "--state", "failed", "--state", "dead", "--json").output
    )
    assert {o["id"] for o in both} == {failed, dead}
    assert {o["idempotency_key"] for o in both} == {"k-f", "k-d"}
    assert json.loads(ops("operations", "list", "--flow", "shipments", "--json").output) == []
    bad = ops("operations", "list", "--state", "broken")
    assert bad.exit_code == 1
    assert "--state must be one of" in bad.output


def test_audit_json_parses_and_carries_the_details(ops: Ops) -> None:
    assert ops("sync", "orders", "--once").exit_code in (0, 3)
    events = json.loads(ops("audit", "--connection", "acme", "--json", "--limit", "500").output)
    assert events
    assert {"at", "flow", "action", "outcome", "order_key", "details"} <= set(events[0])
    assert any(e["flow"] == "orders" and e["order_key"] for e in events)


def test_audit_reads_at_80_columns(ops: Ops) -> None:
    assert ops("sync", "orders", "--once").exit_code in (0, 3)
    narrow = CliContext(
        env=dict(ops.env),
        console=Console(width=80, no_color=True, file=io.StringIO()),
        err_console=Console(width=80, no_color=True, stderr=True),
        clock=FakeClock(ops.clock.now()),
    )
    result = CliRunner().invoke(app, ["audit", "--connection", "acme", "--limit", "20"], obj=narrow)
    assert result.exit_code == 0, result.output
    text = narrow.console.file.getvalue()  # type: ignore[attr-defined]
    lines = text.splitlines()
    assert lines
    assert all(len(line) <= 80 for line in lines)
    # each event's details are on their own lines, as key: value, not squeezed into a column
    assert any(line.startswith("    ") and ": " in line for line in lines)
    assert not any("│" in line for line in lines)


def test_plans_show_order_numbers_not_order_keys(ops: Ops) -> None:
    result = ops("sync", "orders", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "│ create" in line]
    assert rows, result.output
    for row in rows:
        record = row.split("│")[3].strip()
        assert record.startswith("8840"), row  # the Plex order number (grouped by ship date)
        assert "plex-" not in record
