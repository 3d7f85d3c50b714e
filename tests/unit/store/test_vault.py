"""The vault: key sources, init_home permissions, clear errors, rotation, nothing in clear."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mlconnector.clock import FakeClock
from mlconnector.errors import VaultError
from mlconnector.store import (
    AuditEvent,
    Store,
    Vault,
    database_url,
    generate_key,
    init_home,
    key_file,
    load_vault,
    open_store,
    rotate_keys,
)

SECRETS = {
    "plex_api_key": "plex-api-key-5f0c2d1e9a8b7c6d",
    "plex_client_secret": "plex-client-secret-a1b2c3d4e5f6",
    "ss_v1_key": "ssv1key0123456789abcdef01234567",
    "ss_v1_secret": "ssv1secretfedcba9876543210fedcba",
    "ss_v2_key": "TEST_ss_v2_0a1b2c3d4e5f6a7b8c9d",
    "plex_ws_password": "Ws-P@ssw0rd-with-symbols!",
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MLCONNECTOR_HOME": str(tmp_path / "home")}


@pytest.fixture
async def home_store(env: dict[str, str], fake_clock: FakeClock) -> AsyncIterator[Store]:
    """A SQLite store in an initialised home, with the home's vault."""
    init_home(env)
    store = await open_store(database_url(env), clock=fake_clock, vault=load_vault(env))
    await store.create_connection("acme")
    try:
        yield store
    finally:
        await store.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_home_creates_private_key_once(env: dict[str, str]) -> None:
    home = init_home(env)
    path = key_file(env)
    assert home == Path(env["MLCONNECTOR_HOME"])
    assert _mode(home) == 0o700
    assert _mode(path) == 0o600
    key = path.read_bytes()
    init_home(env)
    assert path.read_bytes() == key  # never overwritten
    vault = load_vault(env)
    assert vault.path == path
    assert vault.decrypt(vault.encrypt("x")) == "x"


def test_home_defaults_to_home_folder(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert key_file(env) == tmp_path / ".mlconnector" / "master.key"
    assert (
        database_url(env) == f"sqlite+aiosqlite:///{tmp_path / '.mlconnector' / 'mlconnector.db'}"
    )


def test_env_key_wins_and_no_file_is_written(env: dict[str, str]) -> None:
    key = generate_key()
    env["MLCONNECTOR_MASTER_KEY"] = key.decode()
    init_home(env)
    assert not key_file(env).exists()
    vault = load_vault(env)
    assert vault.path is None
    assert vault.keys == (key,)
    assert "MLCONNECTOR_MASTER_KEY" in vault.source


def test_missing_key_names_both_sources(env: dict[str, str]) -> None:
    with pytest.raises(VaultError) as caught:
        load_vault(env)
    message = str(caught.value)
    assert "MLCONNECTOR_MASTER_KEY" in message
    assert str(key_file(env)) in message
    assert "mlconnector init" in message


def test_malformed_key(env: dict[str, str]) -> None:
    env["MLCONNECTOR_MASTER_KEY"] = "not-a-fernet-key"
    with pytest.raises(VaultError, match="not a valid Fernet key"):
        load_vault(env)


def test_key_file_readable_by_others_is_refused(env: dict[str, str]) -> None:
    init_home(env)
    key_file(env).chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        load_vault(env)


def test_round_trip_and_wrong_key() -> None:
    vault = Vault([generate_key()], source="k1")
    token = vault.encrypt("héllo secret")
    assert token != "héllo secret"
    assert vault.decrypt(token) == "héllo secret"
    other = Vault([generate_key()], source="the key file /x/master.key")
    with pytest.raises(VaultError, match=r"cannot decrypt credential a/b .*master.key"):
        other.decrypt(token, record="credential a/b")
    both = Vault([generate_key(), *vault.keys], source="multi")
    assert both.decrypt(token) == "héllo secret"  # MultiFernet: any key opens
    assert both.key_version != vault.key_version


async def _store_all(store: Store) -> None:
    for kind, secret in SECRETS.items():
        await store.set_credential("acme", kind, secret)


async def _read_all(store: Store) -> dict[str, str | None]:
    return {kind: await store.get_credential("acme", kind) for kind in SECRETS}


async def test_rotation_with_key_file(env: dict[str, str], home_store: Store) -> None:
    await _store_all(home_store)
    old = load_vault(env)
    new_key = generate_key()
    new = await rotate_keys(home_store, old, new_key)
    path = key_file(env)
    assert path.read_bytes() == new_key + b"\n"
    assert _mode(path) == 0o600
    assert not path.with_name("master.key.bak").exists()
    reloaded = home_store.with_vault(load_vault(env))
    assert await _read_all(reloaded) == SECRETS
    assert {c.key_version for c in await reloaded.list_credentials_masked("acme")} == {
        new.key_version
    }
    with pytest.raises(VaultError):
        await home_store.with_vault(old).get_credential("acme", "ss_v1_key")


async def test_rotation_with_env_key_writes_no_file(tmp_path: Path, fake_clock: FakeClock) -> None:
    env = {"MLCONNECTOR_HOME": str(tmp_path), "MLCONNECTOR_MASTER_KEY": generate_key().decode()}
    init_home(env)
    store = await open_store(database_url(env), clock=fake_clock, vault=load_vault(env))
    try:
        await store.create_connection("acme")
        await _store_all(store)
        new = await rotate_keys(store, load_vault(env))
        assert not key_file(env).exists()
        env["MLCONNECTOR_MASTER_KEY"] = new.keys[0].decode()
        assert await _read_all(store.with_vault(load_vault(env))) == SECRETS
    finally:
        await store.close()


async def test_rotation_with_wrong_old_key_touches_nothing(
    env: dict[str, str], home_store: Store
) -> None:
    await _store_all(home_store)
    before_key = key_file(env).read_bytes()
    before_rows = list(await home_store.list_credentials_masked("acme"))
    wrong = Vault([generate_key()], source="a wrong key", path=key_file(env))
    with pytest.raises(VaultError, match="cannot decrypt credential acme/"):
        await rotate_keys(home_store, wrong)
    assert key_file(env).read_bytes() == before_key
    assert sorted(p.name for p in key_file(env).parent.iterdir() if "master" in p.name) == [
        "master.key"
    ]
    assert await home_store.list_credentials_masked("acme") == before_rows
    assert await _read_all(home_store) == SECRETS


class _FailingStore(Store):
    """Fails the re-encryption after converting some credentials, and records what a crash at
    that instant would find on disk."""

    seen_during: dict[str, str | None]

    async def reencrypt_credentials(
        self, reencrypt: Callable[[str, str], tuple[str, str]], *, now: Any = None
    ) -> int:
        calls = 0

        def failing(token: str, record: str) -> tuple[str, str]:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("disk full")
            return reencrypt(token, record)

        # During rotation the key file must open both old and new ciphertexts.
        assert self.vault is not None
        env = {"MLCONNECTOR_HOME": str(self.vault.path.parent)}  # type: ignore[union-attr]
        mid = load_vault(env)
        assert len(mid.keys) == 2
        self.seen_during = await _read_all(self.with_vault(mid))
        return await super().reencrypt_credentials(failing, now=now)


async def test_rotation_failure_restores_everything(env: dict[str, str], home_store: Store) -> None:
    await _store_all(home_store)
    before_key = key_file(env).read_bytes()
    failing = _FailingStore(home_store.engine, clock=home_store.clock, vault=load_vault(env))
    before_rows = await failing.list_credentials_masked("acme")
    with pytest.raises(RuntimeError, match="disk full"):
        await rotate_keys(failing, load_vault(env))
    assert failing.seen_during == SECRETS
    assert key_file(env).read_bytes() == before_key
    assert not key_file(env).with_name("master.key.bak").exists()
    assert await failing.list_credentials_masked("acme") == before_rows
    assert await _read_all(home_store.with_vault(load_vault(env))) == SECRETS


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_no_secret_in_clear_anywhere_under_home(
    env: dict[str, str], home_store: Store
) -> None:
    await home_store.update_connection("acme", settings={"marker": "VISIBLE-MARKER-42"})
    await _store_all(home_store)
    # Secrets that reach other tables through normal use are redacted on the way in.
    op = (await home_store.enqueue("acme", "orders", "create", "k", {})).operation
    await home_store.fail(
        op.id,
        f"401 with key {SECRETS['ss_v1_key']}",
        next_attempt_at=home_store.clock.now(),
        max_attempts=3,
    )
    await home_store.append_audit(
        AuditEvent(
            "acme",
            "orders",
            "plex->ss",
            "order",
            "create",
            "failed",
            details={"echo": SECRETS["plex_api_key"], "password": SECRETS["plex_ws_password"]},
        )
    )
    await home_store.receive_webhook(
        "acme", b"{}", {"Authorization": f"Basic {SECRETS['ss_v1_secret']}"}
    )
    assert await _read_all(home_store) == SECRETS

    home = Path(env["MLCONNECTOR_HOME"])
    db = home / "mlconnector.db"
    assert db.with_name("mlconnector.db-wal").exists()  # the scan covers the WAL too
    # The scan sees the data: a plain setting is found, in the database file or its WAL.
    assert _files_containing(home, b"VISIBLE-MARKER-42")
    for secret in SECRETS.values():
        assert _files_containing(home, secret.encode()) == [], secret
    await home_store.close()  # checkpoints the WAL into the main file
    assert _files_containing(home, b"VISIBLE-MARKER-42")
    for secret in SECRETS.values():
        assert _files_containing(home, secret.encode()) == [], secret


class _CommitThenFailStore(Store):
    """The re-encryption commits, then the call fails (as a cancellation during COMMIT would)."""

    async def reencrypt_credentials(
        self, reencrypt: Callable[[str, str], tuple[str, str]], *, now: Any = None
    ) -> int:
        await super().reencrypt_credentials(reencrypt, now=now)
        raise RuntimeError("connection lost after COMMIT")


async def test_rotation_failure_after_commit_keeps_both_keys(
    env: dict[str, str], home_store: Store
) -> None:
    await _store_all(home_store)
    new_key = generate_key()
    store = _CommitThenFailStore(home_store.engine, clock=home_store.clock, vault=load_vault(env))
    with pytest.raises(RuntimeError, match="after COMMIT"):
        await rotate_keys(store, load_vault(env), new_key)
    vault = load_vault(env)
    assert vault.keys[0] == new_key
    assert len(vault.keys) == 2
    assert await _read_all(home_store.with_vault(vault)) == SECRETS
    # A later rotation completes the job and leaves a single key.
    final = await rotate_keys(home_store, vault)
    assert load_vault(env).keys == final.keys
    assert await _read_all(home_store.with_vault(load_vault(env))) == SECRETS
