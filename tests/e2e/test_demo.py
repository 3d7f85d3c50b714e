"""``mlconnector demo`` in-process: the whole story runs and its own checks hold."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from mlconnector.cli import app
from mlconnector.clock import SystemClock
from mlconnector.commands.context import CliContext
from mlconnector.commands.demo import run_demo


def _context(tmp_path: Path) -> CliContext:
    return CliContext(
        env={"HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
        console=Console(width=200, no_color=True, record=True),
        err_console=Console(width=200, no_color=True, stderr=True),
        clock=SystemClock(),
    )


async def test_the_demo_story_holds(tmp_path: Path) -> None:
    summary = await run_demo(_context(tmp_path), parent=tmp_path)
    failed = [claim for claim, held in summary.checks if not held]
    assert failed == []
    assert len(summary.checks) >= 12
    assert summary.counts["orders created in ShipStation"] > 3
    # one whole, an order split in two labels, 1 piece of a release (a container split off)
    assert summary.counts["shipments written back to Plex"] == 4
    assert any("shipped exactly (a container split off in Plex)" in c for c, _ in summary.checks)
    assert summary.counts["orders sent on the second pass"] == 0
    assert summary.counts["inventory levels pushed to ShipStation V2"] > 0
    assert len(summary.tracking) == 4
    assert summary.on_hand_after < summary.on_hand_before
    assert (summary.home / "mlconnector.toml").exists()
    assert (summary.home / "mlconnector.db").exists()
    assert summary.home.parent == tmp_path
    # every run of the story, with its one outcome
    assert [(flow, outcome) for flow, outcome, _ in summary.runs] == [
        ("orders", "ok"),
        ("shipments", "ok"),
        ("inventory", "ok"),
        ("order_status", "ok"),
        ("orders", "ok"),
    ]


def test_the_demo_command_prints_its_summary_and_exits_0(tmp_path: Path) -> None:
    context = _context(tmp_path)
    result = CliRunner().invoke(app, ["demo"], obj=context)
    assert result.exit_code == 0, result.output
    text = context.console.export_text()
    assert "all checks held" in text
    assert "shipments written back to Plex" in text
    assert "mlconnector audit --connection demo" in text
    runs = [line for line in text.splitlines() if "@demo:" in line]
    assert len(runs) == 5
    assert all("│ ok " in line for line in runs), runs
