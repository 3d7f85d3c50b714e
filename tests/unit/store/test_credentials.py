"""Credentials through the store: only ciphertext at rest, masked listing, clear vault errors."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mlconnector.errors import VaultError
from mlconnector.store import (
    CredentialKind,
    Store,
    StoreError,
    UnknownConnectionError,
    Vault,
    generate_key,
)
from mlconnector.store.schema import credentials

SECRET = "ss-v1-secret-0123456789abcdef"


async def _rows(store: Store) -> list[tuple[str, str, str, str]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(
                credentials.c.connection,
                credentials.c.kind,
                credentials.c.ciphertext,
                credentials.c.key_version,
            ).order_by(credentials.c.kind)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_round_trip_stores_only_ciphertext(store: Store, acme: str, vault: Vault) -> None:
    info = await store.set_credential(acme, CredentialKind.SS_V1_SECRET, SECRET)
    assert info.masked == "••••cdef"
    assert info.key_version == vault.key_version
    assert await store.get_credential(acme, "ss_v1_secret") == SECRET
    ((_, kind, ciphertext, version),) = await _rows(store)
    assert kind == "ss_v1_secret"
    assert version == vault.key_version
    assert SECRET not in ciphertext
    assert vault.decrypt(ciphertext) == SECRET


async def test_replace_list_and_delete(store: Store, acme: str) -> None:
    await store.set_credential(acme, "ss_v1_key", "short")
    await store.set_credential(acme, "ss_v1_key", "key-number-two-0000")
    await store.set_credential(acme, "plex_api_key", "plex-api-key-99999999")
    assert await store.get_credential(acme, "ss_v1_key") == "key-number-two-0000"
    listed = await store.list_credentials_masked(acme)
    assert [(c.kind, c.masked) for c in listed] == [
        ("plex_api_key", "••••9999"),
        ("ss_v1_key", "••••0000"),
    ]
    assert all("plex-api-key" not in c.masked for c in listed)
    assert await store.delete_credential(acme, "ss_v1_key") is True
    assert await store.delete_credential(acme, "ss_v1_key") is False
    assert await store.get_credential(acme, "ss_v1_key") is None
    assert await store.verify_credentials() == 1


async def test_short_secrets_show_nothing(store: Store, acme: str) -> None:
    info = await store.set_credential(acme, "ss_v2_key", "abcdefgh")
    assert info.masked == "••••"


async def test_wrong_key_raises_clear_error_and_touches_nothing(store: Store, acme: str) -> None:
    await store.set_credential(acme, "plex_api_key", "plex-api-key-99999999")
    before = await _rows(store)
    wrong = store.with_vault(Vault([generate_key()], source="the environment variable X"))
    with pytest.raises(VaultError) as caught:
        await wrong.get_credential(acme, "plex_api_key")
    message = str(caught.value)
    assert "credential acme/plex_api_key" in message
    assert "the environment variable X" in message
    assert "what to do" in message
    with pytest.raises(VaultError):
        await wrong.list_credentials_masked(acme)
    with pytest.raises(VaultError):
        await wrong.verify_credentials()
    assert await _rows(store) == before


async def test_without_vault_and_bad_input(store: Store, acme: str) -> None:
    bare = Store(store.engine, clock=store.clock)
    with pytest.raises(VaultError, match="without a vault"):
        await bare.set_credential(acme, "ss_v1_key", "value-value")
    with pytest.raises(StoreError, match="invalid credential kind"):
        await store.set_credential(acme, "Bad Kind", "value-value")
    with pytest.raises(StoreError, match="empty secret"):
        await store.set_credential(acme, "ss_v1_key", "")
    with pytest.raises(UnknownConnectionError):
        await store.set_credential("ghost", "ss_v1_key", "value-value")
    assert await _rows(store) == []


async def test_all_secrets_of_a_connection_at_once(store: Store, acme: str) -> None:
    await store.set_credential(acme, "ss_v1_key", "key-number-one-1111")
    await store.set_credential(acme, "plex_api_key", "plex-api-key-99999999")
    await store.create_connection("beta")
    await store.set_credential("beta", "ss_v1_key", "key-of-beta-2222")
    assert await store.get_credentials(acme) == {
        "ss_v1_key": "key-number-one-1111",
        "plex_api_key": "plex-api-key-99999999",
    }
    assert await store.get_credentials("nobody") == {}
    other = store.with_vault(Vault([generate_key()], source="another key"))
    with pytest.raises(VaultError) as info:
        await other.get_credentials(acme)
    assert f"credential {acme}/" in str(info.value)
