"""Settings of the Plex client: every host, path, header name and datasource id is configuration.

The public Plex documentation is incomplete (reference/plex-api.md §9), so nothing the client
sends is hard-coded beyond defaults: a customer-specific host, a test tier, a token endpoint or a
different datasource id is a change of settings, not of code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class PlexEndpoints(BaseModel):
    """Where the three Plex API surfaces (and the OAuth2 token endpoint) live."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Plex Connect REST ("developer portal APIs"); test tier: https://test.connect.plex.com
    connect_url: str = "https://connect.plex.com"
    #: JSON Data Source API host: cloud.plex.com or https://{PCN_Code}.on.plex.com
    datasource_url: str = "https://cloud.plex.com"
    #: the legacy SOAP DataSource service
    soap_url: str = "https://api.plexonline.com/DataSource/Service.asmx"
    #: OAuth2 client-credentials token endpoint (not documented publicly: must be configured)
    token_url: str | None = None
    #: path template of a JSON datasource execution, relative to ``datasource_url``
    datasource_execute_path: str = "/api/datasources/{id}/execute"
    soap_namespace: str = "http://www.plexus-online.com/DataSource"


class PlexAuth(BaseModel):
    """Credentials and the header names they travel in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["api_key", "oauth2"] = "api_key"
    #: the app's Consumer Key (api_key strategy) or OAuth2 client id
    api_key: SecretStr | None = None
    #: optional second header some tenants use; OAuth2 client secret in the oauth2 strategy
    api_secret: SecretStr | None = None
    send_api_secret_header: bool = False
    client_id: str | None = None
    client_secret: SecretStr | None = None
    oauth_scope: str | None = None
    #: seconds before the token's expiry at which it is renewed
    token_refresh_margin: float = 60.0
    #: PCN routing (``X-Plex-Connect-Customer-Id``) or tenant routing (``X-Plex-Connect-Tenant-Id``)
    pcn: str | None = None
    tenant_id: str | None = None
    api_key_header: str = "X-Plex-Connect-Api-Key"
    api_secret_header: str = "X-Plex-Connect-Api-Secret"  # noqa: S105 (a header name)
    customer_id_header: str = "X-Plex-Connect-Customer-Id"
    tenant_id_header: str = "X-Plex-Connect-Tenant-Id"
    #: web-service user (HTTP Basic) for the Data Source API and SOAP
    ws_username: str | None = None
    ws_password: SecretStr | None = None

    @model_validator(mode="after")
    def _check(self) -> PlexAuth:
        if self.strategy == "api_key" and self.api_key is None:
            raise ValueError("plex.auth.api_key is required when plex.auth.strategy = 'api_key'")
        if self.strategy == "oauth2" and (not self.client_id or self.client_secret is None):
            raise ValueError(
                "plex.auth.client_id and plex.auth.client_secret are required when "
                "plex.auth.strategy = 'oauth2'"
            )
        if self.pcn and self.tenant_id:
            raise ValueError("set either plex.auth.pcn or plex.auth.tenant_id, not both")
        return self


class PlexDataSourceIds(BaseModel):
    """Datasource ids (Plex-global integers; confirm each on the tenant's Data Sources screen)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: update shipper tracking number + shipper note (inputs Shipper_Key, Tracking_No, Shipper_Note)
    shipper_tracking_update: int = 230447
    #: standard object name and key column for the REST id → datasource key conversion
    shipper_standard_object: str = "Shipper"
    shipper_key_column: str = "Shipper_Key"


class PlexContainerSplit(BaseModel):
    """A Data Source that splits a container: ``quantity`` off ``serial`` into a new serial.

    Plex publishes no id for it (reference §3b): nothing is split unless ``datasource_id`` is
    set, after the customer found the procedure on the Data Sources screen and granted it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasource_id: int | None = None
    serial_input: str = "Serial_No"
    quantity_input: str = "Split_Quantity"
    #: output parameter (or result column) carrying the serial of the split-off container
    new_serial_output: str = "New_Serial_No"


class PlexSettings(BaseModel):
    """Everything the Plex client needs to know, besides the injected clock and transport."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: PlexEndpoints = Field(default_factory=PlexEndpoints)
    auth: PlexAuth
    datasources: PlexDataSourceIds = Field(default_factory=PlexDataSourceIds)
    container_split: PlexContainerSplit = Field(default_factory=PlexContainerSplit)
    #: size of the date windows every modified-date read is cut into (lists are unpaginated)
    window: timedelta = timedelta(days=1)
    #: entries each of the client's per-run caches (customers, customer addresses, parts)
    #: keeps, the most recently used: a pass's memory does not grow with the customers and
    #: parts it meets; a larger value saves re-reads when one run touches more of them
    cache_entries: int = Field(default=2000, ge=1)
    #: REST budget; Plex documents 200 calls/minute per app
    requests_per_minute: int = 200
    #: seconds to wait after a 429 that carries no Retry-After (Plex documents none)
    rate_limit_wait: float = 15.0
    #: container statuses that count as on-hand, shippable stock
    shippable_statuses: tuple[str, ...] = ("OK",)
    #: shipper statuses in which a shipper may still receive releases (datasource strategy)
    open_shipper_statuses: tuple[str, ...] = ("Open", "Pending")
    #: how far back ``find_existing`` looks for a shipper created by an earlier attempt
    find_existing_lookback: timedelta = timedelta(days=14)
    #: Plex ``externalShipmentCode`` is at most 50 characters
    max_reference_length: int = 50

    @model_validator(mode="after")
    def _check(self) -> PlexSettings:
        if self.window <= timedelta(0):
            raise ValueError("plex.window must be positive")
        if self.auth.strategy == "oauth2" and not self.endpoints.token_url:
            raise ValueError(
                "plex.endpoints.token_url is required for the oauth2 strategy "
                "(Plex does not publish it: ask the customer's Plex administrator)"
            )
        return self
