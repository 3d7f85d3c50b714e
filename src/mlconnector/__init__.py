"""ml-connector: keeps a Plex ERP tenant and a ShipStation account in sync."""

__version__ = "0.1.0"
