"""One outcome per run (ok / partial / failed): exit status, tables and ``--json`` agree."""

from __future__ import annotations

import json
import re

from mlconnector.commands.context import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
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
    assert result.output.startswith("partial inventory@acme:")
    failed = int(re.search(r"failed=(\d+)", result.output).group(1))  # type: ignore[union-attr]
    assert failed > 0
    assert "what was done (run outcome: partial)" in result.output
    adjust = [r for r in rows(result.output) if r[0] == "adjust"]
    assert len(adjust) == failed
    assert {r[-1] for r in adjust} == {"failed"}  # never listed as done
    assert "inventory_location_id 'se-1002' does not exist" in result.output


def test_sync_json_reports_outcome_counts_errors_and_each_row(ops: Ops) -> None:
    map_to_missing_location(ops)
    result = ops("sync", "inventory", "--once", "--json")
    assert result.exit_code == EXIT_PARTIAL, result.output
    body = json.loads(result.output)
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
    assert json.loads(ok.output)["outcome"] == "ok"
    shown = ops("sync", "orders", "--once")
    assert shown.output.startswith("ok orders@acme:")
    ops.plex.faults.configure(error_rate=1.0, error_status=503)
    ops.step()
    failed = ops("sync", "orders", "--once", "--json")
    assert failed.exit_code == EXIT_FAILED == 1, failed.output
    body = json.loads(failed.output)
    assert body["outcome"] == "failed"
    assert "503" in body["runs"][0]["error"] or "gave up" in body["runs"][0]["error"]


def test_a_dry_run_table_shows_planned_rows(ops: Ops) -> None:
    result = ops("sync", "orders", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert {r[-1] for r in rows(result.output) if r[0] == "create"} == {"planned"}
