"""ShipStation clients: V1 (orders, shipments, fulfillments, webhooks, stores, warehouses) and V2
(inventory, inventory warehouses/locations, environment webhooks), their typed models, and webhook
handling (delivery parsing, ``resource_url`` allow-list, V2 signature verification).

Written from the public API reference, never from the simulator (DESIGN §2).
"""

from mlconnector.shipstation._common import RepeatedPageError, says_frozen
from mlconnector.shipstation.models import (
    FROZEN_STATUSES,
    OPEN_STATUSES,
    Address,
    AdvancedOptions,
    CreateOrderResult,
    Dimensions,
    Fulfillment,
    InventoryChange,
    InventoryLevel,
    InventoryLocation,
    InventoryWarehouse,
    ItemOption,
    MarkShippedResult,
    Money,
    Order,
    OrderItem,
    Shipment,
    ShipmentItem,
    Store,
    V1Webhook,
    V2Webhook,
    Warehouse,
    WebhookHeader,
    Weight,
)
from mlconnector.shipstation.v1 import (
    DEFAULT_V1_BASE_URL,
    ShipStationV1Client,
    WebhookBatch,
)
from mlconnector.shipstation.v2 import DEFAULT_V2_BASE_URL, ShipStationV2Client
from mlconnector.shipstation.webhooks import (
    DEFAULT_SIGNED_LAYOUT,
    AllowList,
    MalformedDeliveryError,
    MissingSignatureError,
    SignatureVerifier,
    WebhookDelivery,
    keys_from_jwks,
    parse_delivery,
)

__all__ = [
    "DEFAULT_SIGNED_LAYOUT",
    "DEFAULT_V1_BASE_URL",
    "DEFAULT_V2_BASE_URL",
    "FROZEN_STATUSES",
    "OPEN_STATUSES",
    "Address",
    "AdvancedOptions",
    "AllowList",
    "CreateOrderResult",
    "Dimensions",
    "Fulfillment",
    "InventoryChange",
    "InventoryLevel",
    "InventoryLocation",
    "InventoryWarehouse",
    "ItemOption",
    "MalformedDeliveryError",
    "MarkShippedResult",
    "MissingSignatureError",
    "Money",
    "Order",
    "OrderItem",
    "RepeatedPageError",
    "ShipStationV1Client",
    "ShipStationV2Client",
    "Shipment",
    "ShipmentItem",
    "SignatureVerifier",
    "Store",
    "V1Webhook",
    "V2Webhook",
    "Warehouse",
    "WebhookBatch",
    "WebhookDelivery",
    "WebhookHeader",
    "Weight",
    "keys_from_jwks",
    "parse_delivery",
    "says_frozen",
]
