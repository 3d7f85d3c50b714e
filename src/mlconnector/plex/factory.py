"""Building the Plex clients of one connection: from the configuration file's section and the
vaulted secrets, to the REST, Data Source and SOAP clients and the configured write strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import httpx
from pydantic import SecretStr

from mlconnector import config
from mlconnector.clock import Clock
from mlconnector.errors import ConfigError
from mlconnector.http import RateLimiterRegistry, Redactor, RequestEvent, RetryPolicy
from mlconnector.plex.client import PlexClient, secrets_of
from mlconnector.plex.datasources import PlexDataSourceClient, PlexSoapClient
from mlconnector.plex.partial import ContainerSplitter, WithoutSplit
from mlconnector.plex.settings import (
    PlexAuth,
    PlexContainerSplit,
    PlexDataSourceIds,
    PlexEndpoints,
    PlexSettings,
)
from mlconnector.plex.writeback import DataSourceStrategy, ShipperStrategy, WriteStrategy


def settings_from_config(
    section: config.PlexSettings,
    *,
    consumer_key: str,
    consumer_secret: str | None = None,
    ws_password: str | None = None,
) -> PlexSettings:
    """The client settings of one ``[connections.<name>.plex]`` section plus its vaulted secrets.

    The Consumer Key is the API key (``api_key``) or the OAuth2 client id (``oauth2``); the
    Consumer Secret is the OAuth2 client secret or the optional secret header's value.
    """
    oauth = section.auth_mode == "oauth2"
    secret = _secret(consumer_secret)
    auth = PlexAuth(
        strategy=section.auth_mode,
        api_key=None if oauth else SecretStr(consumer_key),
        api_secret=secret,
        send_api_secret_header=section.send_api_secret_header,
        client_id=consumer_key if oauth else None,
        client_secret=secret if oauth else None,
        oauth_scope=section.oauth_scope,
        pcn=section.pcn,
        tenant_id=section.tenant_id,
        api_key_header=section.api_key_header,
        api_secret_header=section.api_secret_header,
        customer_id_header=section.customer_id_header,
        tenant_id_header=section.tenant_id_header,
        ws_username=section.web_service_user,
        ws_password=_secret(ws_password),
    )
    return PlexSettings(
        endpoints=PlexEndpoints(
            connect_url=str(section.rest_base_url),
            datasource_url=str(section.datasource_base_url),
            soap_url=str(section.soap_url),
            token_url=str(section.token_url) if section.token_url else None,
        ),
        auth=auth,
        datasources=PlexDataSourceIds(
            shipper_tracking_update=section.datasources.update_shipper_tracking
        ),
        container_split=PlexContainerSplit(**section.container_split.model_dump()),
        window=timedelta(hours=section.read_window_hours),
        requests_per_minute=section.requests_per_minute,
        cache_entries=section.cache_entries,
        shippable_statuses=tuple(section.shippable_container_statuses),
        open_shipper_statuses=tuple(section.open_shipper_statuses),
    )


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


@dataclass
class PlexApis:
    """The clients of one Plex connection (datasource clients only with a web-service user)."""

    rest: PlexClient
    datasources: PlexDataSourceClient | None
    soap: PlexSoapClient | None

    def writer(
        self,
        mode: Literal["shipper", "datasource"],
        *,
        without_split: WithoutSplit = "tracking_and_task",
    ) -> WriteStrategy:
        """The write-back strategy named in the configuration (``write_back``), splitting
        containers when ``plex.container_split`` names a datasource."""
        split = self.rest.settings.container_split
        splitter = None
        if split.datasource_id is not None:
            if self.datasources is None:
                raise ConfigError(
                    "plex.container_split.datasource_id needs plex.web_service_user and its "
                    "password",
                    hint="set connections.<name>.plex.web_service_user and store ws_password",
                )
            splitter = ContainerSplitter(self.datasources, split)
        if mode == "shipper":
            return ShipperStrategy(self.rest, splitter=splitter, without_split=without_split)
        if self.datasources is None:
            raise ConfigError(
                "write_back = 'datasource' needs plex.web_service_user and its password",
                hint="set connections.<name>.plex.web_service_user and store ws_password",
            )
        return DataSourceStrategy(
            self.rest, self.datasources, splitter=splitter, without_split=without_split
        )


def create_plex_apis(
    http: httpx.AsyncClient,
    settings: PlexSettings,
    *,
    clock: Clock,
    limiters: RateLimiterRegistry | None = None,
    retry: RetryPolicy | None = None,
    redactor: Redactor | None = None,
    on_event: Callable[[RequestEvent], None] | None = None,
) -> PlexApis:
    """Every Plex client of one connection, sharing the transport, clock and redactor."""
    redactor = redactor or Redactor()
    for secret in secrets_of(settings):
        redactor.add(secret)
    rest = PlexClient(
        http,
        settings,
        clock=clock,
        limiters=limiters,
        retry=retry,
        redactor=redactor,
        on_event=on_event,
    )
    if not (settings.auth.ws_username and settings.auth.ws_password):
        return PlexApis(rest=rest, datasources=None, soap=None)
    datasources = PlexDataSourceClient(
        http,
        settings,
        clock=clock,
        limiters=limiters,
        retry=retry,
        redactor=redactor,
        on_event=on_event,
    )
    soap = PlexSoapClient(
        http, settings, clock=clock, retry=retry, redactor=redactor, on_event=on_event
    )
    return PlexApis(rest=rest, datasources=datasources, soap=soap)
