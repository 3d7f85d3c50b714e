"""``connections add`` (appends a validated section, registers the store row) and ``list``."""

from __future__ import annotations

import asyncio
import tomllib

from mlconnector.store import open_store
from tests.unit.cli.conftest import Cli


def store_rows(cli: Cli) -> dict[str, str | None]:
    async def rows() -> dict[str, str | None]:
        store = await open_store(f"sqlite+aiosqlite:///{cli.home / 'mlconnector.db'}")
        async with store:
            return {c.name: c.plex_pcn for c in await store.list_connections()}

    return asyncio.run(rows())


def test_add_appends_a_section_and_registers_the_connection(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    before = cli.config_file.read_text(encoding="utf-8")
    result = cli(
        "connections", "add", "acme", "--pcn", "340884",
        "--plex-url", "https://test.connect.plex.com", "--grouping", "order",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = cli.config_file.read_text(encoding="utf-8")
    assert text.startswith(before)  # the operator's file is kept, the section appended
    acme = tomllib.loads(text)["connections"]["acme"]
    assert acme == {
        "grouping": "order",
        "plex": {"pcn": "340884", "rest_base_url": "https://test.connect.plex.com"},
    }
    assert store_rows(cli) == {"acme": "340884"}
    assert cli("config", "check").exit_code == 0


def test_add_refuses_an_invalid_value_and_leaves_the_file_alone(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    before = cli.config_file.read_text(encoding="utf-8")
    result = cli("connections", "add", "acme", "--pcn", "1", "--write-back", "email")
    assert result.exit_code == 1
    assert "connections.acme.write_back" in result.output
    assert "'shipper' or 'datasource'" in result.output
    assert cli.config_file.read_text(encoding="utf-8") == before
    assert store_rows(cli) == {}


def test_add_refuses_a_duplicate_and_a_bad_name(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    assert cli("connections", "add", "acme", "--pcn", "1").exit_code == 0
    again = cli("connections", "add", "acme", "--pcn", "2")
    assert again.exit_code == 1
    assert "connections.acme already exists" in again.output
    bad = cli("connections", "add", "Acme Corp", "--pcn", "2")
    assert bad.exit_code == 1
    assert "lower-case letters" in bad.output


def test_add_before_init_says_to_init(cli: Cli) -> None:
    result = cli("connections", "add", "acme", "--pcn", "1")
    assert result.exit_code == 1
    assert "mlconnector init" in result.output
    assert not cli.home.exists()


def test_list_shows_config_store_and_credential_state(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    assert cli("connections", "add", "acme", "--pcn", "1").exit_code == 0
    with cli.config_file.open("a", encoding="utf-8") as handle:
        handle.write('\n[connections.byhand.plex]\npcn = "2"\n')
    stored = cli(
        "credentials", "set", "plex", "--connection", "acme", "--stdin",
        stdin="consumer_key=plex-key-0123456789\n",
    )  # fmt: skip
    assert stored.exit_code == 0, stored.output
    result = cli("connections", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "plex ok" in lines["acme"]
    assert "shipstation missing" in lines["acme"]
    cells = [cell.strip() for cell in lines["byhand"].split("│")]
    assert cells[2:5] == ["yes", "no", "yes"]  # in config, not (yet) in the store, enabled
    assert "plex-key-0123456789" not in result.output


def test_add_with_oauth2_needs_a_token_url(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    refused = cli("connections", "add", "acme", "--pcn", "1", "--auth-mode", "oauth2")
    assert refused.exit_code == 1
    assert "connections.acme.plex" in refused.output
    assert "token_url" in refused.output
    ok = cli(
        "connections", "add", "acme", "--pcn", "1", "--auth-mode", "oauth2",
        "--token-url", "https://auth.example.com/oauth2/token",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    plex = tomllib.loads(cli.config_file.read_text(encoding="utf-8"))["connections"]["acme"]["plex"]
    assert plex["token_url"] == "https://auth.example.com/oauth2/token"
