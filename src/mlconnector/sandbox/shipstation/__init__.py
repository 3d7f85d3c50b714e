"""Stateful ShipStation simulator (V1 + V2), written from the public specs, not from the client.

Modules: :mod:`.models` (records), :mod:`.render` (V1 wire form), :mod:`.validation` (order
payloads), :mod:`.state` (V1 rules), :mod:`.inventory` (V2 state), :mod:`.limits` (rate limits),
:mod:`.v1` / :mod:`.v2` (routes), :mod:`.webhooks` (queued, signed deliveries),
:mod:`.operator` (HTTP operator surface), :mod:`.app` (factory). See docs/sandbox-shipstation.md.
"""

from .app import (
    DEFAULT_PUBLIC_URL,
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)
from .state import LabelRequest, OperatorError
from .webhooks import JWKS_PATH, DeliveryResult

__all__ = [
    "DEFAULT_PUBLIC_URL",
    "JWKS_PATH",
    "DeliveryResult",
    "LabelRequest",
    "OperatorError",
    "ShipStationAccount",
    "ShipStationSandbox",
    "create_shipstation_sandbox",
]
