"""The standalone sandbox's fixed set-up, shared by ``mlconnector sandbox`` (which serves it) and
``mlconnector connections add NAME --sandbox`` (which writes a connection for it).

Both simulators listen on fixed loopback ports by default; the ShipStation simulator gets a V2
inventory warehouse with one location per Plex building (:func:`seed_inventory`), so the
inventory flow has somewhere to put stock. :func:`sandbox_connection` gives the settings (URLs,
PCN, web-service user, container split, mappings) and the sandbox-only secrets of a connection
to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import (
    CONTAINER_SPLIT_ID,
    DEFAULT_CONSUMER_KEY,
    DEFAULT_CONSUMER_SECRET,
    DEFAULT_TENANTS,
    DEFAULT_WS_PASSWORD,
    PlexSandbox,
)
from mlconnector.sandbox.shipstation import ShipStationAccount, ShipStationSandbox
from mlconnector.sandbox.shipstation.inventory import InventoryState

PLEX_PORT = 8701
SHIPSTATION_PORT = 8702
HOST = "127.0.0.1"
#: the seeded Plex tenants' buildings, with the ShipStation V1 warehouse each ships from
BUILDING_WAREHOUSES = {"DET": 200, "TOL": 201, "LON": 200}
#: Plex finished-goods locations of each building (containers there are on hand)
STOCK_AREAS = ("FG-01", "FG-02")
#: the ShipStation store new orders go to ("Plex Orders")
DEFAULT_STORE = 101
INVENTORY_WAREHOUSE = "Plant inventory"


def seed_inventory(inventory: InventoryState) -> dict[str, str]:
    """One V2 inventory warehouse and a location per Plex building; returns Plex location code
    → inventory location id. On a fresh simulator the ids are always the same."""
    warehouse = inventory.add_warehouse(INVENTORY_WAREHOUSE)
    mapping: dict[str, str] = {}
    for building in BUILDING_WAREHOUSES:
        location = inventory.add_location(building, warehouse.inventory_warehouse_id)
        for area in STOCK_AREAS:
            mapping[f"{building}-{area}"] = location.inventory_location_id
    return mapping


def inventory_locations() -> dict[str, str]:
    """What :func:`seed_inventory` gives a fresh simulator (without starting one)."""
    return seed_inventory(InventoryState(FakeClock()))


@dataclass(frozen=True)
class SandboxConnection:
    """A connection to the standalone sandbox: settings for the file, secrets for the vault."""

    settings: dict[str, Any]
    #: credential name (``plex_api_key``, ``ss_v1_key`` …) → sandbox-only value
    secrets: dict[str, str] = field(default_factory=dict)


def sandbox_connection(
    plex_url: str | None = None, shipstation_url: str | None = None, *, pcn: int | None = None
) -> SandboxConnection:
    """Settings and secrets of a connection to the sandbox (default ports unless given)."""
    plex = (plex_url or f"http://{HOST}:{PLEX_PORT}").rstrip("/")
    ss = (shipstation_url or f"http://{HOST}:{SHIPSTATION_PORT}").rstrip("/")
    tenant = pcn or DEFAULT_TENANTS[0].pcn
    account = ShipStationAccount()
    settings: dict[str, Any] = {
        "plex": {
            "pcn": str(tenant),
            "rest_base_url": plex,
            "datasource_base_url": plex,
            "soap_url": f"{plex}/DataSource/Service.asmx",
            "web_service_user": PlexSandbox.ws_username(tenant),
            # the seed's orders span weeks: one read window covers them
            "read_window_hours": 744,
            # the sandbox's container-split Data Source: partial quantities split, no task
            "container_split": {"datasource_id": CONTAINER_SPLIT_ID},
        },
        "shipstation": {"v1_base_url": ss, "v2_base_url": ss},
        "mappings": {
            "warehouses": dict(BUILDING_WAREHOUSES),
            "inventory_locations": inventory_locations(),
            "stores": {"default": DEFAULT_STORE},
        },
    }
    secrets = {
        "plex_api_key": DEFAULT_CONSUMER_KEY,
        "plex_client_secret": DEFAULT_CONSUMER_SECRET,
        "plex_ws_password": DEFAULT_WS_PASSWORD,
        "ss_v1_key": account.api_key,
        "ss_v1_secret": account.api_secret,
        "ss_v2_key": account.v2_api_key or "",
    }
    return SandboxConnection(settings, secrets)


def prepare(ss: ShipStationSandbox) -> dict[str, str]:
    """Set up a freshly created ShipStation simulator for standalone use (inventory locations)."""
    return seed_inventory(ss.inventory)
