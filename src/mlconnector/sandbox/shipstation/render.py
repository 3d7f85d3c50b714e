"""How records look on the V1 wire: camelCase, naive US Pacific times.

Timestamps become ``2015-07-16T14:00:34.8230000`` (US Pacific, 7 fractional digits, no offset)
via :mod:`mlconnector.timezones`; ship dates are bare dates.
"""

from __future__ import annotations

from datetime import datetime

from mlconnector.timezones import format_pacific

from .models import (
    ADDRESS_FIELDS,
    ORDER_FIELDS,
    Fulfillment,
    JsonDict,
    Order,
    OrderItem,
    Product,
    Shipment,
    Store,
    V1Webhook,
    Warehouse,
)


def _dt(value: datetime | None) -> str | None:
    return format_pacific(value) if value is not None else None


def render_address(address: JsonDict) -> JsonDict:
    """An address with every V1 field present (missing ones null)."""
    out = {name: address.get(name) for name in ADDRESS_FIELDS}
    out["addressVerified"] = address.get("addressVerified")
    return out


def render_order(order: Order) -> JsonDict:
    """The V1 Order object."""
    out: JsonDict = {
        "orderId": order.order_id,
        "orderNumber": order.fields["orderNumber"],
        "orderKey": order.order_key,
        "orderDate": _dt(order.dates.get("orderDate")),
        "createDate": _dt(order.create_date),
        "modifyDate": _dt(order.modify_date),
        "paymentDate": _dt(order.dates.get("paymentDate")),
        "shipByDate": _dt(order.dates.get("shipByDate")),
        "orderStatus": order.fields["orderStatus"],
    }
    for name in ORDER_FIELDS:
        out.setdefault(name, order.fields.get(name))
    out["billTo"] = render_address(order.bill_to)
    out["shipTo"] = render_address(order.ship_to)
    out["items"] = [render_item(item) for item in order.items]
    out["shipDate"] = order.ship_date.isoformat() if order.ship_date else None
    out["holdUntilDate"] = _dt(order.dates.get("holdUntilDate"))
    advanced = dict(order.advanced)
    advanced["storeId"] = order.store_id
    advanced["mergedOrSplit"] = False
    advanced["mergedIds"] = []
    advanced["parentId"] = None
    out["advancedOptions"] = advanced
    return out


def render_item(item: OrderItem) -> JsonDict:
    """One V1 OrderItem."""
    out: JsonDict = {"orderItemId": item.order_item_id}
    out.update(item.fields)
    out["productId"] = item.product_id
    out["createDate"] = _dt(item.create_date)
    out["modifyDate"] = _dt(item.modify_date)
    return out


def render_shipment(shipment: Shipment, *, include_items: bool) -> JsonDict:
    """One V1 Shipment; ``shipmentItems`` is null unless asked for, as on the real service."""
    items: list[JsonDict] | None = None
    if include_items:
        items = [
            {
                "orderItemId": item.order_item_id,
                "lineItemKey": item.line_item_key,
                "sku": item.sku,
                "name": item.name,
                "imageUrl": None,
                "weight": None,
                "quantity": item.quantity,
                "unitPrice": item.unit_price,
                "taxAmount": None,
                "shippingAmount": None,
                "warehouseLocation": None,
                "options": [],
                "productId": item.product_id,
                "fulfillmentSku": None,
                "adjustment": False,
                "upc": None,
            }
            for item in shipment.items
        ]
    return {
        "shipmentId": shipment.shipment_id,
        "orderId": shipment.order_id,
        "orderKey": shipment.order_key,
        "userId": "00000000-0000-0000-0000-000000000001",
        "customerEmail": None,
        "orderNumber": shipment.order_number,
        "createDate": format_pacific(shipment.create_date),
        "shipDate": shipment.ship_date.isoformat(),
        "shipmentCost": shipment.shipment_cost,
        "insuranceCost": 0.0,
        "trackingNumber": shipment.tracking_number,
        "isReturnLabel": False,
        "batchNumber": str(shipment.batch_id),
        "carrierCode": shipment.carrier_code,
        "serviceCode": shipment.service_code,
        "packageCode": "package",
        "confirmation": "none",
        "warehouseId": shipment.warehouse_id,
        "voided": shipment.voided,
        "voidDate": _dt(shipment.void_date),
        "marketplaceNotified": False,
        "notifyErrorMessage": None,
        "shipTo": render_address(shipment.ship_to),
        "weight": {"value": 0.0, "units": "ounces", "WeightUnits": 1},
        "dimensions": None,
        "insuranceOptions": {"provider": None, "insureShipment": False, "insuredValue": 0.0},
        "advancedOptions": None,
        "shipmentItems": items,
        "labelData": None,
        "formData": None,
    }


def render_fulfillment(fulfillment: Fulfillment) -> JsonDict:
    """One V1 Fulfillment (an order shipped outside ShipStation label creation)."""
    return {
        "fulfillmentId": fulfillment.fulfillment_id,
        "orderId": fulfillment.order_id,
        "orderNumber": fulfillment.order_number,
        "userId": "00000000-0000-0000-0000-000000000001",
        "customerEmail": fulfillment.customer_email,
        "trackingNumber": fulfillment.tracking_number,
        "createDate": format_pacific(fulfillment.create_date),
        # V1 shows a fulfilment's shipDate as a midnight timestamp, not a bare date
        "shipDate": fulfillment.ship_date.isoformat() + "T00:00:00.0000000",
        "voidDate": _dt(fulfillment.void_date),
        "deliveryDate": None,
        "carrierCode": fulfillment.carrier_code,
        "sellerFillProviderId": None,
        "sellerFillProviderName": None,
        "fulfillmentProviderCode": None,
        "fulfillmentServiceCode": None,
        "fulfillmentFee": 0.0,
        "voidRequested": False,
        "voided": fulfillment.voided,
        "marketplaceNotified": False,
        "notifyErrorMessage": None,
        "shipTo": render_address(fulfillment.ship_to),
    }


def render_store(store: Store) -> JsonDict:
    """One V1 Store."""
    return {
        "storeId": store.store_id,
        "storeName": store.name,
        "marketplaceId": store.marketplace_id,
        "marketplaceName": store.marketplace_name,
        "accountName": None,
        "email": None,
        "integrationUrl": None,
        "active": store.active,
        "companyName": "",
        "phone": "",
        "publicEmail": "",
        "website": "",
        "refreshDate": format_pacific(store.create_date),
        "lastRefreshAttempt": format_pacific(store.create_date),
        "createDate": format_pacific(store.create_date),
        "modifyDate": format_pacific(store.create_date),
        "autoRefresh": False,
    }


def render_warehouse(warehouse: Warehouse) -> JsonDict:
    """One V1 Warehouse (a ship-from location, not inventory)."""
    origin = render_address(warehouse.origin)
    return {
        "warehouseId": warehouse.warehouse_id,
        "warehouseName": warehouse.name,
        "originAddress": origin,
        "returnAddress": dict(origin),
        "createDate": format_pacific(warehouse.create_date),
        "isDefault": warehouse.is_default,
    }


def render_product(product: Product) -> JsonDict:
    """One V1 Product (created when an order with a new SKU is imported)."""
    out: JsonDict = {
        "productId": product.product_id,
        "sku": product.sku,
        "name": product.name,
        "price": product.price,
        "defaultCost": None,
        "length": None,
        "width": None,
        "height": None,
        "weightOz": None,
        "internalNotes": None,
        "fulfillmentSku": None,
        "createDate": format_pacific(product.create_date),
        "modifyDate": format_pacific(product.modify_date),
        "active": product.active,
        "productCategory": None,
        "productType": None,
        "warehouseLocation": None,
    }
    for name in (
        "defaultCarrierCode",
        "defaultServiceCode",
        "defaultPackageCode",
        "defaultIntlCarrierCode",
        "defaultIntlServiceCode",
        "defaultIntlPackageCode",
        "defaultConfirmation",
        "defaultIntlConfirmation",
        "customsDescription",
        "customsValue",
        "customsTariffNo",
        "customsCountryCode",
        "noCustoms",
        "tags",
    ):
        out[name] = None
    return out


def render_v1_webhook(hook: V1Webhook) -> JsonDict:
    """One entry of ``GET /webhooks`` (PascalCase, as the real service answers)."""
    return {
        "IsLabelAPIHook": False,
        "WebHookID": hook.webhook_id,
        "SellerID": 100000,
        "StoreID": hook.store_id,
        "HookType": hook.hook_type,
        "MessageFormat": "Json",
        "Url": hook.url,
        "Name": hook.name,
        "BulkCopyBatchID": None,
        "BulkCopyRecordID": None,
        "Active": hook.active,
        "WebhookLogs": [],
        "Seller": None,
        "Store": None,
    }
