"""Build the remote clients of one connection from its configuration and vaulted secrets.

The configuration (:class:`~mlconnector.config.ConnectionConfig`) says where and how; the store's
vault holds the secrets (by :class:`~mlconnector.store.CredentialKind`). This is the one place
that joins them, so ``ping`` (and later the sync engine) build identical clients.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from pydantic import SecretStr

from mlconnector.clock import Clock
from mlconnector.config import ConnectionConfig
from mlconnector.http import Redactor, RetryPolicy
from mlconnector.plex import (
    PlexClient,
    PlexDataSourceClient,
    PlexSettings,
)
from mlconnector.plex.factory import settings_from_config
from mlconnector.shipstation import ShipStationV1Client, ShipStationV2Client
from mlconnector.store import CredentialKind


def _secret(secrets: Mapping[str, str], kind: str) -> SecretStr | None:
    value = secrets.get(kind)
    return SecretStr(value) if value else None


def plex_settings(config: ConnectionConfig, secrets: Mapping[str, str]) -> PlexSettings:
    """The Plex client's settings (one mapping for the whole product:
    :func:`mlconnector.plex.factory.settings_from_config`)."""
    return settings_from_config(
        config.plex,
        consumer_key=secrets.get(CredentialKind.PLEX_API_KEY, ""),
        consumer_secret=secrets.get(CredentialKind.PLEX_CLIENT_SECRET),
        ws_password=secrets.get(CredentialKind.PLEX_WS_PASSWORD),
    )


def plex_client(
    http: httpx.AsyncClient,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    *,
    clock: Clock,
    retry: RetryPolicy | None = None,
    redactor: Redactor | None = None,
) -> PlexClient:
    """The Plex Connect REST client of a connection."""
    return PlexClient(
        http, plex_settings(config, secrets), clock=clock, retry=retry, redactor=redactor
    )


def plex_datasource_client(
    http: httpx.AsyncClient,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    *,
    clock: Clock,
    retry: RetryPolicy | None = None,
    redactor: Redactor | None = None,
) -> PlexDataSourceClient:
    """The Plex JSON Data Source API client (web-service user) of a connection."""
    return PlexDataSourceClient(
        http, plex_settings(config, secrets), clock=clock, retry=retry, redactor=redactor
    )


def shipstation_v1_client(
    http: httpx.AsyncClient,
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    *,
    clock: Clock,
    retry: RetryPolicy | None = None,
    redactor: Redactor | None = None,
    timeout: float = 30.0,
) -> ShipStationV1Client:
    """The ShipStation V1 client of a connection (Basic key:secret)."""
    return ShipStationV1Client(
        http,
        api_key=secrets.get(CredentialKind.SS_V1_KEY, ""),
        api_secret=secrets.get(CredentialKind.SS_V1_SECRET, ""),
        clock=clock,
        base_url=config.shipstation.v1_base_url,
        fulfillment_webhook_path=config.shipstation.fulfillment_webhook_path,
        connection=name,
        retry=retry,
        redactor=redactor,
        timeout=timeout,
    )


def shipstation_v2_client(
    http: httpx.AsyncClient,
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    *,
    clock: Clock,
    retry: RetryPolicy | None = None,
    redactor: Redactor | None = None,
    timeout: float = 30.0,
) -> ShipStationV2Client:
    """The ShipStation V2 client of a connection (``API-Key`` header)."""
    return ShipStationV2Client(
        http,
        api_key=secrets.get(CredentialKind.SS_V2_KEY, ""),
        clock=clock,
        base_url=config.shipstation.v2_base_url,
        webhook_keys_url=config.shipstation.effective_webhook_keys_url,
        next_link_bases=config.shipstation.v2_next_link_bases,
        connection=name,
        retry=retry,
        redactor=redactor,
        timeout=timeout,
    )
