"""``mlconnector backfill orders`` and ``mlconnector reconcile`` in-process (CliRunner) against
both simulators served on loopback (the CLI builds its runtime with real HTTP)."""

from __future__ import annotations

import json

from typer.testing import Result

from mlconnector.cli import app
from mlconnector.sandbox.plex import DEFAULT_WS_PASSWORD, RELEASE_HISTORY_ID
from tests.unit.cli.conftest import (
    PLEX_KEY,
    SS_V1_KEY,
    SS_V1_SECRET,
    SS_V2_KEY,
    Cli,
    Served,
    sandbox_section,
)

PCN = 340884
SINCE, UNTIL = "2026-01-05", "2026-02-24T12:00:00Z"


def setup_connection(cli: Cli, served: Served) -> None:
    assert cli("init").exit_code == 0
    section = sandbox_section(
        "acme",
        served,
        web_service_user=served.plex.ws_username(PCN),
        soap_url=f"{served.plex_url}/DataSource/Service.asmx",
        read_window_hours=24 * 31,
    )
    with cli.config_file.open("a", encoding="utf-8") as handle:
        handle.write(section)
    plex = f"consumer_key={PLEX_KEY}\nws_password={DEFAULT_WS_PASSWORD}\n"
    result = cli("credentials", "set", "plex", "--connection", "acme", "--stdin", stdin=plex)
    assert result.exit_code == 0, result.output
    ss = f"v1_key={SS_V1_KEY}\nv1_secret={SS_V1_SECRET}\nv2_key={SS_V2_KEY}\n"
    result = cli("credentials", "set", "shipstation", "--connection", "acme", "--stdin", stdin=ss)
    assert result.exit_code == 0, result.output


def run(cli: Cli, served: Served, *args: str) -> Result:
    """The command with the simulators' clock: the client's rate-limit waits (virtual time)
    are the time the simulators see pass."""
    context = cli.context()
    context.clock = served.plex.clock
    return cli.runner.invoke(app, list(args), obj=context)


def ss_keys(served: Served) -> list[str]:
    return [o["orderKey"] for o in served.shipstation.all_orders()]


def test_backfill_then_reconcile_is_clean_and_a_rerun_does_nothing(
    cli: Cli, served: Served
) -> None:
    setup_connection(cli, served)
    before = run(cli, served, "reconcile", "--since", "2025-11-15", "--until", UNTIL, "--json")
    assert before.exit_code == 1, before.output
    missing = json.loads(before.stdout)["counts"]["missing_order"]
    assert missing > 0

    result = run(cli, served, "backfill", "orders", "--since", SINCE, "--until", UNTIL)
    assert result.exit_code == 0, result.output
    assert "backfill@acme" in result.output
    assert "100%" in result.output
    keys = ss_keys(served)
    assert len(keys) == len(set(keys)) >= missing
    assert f"created={len(keys)}" in result.output

    again = run(cli, served, "backfill", "orders", "--since", SINCE, "--until", UNTIL)
    assert again.exit_code == 0, again.output
    assert "already backfilled" in again.output
    assert ss_keys(served) == keys

    clean = run(cli, served, "reconcile", "--since", "2025-11-15", "--until", UNTIL)
    assert clean.exit_code == 0, clean.output
    assert "no drift" in clean.output


def test_reconcile_lists_a_deleted_order_in_a_table_and_exits_1(cli: Cli, served: Served) -> None:
    setup_connection(cli, served)
    assert run(cli, served, "backfill", "orders", "--since", SINCE, "--until", UNTIL).exit_code == 0
    order = served.shipstation.all_orders()[0]
    served.shipstation.state.delete_order(order["orderId"])
    result = run(cli, served, "reconcile", "--since", "2025-11-15", "--until", UNTIL)
    assert result.exit_code == 1
    assert "missing_order" in result.output
    assert order["orderKey"] in result.output
    assert "1 drift(s)" in result.output


def test_backfill_over_soap_surfaces_error_true(cli: Cli, served: Served) -> None:
    setup_connection(cli, served)
    served.plex.set_datasource_grants(PCN, [])
    result = run(
        cli, served, "backfill", "orders", "--since", SINCE, "--until", UNTIL, "--source", "soap"
    )
    assert result.exit_code == 1
    assert "Error=true" in result.stderr
    assert str(RELEASE_HISTORY_ID) in result.stderr
    assert "what to do" in result.stderr
    assert ss_keys(served) == []


def test_backfill_refuses_an_empty_period(cli: Cli, served: Served) -> None:
    setup_connection(cli, served)
    result = run(cli, served, "backfill", "orders", "--since", UNTIL, "--until", SINCE)
    assert result.exit_code == 1
    assert "--until" in result.stderr
