"""One outcome per run (ok / partial / failed): exit status, tables and ``--json`` agree."""

from __future__ import annotations

import json
import re

from mlconnector.commands.context import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from tests.unit.cli_ops.conftest import Ops

LOCATIONS = ("DET-FG-01", "DET-FG-02", "LON-FG-01", "LON-FG-02", "TOL-FG-01", "TOL-FG-02")


def map_to_missing_location(ops: Ops) -> None:
    """Map every Plex location to a ShipStation inventory location that does not exist."""
    pairs = ", ".join(f'"{loc}" = "se-1002"' for loc in LOCATIONS)
    with (ops.home / "mlconnector.toml").open("a") as f:
        f.write(f"[connections.acme.mappings]\ninventory_locations = {{ {pairs} }}\n")


def rows(output: str) -> list[list[str]]:
    """The body rows of the printed tables, as cells (first line of each row)."""
    found = []
    for line in output.splitlines():
        if line.startswith("│"):
            found.append([cell.strip() for cell in line.strip("│").split("│")])
    return found


def test_failed_writes_make_a_partial_run_exit_3_and_no_row_is_done(ops: Ops) -> None:
    map_to_missing_location(ops)
    result = ops("sync", "inventory", "--once")
    assert result.exit_code == EXIT_PARTIAL == 3, result.output
    assert result.stdout.startswith("partial inventory@acme:")
    failed = int(re.search(r"failed=(\d+)", result.output).group(1))  # type: ignore[union-attr]
    assert failed > 0
    assert "what was done (run outcome: partial)" in result.output
    adjust = [r for r in rows(result.stdout) if r[0] == "adjust"]
    assert len(adjust) == failed
    assert {r[-1] for r in adjust} == {"failed"}  # never listed as done
    assert "inventory_location_id 'se-1002' does not exist" in result.output


def test_sync_json_reports_outcome_counts_errors_and_each_row(ops: Ops) -> None:
    map_to_missing_location(ops)
    result = ops("sync", "inventory", "--once", "--json")
    assert result.exit_code == EXIT_PARTIAL, result.output
    body = json.loads(result.stdout)
    assert body["outcome"] == "partial"
    (run,) = body["runs"]
    assert (run["connection"], run["flow"], run["outcome"]) == ("acme", "inventory", "partial")
    assert run["counts"]["failed"] > 0
    assert len(run["errors"]) == run["counts"]["failed"]
    assert all("se-1002" in e for e in run["errors"])
    adjust = [p for p in run["plan"] if p["action"] == "adjust"]
    assert adjust
    assert {p["result"] for p in adjust} == {"failed"}


def test_an_ok_run_exits_0_and_a_failed_run_exits_1(ops: Ops) -> None:
    ok = ops("sync", "orders", "--once", "--json")
    assert ok.exit_code == EXIT_OK, ok.output
    assert json.loads(ok.stdout)["outcome"] == "ok"
    shown = ops("sync", "orders", "--once")
    assert shown.stdout.startswith("ok orders@acme:")
    ops.plex.faults.configure(error_rate=1.0, error_status=503)
    ops.step()
    failed = ops("sync", "orders", "--once", "--json")
    assert failed.exit_code == EXIT_FAILED == 1, failed.output
    body = json.loads(failed.stdout)
    assert body["outcome"] == "failed"
    assert "503" in body["runs"][0]["error"] or "gave up" in body["runs"][0]["error"]


def test_a_dry_run_table_shows_planned_rows(ops: Ops) -> None:
    result = ops("sync", "orders", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert {r[-1] for r in rows(result.stdout) if r[0] == "create"} == {"planned"}


def test_json_logs_of_a_run_carry_its_context_one_summary_line_and_no_secret(ops: Ops) -> None:
    from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY
    from mlconnector.sandbox.shipstation import ShipStationAccount

    ops.env["MLCONNECTOR_LOG_FORMAT"] = "json"
    ops.env["MLCONNECTOR_LOG_LEVEL"] = "debug"  # every HTTP exchange is logged too
    result = ops("sync", "orders", "--once", "--json")
    assert result.exit_code == EXIT_OK, result.output
    run_id = json.loads(result.stdout)["runs"][0]["run_id"]
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert len(records) > 5
    in_run = [r for r in records if r["run_id"] == run_id]
    assert in_run
    assert {(r["connection"], r["flow"]) for r in in_run} == {("acme", "orders")}
    (summary,) = [r for r in records if r["logger"] == "mlconnector.runs"]
    assert summary["level"] == "INFO"
    assert summary["outcome"] == "ok"
    assert summary["run_id"] == run_id
    assert summary["message"].startswith("run ok in ")
    account = ShipStationAccount()
    for secret in (account.api_key, account.api_secret, account.v2_api_key, DEFAULT_CONSUMER_KEY):
        assert secret
        assert secret not in result.stderr


def test_a_wrong_command_line_exits_2(ops: Ops) -> None:
    result = ops("sync", "orders", "--once", "--no-such-option")
    assert result.exit_code == EXIT_USAGE == 2
    assert ops.creates() == 0
