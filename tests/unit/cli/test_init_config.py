"""``init`` (home, key, database, example config; idempotent) and ``config check/path``."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from cryptography.fernet import Fernet

from mlconnector.store import open_store
from tests.unit.cli.conftest import Cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_home_key_database_and_example_config(cli: Cli) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert mode(cli.home) == 0o700
    key = cli.home / "master.key"
    assert mode(key) == 0o600
    Fernet(key.read_bytes().strip())  # a valid key
    assert "created" in result.output
    assert "example written" in result.output
    assert cli.config_file.read_text(encoding="utf-8").startswith("# ml-connector configuration")

    async def connections() -> list[object]:
        store = await open_store(
            f"sqlite+aiosqlite:///{cli.home / 'mlconnector.db'}", run_migrations=False
        )
        async with store:
            return list(await store.list_connections())

    assert asyncio.run(connections()) == []  # the schema exists without migrating again


def test_init_is_idempotent_and_keeps_key_and_config(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    key = (cli.home / "master.key").read_bytes()
    cli.config_file.write_text('log_level = "DEBUG"\n', encoding="utf-8")
    cli.home.chmod(0o755)
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert (cli.home / "master.key").read_bytes() == key
    assert cli.config_file.read_text(encoding="utf-8") == 'log_level = "DEBUG"\n'
    assert mode(cli.home) == 0o700
    assert "kept" in result.output


def test_init_with_key_in_environment_writes_no_key_file(cli: Cli) -> None:
    cli.env["MLCONNECTOR_MASTER_KEY"] = Fernet.generate_key().decode()
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert not (cli.home / "master.key").exists()
    assert "MLCONNECTOR_MASTER_KEY" in result.output


def test_init_refuses_an_invalid_existing_config(cli: Cli) -> None:
    cli.home.mkdir()
    cli.config_file.write_text("[web]\nport = 0\n", encoding="utf-8")
    result = cli("init")
    assert result.exit_code == 1
    assert "web.port" in result.output
    assert not (cli.home / "master.key").exists()


def test_config_check_ok_lists_connections(cli: Cli) -> None:
    cli.home.mkdir()
    cli.config_file.write_text('[connections.acme.plex]\npcn = "1"\n', encoding="utf-8")
    result = cli("config", "check")
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    assert "connections: acme" in result.output


def test_config_check_names_file_key_and_allowed_values(cli: Cli) -> None:
    cli.home.mkdir()
    cli.config_file.write_text('[connections.acme]\ngrouping = "weekly"\n', encoding="utf-8")
    result = cli("config", "check")
    assert result.exit_code == 1
    assert str(cli.config_file) in result.output
    assert "connections.acme.grouping" in result.output
    assert "'ship_date' or 'order'" in result.output
    assert "Traceback" not in result.output


def test_config_check_toml_error_names_the_line(cli: Cli) -> None:
    cli.home.mkdir()
    cli.config_file.write_text('log_level = "INFO"\n[web\n', encoding="utf-8")
    result = cli("config", "check")
    assert result.exit_code == 1
    assert "line 2" in result.output


def test_config_check_refuses_a_secret_with_the_vault_hint(cli: Cli) -> None:
    cli.home.mkdir()
    cli.config_file.write_text(
        '[connections.acme.plex]\npcn = "1"\nconsumer_key = "k-123456789"\n', encoding="utf-8"
    )
    result = cli("config", "check")
    assert result.exit_code == 1
    assert "connections.acme.plex.consumer_key" in result.output
    assert "mlconnector credentials set" in result.output
    assert "k-123456789" not in result.output


def test_config_check_applies_environment_overrides(cli: Cli) -> None:
    cli.home.mkdir()
    cli.config_file.write_text('[connections.acme.plex]\npcn = "1"\n', encoding="utf-8")
    cli.env["MLCONNECTOR_CONNECTIONS__ACME__POLL__ORDERS"] = "30"
    result = cli("config", "check")
    assert result.exit_code == 1
    assert "MLCONNECTOR_CONNECTIONS__ACME__POLL__ORDERS" in result.output
    assert "greater than or equal to 60" in result.output


def test_config_check_missing_file_says_to_init(cli: Cli) -> None:
    result = cli("config", "check")
    assert result.exit_code == 1
    assert "configuration file not found" in result.output
    assert "mlconnector init" in result.output


def test_config_path_follows_flag_then_env_then_home(cli: Cli, tmp_path: Path) -> None:
    assert cli("config", "path").output.strip() == str(cli.config_file)
    cli.env["MLCONNECTOR_CONFIG"] = str(tmp_path / "env.toml")
    assert cli("config", "path").output.strip() == str(tmp_path / "env.toml")
    flag = cli("--config", str(tmp_path / "flag.toml"), "config", "path")
    assert flag.output.strip() == str(tmp_path / "flag.toml")
