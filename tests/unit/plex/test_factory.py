"""From a configuration section and vaulted secrets to working Plex clients."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from mlconnector import config
from mlconnector.errors import ConfigError
from mlconnector.plex import (
    DataSourceStrategy,
    ShipperStrategy,
    create_plex_apis,
    settings_from_config,
)


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError("no request expected")


def test_oauth2_section_maps_consumer_key_and_secret_to_client_credentials() -> None:
    section = config.PlexSettings(
        auth_mode="oauth2",
        token_url="https://login.example.test/token",
        pcn=340884,
        web_service_user="Ws@plex.com",
        read_window_hours=6,
        cache_entries=500,
        shippable_container_statuses=("OK", "Hold"),
        datasources=config.PlexDatasources(update_shipper_tracking=1234),
    )
    settings = settings_from_config(
        section, consumer_key="ck-1", consumer_secret="cs-1", ws_password="wp-1"
    )
    auth = settings.auth
    assert auth.strategy == "oauth2"
    assert auth.client_id == "ck-1"
    assert auth.client_secret is not None
    assert auth.client_secret.get_secret_value() == "cs-1"
    assert auth.api_key is None
    assert auth.pcn == "340884"
    assert settings.endpoints.token_url == "https://login.example.test/token"
    assert settings.window == timedelta(hours=6)
    assert settings.cache_entries == 500
    assert settings.shippable_statuses == ("OK", "Hold")
    assert settings.datasources.shipper_tracking_update == 1234


async def test_api_key_section_without_web_service_user(http_factory, fake_clock) -> None:
    settings = settings_from_config(config.PlexSettings(), consumer_key="ck-2")
    assert settings.auth.api_key is not None
    assert settings.auth.api_key.get_secret_value() == "ck-2"
    apis = create_plex_apis(http_factory(no_network), settings, clock=fake_clock)
    assert apis.datasources is None
    assert isinstance(apis.writer("shipper"), ShipperStrategy)
    with pytest.raises(ConfigError, match="web_service_user"):
        apis.writer("datasource")


async def test_datasource_writer_with_web_service_user(http_factory, fake_clock) -> None:
    section = config.PlexSettings(web_service_user="Ws@plex.com")
    settings = settings_from_config(section, consumer_key="ck-3", ws_password="wp-3")
    apis = create_plex_apis(http_factory(no_network), settings, clock=fake_clock)
    assert isinstance(apis.writer("datasource"), DataSourceStrategy)
    assert apis.soap is not None
    # One redactor knows every secret of the connection.
    assert apis.rest.redactor is apis.soap.redactor
    assert "wp-3" not in apis.rest.redactor.text("password wp-3 and key ck-3")
    assert "ck-3" not in apis.rest.redactor.text("password wp-3 and key ck-3")
