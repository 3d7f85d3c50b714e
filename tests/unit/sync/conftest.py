"""Fixtures of the sync unit tests: a SQLite store with a vault, a config and a runtime whose
HTTP clients refuse any request unless a test mounts a handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, RetryBudget
from mlconnector.store import CredentialKind, Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, LogAlertSink, build_runtime
from tests.dbutil import migrated_sqlite

SECRETS = {
    CredentialKind.PLEX_API_KEY: "plex-key-0123456789",
    CredentialKind.SS_V1_KEY: "ss-v1-key-0123456789",
    CredentialKind.SS_V1_SECRET: "ss-v1-secret-0123456789",
    CredentialKind.SS_V2_KEY: "ss-v2-key-0123456789",
}


def make_config(tmp_path: Path, **connection: object) -> Config:
    conn = ConnectionConfig(
        plex=PlexSettings(pcn="79870"),
        retry=RetryBudget(max_attempts=3, base_delay_seconds=10, max_delay_seconds=100),
        **connection,  # type: ignore[arg-type]
    )
    return Config(home=tmp_path, connections={"acme": conn})


@pytest.fixture
async def store(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Store]:
    vault = Vault([generate_key()], source="a test key")
    store = await open_store(migrated_sqlite(tmp_path / "mlc.db"), clock=fake_clock, vault=vault)
    await store.create_connection("acme", plex_pcn="79870")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def with_secrets(store: Store) -> Store:
    for kind, value in SECRETS.items():
        await store.set_credential("acme", kind, value)
    return store


def refusing_factory(seen: list[str]) -> Callable[[str, str], httpx.AsyncClient]:
    """An http_factory whose clients fail every request (unit tests must not reach a network)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(599, json={"message": "no network in unit tests"})

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    return factory


@pytest.fixture
async def rt(
    tmp_path: Path, with_secrets: Store, fake_clock: FakeClock
) -> AsyncIterator[ConnectionRuntime]:
    runtime = await build_runtime(
        make_config(tmp_path),
        "acme",
        with_secrets,
        fake_clock,
        refusing_factory([]),
        alerts=LogAlertSink(),
    )
    try:
        yield runtime
    finally:
        await runtime.aclose()
