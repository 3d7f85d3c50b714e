"""The Plex client: Connect REST (API key or OAuth2), the JSON Data Source API, SOAP, write-back.

Clients know nothing of the store or the simulators; every host, path, header name and datasource
id is configuration (:class:`PlexSettings`), because the public Plex documentation is incomplete.
"""

from mlconnector.plex.auth import AccessToken, PlexCredentials, TokenClient
from mlconnector.plex.client import PlexClient
from mlconnector.plex.datasources import (
    DataSourceError,
    DataSourceResult,
    PlexDataSourceClient,
    PlexSoapClient,
    RowLimitExceededError,
)
from mlconnector.plex.errors import product_for
from mlconnector.plex.factory import PlexApis, create_plex_apis, settings_from_config
from mlconnector.plex.models import (
    Address,
    Container,
    Customer,
    InventoryShipment,
    Location,
    OnHand,
    OrderLine,
    Part,
    Release,
    SalesOrder,
    ShipmentLine,
    ShipmentWrite,
    Shipper,
    ShipperLine,
    WriteResult,
)
from mlconnector.plex.partial import ContainerSplitter, NeedsOperatorError
from mlconnector.plex.settings import (
    PlexAuth,
    PlexContainerSplit,
    PlexDataSourceIds,
    PlexEndpoints,
    PlexSettings,
)
from mlconnector.plex.windows import FilterIgnoredError
from mlconnector.plex.writeback import (
    DataSourceStrategy,
    ExistingWrite,
    ReversalNotSupportedError,
    ShipperStrategy,
    WriteStrategy,
)

__all__ = [
    "AccessToken",
    "Address",
    "Container",
    "ContainerSplitter",
    "Customer",
    "DataSourceError",
    "DataSourceResult",
    "DataSourceStrategy",
    "ExistingWrite",
    "FilterIgnoredError",
    "InventoryShipment",
    "Location",
    "NeedsOperatorError",
    "OnHand",
    "OrderLine",
    "Part",
    "PlexApis",
    "PlexAuth",
    "PlexClient",
    "PlexContainerSplit",
    "PlexCredentials",
    "PlexDataSourceClient",
    "PlexDataSourceIds",
    "PlexEndpoints",
    "PlexSettings",
    "PlexSoapClient",
    "Release",
    "ReversalNotSupportedError",
    "RowLimitExceededError",
    "SalesOrder",
    "ShipmentLine",
    "ShipmentWrite",
    "Shipper",
    "ShipperLine",
    "ShipperStrategy",
    "TokenClient",
    "WriteResult",
    "WriteStrategy",
    "create_plex_apis",
    "product_for",
    "settings_from_config",
]
