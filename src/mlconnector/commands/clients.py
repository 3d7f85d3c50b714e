"""Build the remote clients of one connection from its configuration and vaulted secrets.

The configuration (:class:`~mlconnector.config.ConnectionConfig`) says where and how; the store's
vault holds the secrets (by :class:`~mlconnector.store.CredentialKind`). This is the one place
that joins them, so ``ping`` (and later the sync engine) build identical clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import httpx
from pydantic import SecretStr

from mlconnector.clock import Clock
from mlconnector.config import ConnectionConfig
from mlconnector.http import Redactor, RetryPolicy
from mlconnector.plex import (
    PlexAuth,
    PlexClient,
    PlexDataSourceClient,
    PlexDataSourceIds,
    PlexEndpoints,
    PlexSettings,
)
from mlconnector.shipstation import ShipStationV1Client, ShipStationV2Client
from mlconnector.store import CredentialKind


def _secret(secrets: Mapping[str, str], kind: str) -> SecretStr | None:
    value = secrets.get(kind)
    return SecretStr(value) if value else None


def plex_settings(config: ConnectionConfig, secrets: Mapping[str, str]) -> PlexSettings:
    """The Plex client's settings. In ``oauth2`` mode the Consumer Key/Secret are the OAuth2
    client id/secret; in ``api_key`` mode the key goes in the API-key header."""
    plex = config.plex
    key = secrets.get(CredentialKind.PLEX_API_KEY)
    consumer_secret = _secret(secrets, CredentialKind.PLEX_CLIENT_SECRET)
    oauth2 = plex.auth_mode == "oauth2"
    auth = PlexAuth(
        strategy=plex.auth_mode,
        api_key=SecretStr(key) if key and not oauth2 else None,
        api_secret=consumer_secret if plex.send_api_secret_header else None,
        send_api_secret_header=plex.send_api_secret_header,
        client_id=key if oauth2 else None,
        client_secret=consumer_secret if oauth2 else None,
        oauth_scope=plex.oauth_scope,
        pcn=plex.pcn,
        tenant_id=plex.tenant_id,
        api_key_header=plex.api_key_header,
        api_secret_header=plex.api_secret_header,
        customer_id_header=plex.customer_id_header,
        tenant_id_header=plex.tenant_id_header,
        ws_username=plex.web_service_user,
        ws_password=_secret(secrets, CredentialKind.PLEX_WS_PASSWORD),
    )
    return PlexSettings(
        endpoints=PlexEndpoints(
            connect_url=plex.rest_base_url,
            datasource_url=plex.datasource_base_url,
            soap_url=plex.soap_url,
            token_url=plex.token_url,
        ),
        auth=auth,
        datasources=PlexDataSourceIds(
            shipper_tracking_update=plex.datasources.update_shipper_tracking
        ),
        window=timedelta(hours=plex.read_window_hours),
        shippable_statuses=plex.shippable_container_statuses,
        open_shipper_statuses=plex.open_shipper_statuses,
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
        connection=name,
        retry=retry,
        redactor=redactor,
        timeout=timeout,
    )
