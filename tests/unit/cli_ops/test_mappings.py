"""Mappings checked before writing: ``config check --remote``, ``lookup``, dry-run warnings and
``mappings.required``, in-process against the simulators."""

from __future__ import annotations

import tomllib
from typing import Any

from mlconnector.sandbox.plex import DEFAULT_WS_PASSWORD, PlexSandbox
from mlconnector.store import CredentialKind
from tests.unit.cli_ops.conftest import PCN, Ops

MAPPED = '[connections.acme.mappings]\nwarehouses = { "DET" = 200, "TOL" = 201, "LON" = 200 }\n'


def _append(ops: Ops, text: str) -> None:
    with (ops.home / "mlconnector.toml").open("a", encoding="utf-8") as handle:
        handle.write(text)


def _failed_rows(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if "FAIL" in line)


def test_remote_check_reports_unmapped_buildings(ops: Ops) -> None:
    result = ops("config", "check", "--remote")
    assert result.exit_code == 1, result.output
    failed = _failed_rows(result.output)
    assert "Plex buildings of open releases mapped" in failed
    # the seeded tenant's open orders are in LON and TOL (each named with its order numbers)
    assert "without a warehouse: LON (orders 8840" in result.output
    assert "TOL (orders 8840" in result.output
    assert "would be sent with warehouseId null" in result.output
    assert "`mlconnector lookup --connection" in result.output
    assert ops.ss.counts()["orders"] == 0  # a check writes nothing


def test_remote_check_reports_mapped_ids_that_do_not_exist(ops: Ops) -> None:
    _append(
        ops,
        '[connections.acme.mappings]\nwarehouses = { "DET" = 999, "TOL" = 201, "LON" = 200 }\n'
        'inventory_locations = { "DET-FG-01" = "se-404" }\n'
        "[connections.acme.mappings.stores]\ndefault = 777\n",
    )
    result = ops("config", "check", "--remote")
    assert result.exit_code == 1, result.output
    failed = _failed_rows(result.output)
    assert "mapped warehouses exist (V1)" in failed
    assert "DET → 999" in result.output
    assert "mapped stores exist (V1)" in failed
    assert "default → 777" in result.output
    assert "mapped inventory locations exist (V2)" in failed
    assert "DET-FG-01 → se-404" in result.output


def test_remote_check_passes_when_everything_is_mapped(ops: Ops) -> None:
    _append(ops, MAPPED)
    result = ops("config", "check", "--remote")
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output


def test_remote_check_verifies_a_configured_container_split(ops: Ops) -> None:
    _append(ops, MAPPED)
    config = ops.home / "mlconnector.toml"
    text = config.read_text(encoding="utf-8")
    rest = next(line for line in text.splitlines() if line.startswith("rest_base_url"))
    plex_url = rest.split('"')[1]
    user = PlexSandbox.ws_username(PCN)
    config.write_text(
        text.replace(
            rest, f'{rest}\ndatasource_base_url = "{plex_url}"\nweb_service_user = "{user}"', 1
        )
        + "[connections.acme.plex.container_split]\ndatasource_id = 990001\n",
        encoding="utf-8",
    )

    async def ws_password(store: Any) -> None:
        await store.set_credential("acme", CredentialKind.PLEX_WS_PASSWORD, DEFAULT_WS_PASSWORD)

    ops.with_store(ws_password)
    result = ops("config", "check", "--remote")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "container split" in line)
    assert "(datasource 990001)" in row
    assert "not executed" in row
    # an id Plex does not have fails, naming the setting
    config.write_text(
        config.read_text(encoding="utf-8").replace("datasource_id = 990001", "datasource_id = 7"),
        encoding="utf-8",
    )
    result = ops("config", "check", "--remote")
    assert result.exit_code == 1, result.output
    assert "container split (datasource 7)" in _failed_rows(result.output)
    assert "plex.container_split.datasource_id = 7" in result.output


def test_lookup_lists_the_ids_and_its_snippet_makes_the_check_pass(ops: Ops) -> None:
    result = ops("lookup", "--connection", "acme")
    assert result.exit_code == 0, result.output
    assert "Main warehouse" in result.output  # ShipStation V1 warehouse 200
    assert "Plex Orders" in result.output  # a V1 store
    assert "Detroit Plant & FC" in result.output  # a Plex building
    snippet = result.output[result.output.index("# paste into mlconnector.toml") :]
    parsed = tomllib.loads(snippet)
    warehouses = parsed["connections"]["acme"]["mappings"]["warehouses"]
    assert set(warehouses) == {"DET", "TOL", "LON"}
    assert set(warehouses.values()) <= {200, 201}
    _append(ops, snippet)
    checked = ops("config", "check", "--remote")
    assert checked.exit_code == 0, checked.output


def test_dry_run_warns_about_orders_sent_without_a_warehouse(ops: Ops) -> None:
    result = ops("sync", "orders", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "sent without a warehouse (warehouseId null)" in result.output
    assert "Plex building" in result.output
    assert ops.ss.counts()["orders"] == 0


def test_required_mappings_refuse_orders_without_a_warehouse(ops: Ops) -> None:
    _append(ops, '[connections.acme.mappings]\nrequired = true\nwarehouses = { "DET" = 200 }\n')
    result = ops("sync", "orders", "--once")
    # orders of DET are sent; those of TOL and LON are refused and counted failed
    sent = ops.ss.state.orders.values()
    assert sent, result.output
    assert all(o.advanced.get("warehouseId") == 200 for o in sent)
    assert "failed=" in result.output
    assert "mappings.required is true" in result.output
    assert "'TOL'" in result.output or "'LON'" in result.output
    audit = ops("audit", "--connection", "acme", "--limit", "500")
    assert "mappings.required" in audit.output
