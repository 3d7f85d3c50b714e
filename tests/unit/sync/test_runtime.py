"""build_runtime: credentials from the vault, clear errors, shared rate limits, redaction."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings
from mlconnector.errors import ConfigError
from mlconnector.http import RateLimiterRegistry, RequestEvent
from mlconnector.plex import DataSourceStrategy, ShipperStrategy
from mlconnector.store import CredentialKind, Store
from mlconnector.sync import ConnectionRuntime, build_runtime, plex_settings

from .conftest import SECRETS, make_config, refusing_factory


async def test_missing_credential_names_connection_and_command(
    tmp_path: Path, store: Store, fake_clock: FakeClock
) -> None:
    await store.set_credential("acme", CredentialKind.PLEX_API_KEY, "plex-key-0123456789")
    with pytest.raises(ConfigError) as info:
        await build_runtime(make_config(tmp_path), "acme", store, fake_clock, refusing_factory([]))
    text = str(info.value)
    assert "'acme'" in text
    assert "mlconnector credentials set shipstation --connection acme" in text


async def test_runtime_builds_clients_with_shared_budget(
    tmp_path: Path, with_secrets: Store, fake_clock: FakeClock
) -> None:
    registry = RateLimiterRegistry(fake_clock)
    config = make_config(tmp_path)
    first = await build_runtime(
        config, "acme", with_secrets, fake_clock, refusing_factory([]), registry
    )
    second = await build_runtime(
        config, "acme", with_secrets, fake_clock, refusing_factory([]), registry
    )
    try:
        assert isinstance(first.writer, ShipperStrategy)
        assert first.ss_v1.limiter is second.ss_v1.limiter  # one budget per credential
        assert first.ss_v2.limiter is second.ss_v2.limiter
        assert first.plex.limiter is second.plex.limiter
        assert first.ss_v1.limiter is not first.ss_v2.limiter
        for secret in SECRETS.values():
            assert secret not in first.redactor.text(f"token={secret} and {secret}")
    finally:
        await first.aclose()
        await second.aclose()


async def test_v2_key_is_optional_until_used(
    tmp_path: Path, store: Store, fake_clock: FakeClock
) -> None:
    for kind, value in SECRETS.items():
        if kind != CredentialKind.SS_V2_KEY:
            await store.set_credential("acme", kind, value)
    rt = await build_runtime(make_config(tmp_path), "acme", store, fake_clock, refusing_factory([]))
    try:
        assert not rt.has_ss_v2
        with pytest.raises(ConfigError, match="credentials set shipstation --connection acme"):
            _ = rt.ss_v2
    finally:
        await rt.aclose()


async def test_datasource_write_back_needs_web_service_user_and_password(
    tmp_path: Path, with_secrets: Store, fake_clock: FakeClock
) -> None:
    config = make_config(tmp_path, write_back="datasource")
    with pytest.raises(ConfigError, match="web_service_user"):
        await build_runtime(config, "acme", with_secrets, fake_clock, refusing_factory([]))
    conn = ConnectionConfig(
        plex=PlexSettings(pcn="79870", web_service_user="ws@plex.com"), write_back="datasource"
    )
    config = Config(home=tmp_path, connections={"acme": conn})
    with pytest.raises(ConfigError, match="plex_ws_password"):
        await build_runtime(config, "acme", with_secrets, fake_clock, refusing_factory([]))
    await with_secrets.set_credential("acme", CredentialKind.PLEX_WS_PASSWORD, "ws-password-123")
    rt = await build_runtime(config, "acme", with_secrets, fake_clock, refusing_factory([]))
    try:
        assert isinstance(rt.writer, DataSourceStrategy)
    finally:
        await rt.aclose()


def test_plex_settings_maps_config() -> None:
    conn = ConnectionConfig(
        plex=PlexSettings(
            pcn="79870",
            rest_base_url="http://plex.test",
            read_window_hours=6,
            requests_per_minute=120,
            shippable_container_statuses=("OK", "Staged"),
        )
    )
    settings = plex_settings(conn, {CredentialKind.PLEX_API_KEY: "k-123456"}, connection="acme")
    assert settings.endpoints.connect_url == "http://plex.test"
    assert settings.window == timedelta(hours=6)
    assert settings.requests_per_minute == 120
    assert (
        plex_settings(
            ConnectionConfig(plex=PlexSettings(pcn="1")),
            {CredentialKind.PLEX_API_KEY: "k-123456"},
            connection="acme",
        ).requests_per_minute
        == 200
    )
    assert settings.auth.pcn == "79870"
    assert settings.auth.api_key is not None
    assert settings.auth.api_key.get_secret_value() == "k-123456"
    assert settings.shippable_statuses == ("OK", "Staged")
    oauth = ConnectionConfig(
        plex=PlexSettings(pcn="1", auth_mode="oauth2", token_url="http://plex.test/token")
    )
    with pytest.raises(ConfigError, match="plex_client_secret"):
        plex_settings(oauth, {CredentialKind.PLEX_API_KEY: "id-123456"}, connection="acme")
    both = {CredentialKind.PLEX_API_KEY: "id-123456", CredentialKind.PLEX_CLIENT_SECRET: "s-9876"}
    settings = plex_settings(oauth, both, connection="acme")
    assert settings.auth.strategy == "oauth2"
    assert settings.auth.client_id == "id-123456"


def test_on_event_counts(rt: ConnectionRuntime) -> None:
    event = RequestEvent("ShipStation V1", "GET", "http://x/orders", 200, "req-1", 1, 0.25)
    rt.on_event(event)
    rt.on_event(RequestEvent("ShipStation V1", "GET", "http://x/orders", 500, None, 2, 0.5, "boom"))
    assert rt.stats.requests["ShipStation V1"] == 2
    assert rt.stats.statuses["ShipStation V1 500"] == 1
    assert rt.stats.errors["ShipStation V1"] == 1
    assert rt.stats.seconds["ShipStation V1"] == pytest.approx(0.75)
    assert rt.last_request is not None
    assert rt.last_request.status == 500


async def test_last_request_is_per_task(rt: ConnectionRuntime) -> None:
    """Two flows running as two tasks never see each other's request ids."""

    async def other_flow() -> str | None:
        rt.on_event(RequestEvent("plex", "GET", "http://p/x", 200, "plex-req", 1, 0.1))
        return rt.last_request.request_id if rt.last_request else None

    rt.on_event(RequestEvent("ShipStation V1", "POST", "http://x/o", 200, "mine", 1, 0.1))
    assert await asyncio.create_task(other_flow()) == "plex-req"
    assert rt.last_request is not None
    assert rt.last_request.request_id == "mine"
    assert rt.stats.requests["plex"] == 1  # the counters are shared


async def test_the_runtime_reads_the_credentials_in_one_statement(
    tmp_path: Path, with_secrets: Store, fake_clock: FakeClock
) -> None:
    reads: list[str] = []

    @event.listens_for(with_secrets.engine.sync_engine, "before_cursor_execute")
    def _statement(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM credentials" in statement:
            reads.append(statement)

    rt = await build_runtime(
        make_config(tmp_path), "acme", with_secrets, fake_clock, refusing_factory([])
    )
    await rt.aclose()
    assert len(reads) == 1
    assert rt.has_ss_v2  # every kind stored was read
    for secret in SECRETS.values():
        assert secret not in rt.redactor.text(secret)
