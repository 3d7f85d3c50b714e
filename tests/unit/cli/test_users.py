"""``mlconnector users add/list/passwd/remove``: no default password, only argon2 hashes stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mlconnector.passwords import verify_password
from mlconnector.store import Role, Store, User, open_store
from tests.unit.cli.conftest import Cli

PASSWORD = "correct horse battery"
OTHER = "another long passphrase"


def with_store(cli: Cli, work: object) -> object:
    async def run() -> object:
        store = await open_store(f"sqlite+aiosqlite:///{cli.home / 'mlconnector.db'}")
        async with store:
            assert callable(work)
            return await work(store)

    return asyncio.run(run())


def user(cli: Cli, name: str) -> User | None:
    async def get(store: Store) -> User | None:
        return await store.get_user(name)

    found = with_store(cli, get)
    assert found is None or isinstance(found, User)
    return found


def test_add_from_the_hidden_prompt_asks_twice_and_stores_a_hash(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    result = cli("users", "add", "Ana", "--role", "operator", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output
    stored = user(cli, "ana")  # names are lower-cased
    assert stored is not None
    assert stored.role is Role.OPERATOR
    assert stored.password_hash.startswith("$argon2id$")
    assert verify_password(stored.password_hash, PASSWORD)
    database = (cli.home / "mlconnector.db").read_bytes()
    assert PASSWORD.encode() not in database


def test_add_from_stdin_and_the_rules_for_passwords_and_names(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    short = cli("users", "add", "bo", "--role", "viewer", "--stdin", stdin="short\n")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    assert "short" not in short.output  # the password is never echoed
    assert user(cli, "bo") is None
    bad_name = cli("users", "add", "bo bo", "--role", "viewer", "--stdin", stdin=PASSWORD)
    assert bad_name.exit_code == 1
    assert "user name" in bad_name.output
    ok = cli("users", "add", "bo", "--role", "viewer", "--stdin", stdin=PASSWORD + "\n")
    assert ok.exit_code == 0, ok.output
    again = cli("users", "add", "bo", "--role", "operator", "--stdin", stdin=PASSWORD)
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert "users passwd bo" in again.output
    stored = user(cli, "bo")
    assert stored is not None
    assert stored.role is Role.VIEWER
    no_role = cli("users", "add", "cy", "--stdin", stdin=PASSWORD)
    assert no_role.exit_code == 2  # --role is required: no default role either


def test_mismatched_confirmation_is_asked_again(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    result = cli(
        "users", "add", "ana", "--role", "viewer",
        input=f"{PASSWORD}\n{OTHER}\n{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    stored = user(cli, "ana")
    assert stored is not None
    assert verify_password(stored.password_hash, PASSWORD)


def test_passwd_changes_the_hash_and_ends_sessions_list_and_remove(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    assert (
        cli("users", "add", "ana", "--role", "operator", "--stdin", stdin=PASSWORD).exit_code == 0
    )

    async def open_session(store: Store) -> int:
        expires = store.clock.now() + timedelta(hours=1)
        await store.create_session("h", "ana", "c", expires_at=expires)
        return await store.count_sessions("ana")

    assert with_store(cli, open_session) == 1
    listed = cli("users", "list")
    assert listed.exit_code == 0
    assert "ana" in listed.output
    assert "operator" in listed.output

    changed = cli("users", "passwd", "ana", "--stdin", stdin=OTHER)
    assert changed.exit_code == 0, changed.output
    stored = user(cli, "ana")
    assert stored is not None
    assert verify_password(stored.password_hash, OTHER)
    assert not verify_password(stored.password_hash, PASSWORD)

    async def sessions(store: Store) -> int:
        return await store.count_sessions("ana")

    assert with_store(cli, sessions) == 0
    missing = cli("users", "passwd", "ghost", "--stdin", stdin=OTHER)
    assert missing.exit_code == 1
    assert "no user 'ghost'" in missing.output

    assert cli("users", "remove", "ana").exit_code == 0
    assert user(cli, "ana") is None
    gone = cli("users", "remove", "ana")
    assert gone.exit_code == 1
    assert "no user 'ana'" in gone.output
    assert "no account yet" in cli("users", "list").output
