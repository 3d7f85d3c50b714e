"""``credentials set/show`` and ``keys rotate``: secrets never echoed, never stored in clear."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.fernet import Fernet

from mlconnector.store import load_vault, open_store
from tests.unit.cli.conftest import Cli

PLEX_SECRET = "plex-consumer-key-4f9a2b7c1d"
V1_KEY, V1_SECRET, V2_KEY = (
    "ss-v1-key-7d3e9a1b5c",
    "ss-v1-secret-2c8f4e6a0b",
    "ss-v2-key-9b1d3f5e7a",
)


def initialised(cli: Cli) -> Cli:
    assert cli("init").exit_code == 0
    assert cli("connections", "add", "acme", "--pcn", "340884").exit_code == 0
    return cli


def everything_on_disk(home: Path) -> bytes:
    """The database and its WAL/journal files: where a clear secret would be."""
    return b"".join(p.read_bytes() for p in sorted(home.iterdir()) if p.is_file())


def stored_secret(cli: Cli, kind: str, env: dict[str, str] | None = None) -> str | None:
    async def read() -> str | None:
        vault = load_vault(env or cli.env)
        store = await open_store(f"sqlite+aiosqlite:///{cli.home / 'mlconnector.db'}", vault=vault)
        async with store:
            return await store.get_credential("acme", kind)

    return asyncio.run(read())


def test_hidden_prompt_stores_without_echo(cli: Cli) -> None:
    initialised(cli)
    result = cli(
        "credentials", "set", "shipstation", "--connection", "acme",
        input=f"{V1_KEY}\n{V1_SECRET}\n{V2_KEY}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ShipStation V1 API key" in result.output  # the prompt was shown
    for secret in (V1_KEY, V1_SECRET, V2_KEY):
        assert secret not in result.output
    assert "••••" + V1_KEY[-4:] in result.output
    assert stored_secret(cli, "ss_v1_secret") == V1_SECRET
    for secret in (V1_KEY, V1_SECRET, V2_KEY):
        assert secret.encode() not in everything_on_disk(cli.home)


def test_optional_prompt_may_be_left_empty(cli: Cli) -> None:
    initialised(cli)
    result = cli("credentials", "set", "plex", "--connection", "acme", input=f"{PLEX_SECRET}\n\n\n")
    assert result.exit_code == 0, result.output
    assert stored_secret(cli, "plex_api_key") == PLEX_SECRET
    assert stored_secret(cli, "plex_client_secret") is None


def test_stdin_and_env_sources(cli: Cli) -> None:
    initialised(cli)
    piped = cli(
        "credentials", "set", "plex", "--connection", "acme", "--stdin",
        stdin=f"# from the password manager\nconsumer_key = {PLEX_SECRET}\n",
    )  # fmt: skip
    assert piped.exit_code == 0, piped.output
    assert stored_secret(cli, "plex_api_key") == PLEX_SECRET
    cli.env |= {
        "MLCONNECTOR_SHIPSTATION_V1_KEY": V1_KEY,
        "MLCONNECTOR_SHIPSTATION_V1_SECRET": V1_SECRET,
        "MLCONNECTOR_SHIPSTATION_V2_KEY": V2_KEY,
    }
    from_env = cli("credentials", "set", "shipstation", "--connection", "acme", "--from-env")
    assert from_env.exit_code == 0, from_env.output
    assert stored_secret(cli, "ss_v2_key") == V2_KEY
    assert V2_KEY not in from_env.output
    assert PLEX_SECRET not in piped.output


def test_missing_required_secret_stores_nothing(cli: Cli) -> None:
    initialised(cli)
    result = cli(
        "credentials", "set", "shipstation", "--connection", "acme", "--stdin",
        stdin=f"v1_key={V1_KEY}\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "v1_secret" in result.output
    assert "nothing was stored" in result.output
    assert stored_secret(cli, "ss_v1_key") is None


def test_stdin_error_names_the_line_not_the_value(cli: Cli) -> None:
    initialised(cli)
    result = cli(
        "credentials", "set", "plex", "--connection", "acme", "--stdin",
        stdin=f"consumer_key={PLEX_SECRET}\napi_token={V2_KEY}\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "line 2" in result.output
    assert "'api_token'" in result.output
    assert V2_KEY not in result.output
    assert PLEX_SECRET not in result.output


def test_a_secret_on_the_command_line_is_refused_without_echo(cli: Cli) -> None:
    initialised(cli)
    result = cli("credentials", "set", "plex", "--connection", "acme", PLEX_SECRET)
    assert result.exit_code == 2
    assert "never taken from the command line" in result.output
    assert PLEX_SECRET not in result.output
    assert stored_secret(cli, "plex_api_key") is None


def test_a_secret_as_an_unknown_option_is_refused_without_echo(cli: Cli) -> None:
    initialised(cli)
    result = cli("credentials", "set", "plex", "--connection", "acme", f"--key={PLEX_SECRET}")
    assert result.exit_code == 2
    assert "never taken from the command line" in result.output
    assert PLEX_SECRET not in result.output


def test_unknown_connection_lists_the_configured_ones(cli: Cli) -> None:
    initialised(cli)
    result = cli("credentials", "set", "plex", "--connection", "zeta", "--stdin", stdin="x=y\n")
    assert result.exit_code == 1
    assert "no connection named 'zeta' (configured: acme)" in result.output


def test_show_masks_and_lists_missing(cli: Cli) -> None:
    initialised(cli)
    cli("credentials", "set", "plex", "--connection", "acme", "--stdin",
        stdin=f"consumer_key={PLEX_SECRET}\n")  # fmt: skip
    result = cli("credentials", "show")
    assert result.exit_code == 0, result.output
    assert PLEX_SECRET not in result.output
    assert "••••" + PLEX_SECRET[-4:] in result.output
    assert PLEX_SECRET[:-4] not in result.output
    assert result.output.count("(not set)") == 3  # the three ShipStation secrets


def test_missing_master_key_is_a_clear_error(cli: Cli) -> None:
    initialised(cli)
    (cli.home / "master.key").unlink()
    result = cli("credentials", "show")
    assert result.exit_code == 1
    assert "no master key" in result.output
    assert "mlconnector init" in result.output


def test_rotate_reencrypts_under_a_new_key_file(cli: Cli) -> None:
    initialised(cli)
    cli("credentials", "set", "plex", "--connection", "acme", "--stdin",
        stdin=f"consumer_key={PLEX_SECRET}\n")  # fmt: skip
    old_key = (cli.home / "master.key").read_bytes()
    result = cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 credential" in result.output
    new_key = (cli.home / "master.key").read_bytes()
    assert new_key != old_key
    assert oct((cli.home / "master.key").stat().st_mode & 0o777) == "0o600"
    assert stored_secret(cli, "plex_api_key") == PLEX_SECRET
    old_env = {**cli.env, "MLCONNECTOR_MASTER_KEY": old_key.decode().strip()}
    failed = cli.__class__(home=cli.home, env=old_env)("credentials", "show")
    assert failed.exit_code == 1  # the old key opens nothing any more
    assert "cannot decrypt" in failed.output


def test_rotate_with_env_key_needs_a_file_for_the_new_key(cli: Cli, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    cli.env["MLCONNECTOR_MASTER_KEY"] = key
    initialised(cli)
    cli("credentials", "set", "plex", "--connection", "acme", "--stdin",
        stdin=f"consumer_key={PLEX_SECRET}\n")  # fmt: skip
    refused = cli("keys", "rotate")
    assert refused.exit_code == 1
    assert "--new-key-file" in refused.output
    target = tmp_path / "new.key"
    result = cli("keys", "rotate", "--new-key-file", str(target))
    assert result.exit_code == 0, result.output
    new_key = target.read_text(encoding="ascii").strip()
    assert new_key not in result.output
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    env = {**cli.env, "MLCONNECTOR_MASTER_KEY": new_key}
    assert stored_secret(cli, "plex_api_key", env) == PLEX_SECRET


def test_credential_names_match_the_store_kinds() -> None:
    from mlconnector.commands.credentials import FIELDS
    from mlconnector.store import CredentialKind

    assert {f.kind for f in FIELDS} <= {k.value for k in CredentialKind}


def test_set_command_names_the_system_of_a_kind() -> None:
    from mlconnector.commands.credentials import set_command

    assert set_command("acme", "ss_v2_key") == (
        "mlconnector credentials set shipstation --connection acme"
    )
    assert set_command("acme", "plex_ws_password") == (
        "mlconnector credentials set plex --connection acme"
    )
