"""A stateful simulator of Plex: Connect REST, the JSON Data Source API and the SOAP service.

``create_plex_sandbox(clock)`` builds it; see :mod:`mlconnector.sandbox.plex.sandbox`. Written from
the public Plex descriptions only; it never imports the connector's Plex client (DESIGN §2).
"""

from mlconnector.sandbox.plex.datasources import (
    RELEASE_HISTORY_ID,
    SHIPPERS_GET_ID,
    TRACKING_UPDATE_ID,
)
from mlconnector.sandbox.plex.sandbox import (
    DEFAULT_CONSUMER_KEY,
    DEFAULT_CONSUMER_SECRET,
    DEFAULT_TOKEN_PATH,
    DEFAULT_WS_PASSWORD,
    LinePlan,
    PlexSandbox,
    ReleasePlan,
    create_plex_sandbox,
)
from mlconnector.sandbox.plex.seed import DEFAULT_TENANTS, TenantSpec

__all__ = [
    "DEFAULT_CONSUMER_KEY",
    "DEFAULT_CONSUMER_SECRET",
    "DEFAULT_TENANTS",
    "DEFAULT_TOKEN_PATH",
    "DEFAULT_WS_PASSWORD",
    "RELEASE_HISTORY_ID",
    "SHIPPERS_GET_ID",
    "TRACKING_UPDATE_ID",
    "LinePlan",
    "PlexSandbox",
    "ReleasePlan",
    "TenantSpec",
    "create_plex_sandbox",
]
