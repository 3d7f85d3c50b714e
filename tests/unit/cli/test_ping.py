"""``mlconnector ping`` against both simulators served on loopback (one thread, real HTTP)."""

from __future__ import annotations

import socket

import pytest

from mlconnector.sandbox.plex import DEFAULT_CONSUMER_SECRET, DEFAULT_WS_PASSWORD
from tests.unit.cli.conftest import (
    PLEX_KEY,
    SS_V1_KEY,
    SS_V1_SECRET,
    SS_V2_KEY,
    Cli,
    Served,
    sandbox_section,
)

#: the Plex sandbox's buildings, mapped to the ShipStation sandbox's two warehouses
MAPPED = '[connections.acme.mappings]\nwarehouses = { "DET" = 200, "TOL" = 201, "LON" = 200 }\n'


def setup_connection(
    cli: Cli,
    served: Served,
    *,
    plex_secrets: str = f"consumer_key={PLEX_KEY}\n",
    v1_secret: str = SS_V1_SECRET,
    extra: str = MAPPED,
    **plex: str,
) -> None:
    assert cli("init").exit_code == 0
    with cli.config_file.open("a", encoding="utf-8") as handle:
        handle.write(sandbox_section("acme", served, **plex) + extra)
    result = cli(
        "credentials", "set", "plex", "--connection", "acme", "--stdin", stdin=plex_secrets
    )
    assert result.exit_code == 0, result.output
    result = cli(
        "credentials", "set", "shipstation", "--connection", "acme", "--stdin",
        stdin=f"v1_key={SS_V1_KEY}\nv1_secret={v1_secret}\nv2_key={SS_V2_KEY}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def rows(output: str) -> dict[str, list[str]]:
    """Table rows by check name: [system, check, result, detail, what to do].

    A long cell wraps onto continuation lines (first cell empty); they are joined back.
    """
    merged: list[list[str]] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 6:
            continue
        if cells[0]:
            merged.append(cells)
        elif merged:
            merged[-1] = [f"{a} {b}".strip() for a, b in zip(merged[-1], cells, strict=True)]
    return {row[2]: row[1:] for row in merged if row[0] == "acme"}


def test_ping_passes_against_both_simulators(cli: Cli, served: Served) -> None:
    setup_connection(cli, served)
    tenant = served.plex.tenant(340884)
    before = {k: dict(v) for k, v in vars(tenant).items() if isinstance(v, dict)}
    ss_orders = dict(served.shipstation.state.orders)
    result = cli("ping")
    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert set(table) == {
        "auth + tenant (PCN 340884)",
        "read sales orders",
        "read inventory (containers)",
        "read customer shippers",
        "write access (customer shippers)",
        "V1 auth (GET /warehouses)",
        "V2 auth (GET /v2/inventory_warehouses)",
        "mapped warehouses exist (V1)",
        "mapped stores exist (V1)",
        "mapped inventory locations exist (V2)",
        "Plex buildings of open releases mapped (last 7 d)",
    }
    assert all(row[2] == "ok" for row in table.values())
    assert "answered 404; nothing changed" in table["write access (customer shippers)"][3]
    assert "3 mapped, all exist" in table["mapped warehouses exist (V1)"][3]
    assert "11 checks, 0 failed" in result.output
    # nothing was written on either side
    assert {k: dict(v) for k, v in vars(tenant).items() if isinstance(v, dict)} == before
    assert served.shipstation.state.orders == ss_orders
    for secret in (PLEX_KEY, SS_V1_SECRET, SS_V2_KEY):
        assert secret not in result.output


def test_wrong_shipstation_secret_fails_with_a_hint(cli: Cli, served: Served) -> None:
    setup_connection(cli, served, v1_secret="not-the-secret-123")
    result = cli("ping")
    assert result.exit_code == 1
    v1 = rows(result.output)["V1 auth (GET /warehouses)"]
    assert v1[2] == "FAIL"
    assert "HTTP 401" in v1[3]
    assert "check the V1 API key and API secret" in v1[4]
    assert rows(result.output)["V2 auth (GET /v2/inventory_warehouses)"][2] == "ok"
    assert "not-the-secret-123" not in result.output
    assert "1 failed" in result.output


def test_unsubscribed_sales_orders_product_names_the_product(cli: Cli, served: Served) -> None:
    served.plex.unsubscribe("Sales Orders")
    setup_connection(cli, served)
    result = cli("ping")
    assert result.exit_code == 1
    table = rows(result.output)
    orders = table["read sales orders"]
    assert orders[2] == "FAIL"
    assert "HTTP 401" in orders[3]
    assert "Consumer Key" in orders[4]
    assert "subscribed to the 'Sales Orders' API product" in orders[4]
    # the other products answered, so the key and the tenant are fine
    assert table["auth + tenant (PCN 340884)"][2] == "ok"
    assert table["read inventory (containers)"][2] == "ok"


def test_wrong_plex_key_fails_auth_with_the_consumer_key_hint(cli: Cli, served: Served) -> None:
    setup_connection(cli, served, plex_secrets="consumer_key=wrong-key-0123456789\n")
    result = cli("ping")
    assert result.exit_code == 1
    auth = rows(result.output)["auth + tenant (PCN 340884)"]
    assert auth[2] == "FAIL"
    assert "every Plex call answered 401" in auth[3]
    assert "check the Consumer Key" in auth[4]
    assert "Sales Orders API product" in auth[4]
    assert "wrong-key-0123456789" not in result.output


def test_missing_shipper_write_role_fails_the_write_probe(cli: Cli, served: Served) -> None:
    served.plex.revoke_permission("shipping.shippers.write")
    setup_connection(cli, served)
    result = cli("ping")
    assert result.exit_code == 1
    table = rows(result.output)
    probe = table["write access (customer shippers)"]
    assert probe[2] == "FAIL"
    assert "HTTP 403" in probe[3]
    assert "Plex administrator" in probe[4]
    assert table["read customer shippers"][2] == "ok"


def test_datasource_write_back_checks_the_web_service_user(cli: Cli, served: Served) -> None:
    setup_connection(
        cli,
        served,
        plex_secrets=f"consumer_key={PLEX_KEY}\nws_password={DEFAULT_WS_PASSWORD}\n",
        web_service_user=served.plex.ws_username(340884),
        extra='[connections.acme]\nwrite_back = "datasource"\n' + MAPPED,
    )
    result = cli("ping")
    assert result.exit_code == 0, result.output
    probe = rows(result.output)["write access (datasource 230447)"]
    assert probe[2] == "ok"
    assert "not executed" in probe[3]


def test_oauth2_token_is_checked_first(cli: Cli, served: Served) -> None:
    setup_connection(
        cli,
        served,
        plex_secrets=f"consumer_key={PLEX_KEY}\nconsumer_secret={DEFAULT_CONSUMER_SECRET}\n",
        auth_mode="oauth2",
        token_url=served.plex_url + "/oauth2/v1/token",
    )
    result = cli("ping")
    assert result.exit_code == 0, result.output
    assert rows(result.output)["OAuth2 token"][2] == "ok"
    assert DEFAULT_CONSUMER_SECRET not in result.output


def test_missing_credentials_say_which_command_sets_them(cli: Cli, served: Served) -> None:
    assert cli("init").exit_code == 0
    with cli.config_file.open("a", encoding="utf-8") as handle:
        handle.write(sandbox_section("acme", served))
    result = cli("ping")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "credentials" in line]
    assert any("mlconnector credentials set plex --connection acme" in line for line in lines)
    assert any(
        "mlconnector credentials set shipstation --connection acme" in line for line in lines
    )


def test_unreachable_host_says_to_check_the_url(cli: Cli, served: Served) -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    setup_connection(cli, served)
    cli.env["MLCONNECTOR_CONNECTIONS__ACME__SHIPSTATION__V2_BASE_URL"] = (
        f"http://127.0.0.1:{closed}"
    )
    result = cli("ping")
    assert result.exit_code == 1
    v2 = rows(result.output)["V2 auth (GET /v2/inventory_warehouses)"]
    assert v2[2] == "FAIL"
    assert "cannot reach the host" in v2[4]
    assert "v2_base_url" in v2[4]


def test_ping_unknown_connection_and_no_connections(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    none = cli("ping")
    assert none.exit_code == 1
    assert "no enabled connection" in none.output
    unknown = cli("ping", "--connection", "zeta")
    assert unknown.exit_code == 1
    assert "no connection named 'zeta'" in unknown.output


@pytest.mark.parametrize(("datasource", "ok"), [(990001, True), (990099, False)])
def test_a_configured_container_split_datasource_is_checked(
    cli: Cli, served: Served, datasource: int, ok: bool
) -> None:
    setup_connection(
        cli,
        served,
        plex_secrets=f"consumer_key={PLEX_KEY}\nws_password={DEFAULT_WS_PASSWORD}\n",
        web_service_user=served.plex.ws_username(340884),
        extra=f"[connections.acme.plex.container_split]\ndatasource_id = {datasource}\n" + MAPPED,
    )
    result = cli("ping")
    assert result.exit_code == (0 if ok else 1), result.output
    row = rows(result.output)[f"container split (datasource {datasource})"]
    if ok:
        assert (row[2], "not executed" in row[3]) == ("ok", True)
    else:
        assert row[2] == "FAIL"
        assert f"plex.container_split.datasource_id = {datasource}" in row[4]
