"""In-memory state of one simulated ShipStation account and the rules that change it.

Ids come from counters (deterministic runs), time from the injected clock. Every change that the
real service announces by webhook calls ``notify(event, resource_path, store_ids)``; the webhook
module turns that into a queued delivery whose ``resource_url`` points back at the simulator.

Rules enforced here (see reference/shipstation-api.md §1.5-1.7):

* createorder(s) upsert by ``orderKey``; with no key a new order with a generated key is created.
* An update replaces the whole order: every client field the payload omits is blanked.
* ``shipped`` and ``cancelled`` orders are frozen: an update is refused with a clear message.
* ``advancedOptions.storeId`` is honoured only when the order is created.
* ``modifyDate`` moves on every change, including edits made "in the UI" (operator methods).
* ORDER_NOTIFY fires for orders created in any status but ``awaiting_payment``, and when an
  ``awaiting_payment`` order moves to any status but ``cancelled``; one import batch per call.
* ``DELETE /orders/{id}`` is a soft delete: the order leaves lists and ``GET /orders/{id}`` (404)
  and its ``orderKey`` is free again (a later createorder with it creates a new order).
* Labels (operator) may cover part of an order; the order becomes ``shipped`` when every line is
  covered by non-voided labels, and returns to ``awaiting_shipment`` when a void uncovers a line.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mlconnector.clock import Clock

from .models import (
    ADVANCED_FIELDS,
    FROZEN_STATUSES,
    ORDER_DATE_FIELDS,
    ORDER_FIELDS,
    ORDER_STATUSES,
    Fulfillment,
    JsonDict,
    Order,
    OrderItem,
    Product,
    Shipment,
    ShipmentItem,
    Store,
    V1Webhook,
    Warehouse,
    pacific_date,
)
from .validation import (
    OrderRejected,
    address,
    advanced_options,
    parse_v1_datetime,
    validated_fields,
    validated_item,
)

__all__ = [
    "OperatorError",
    "OrderRejected",
    "ShipStationState",
    "UpsertResult",
    "parse_v1_datetime",
]

Notify = Callable[[str, str, set[int]], None]

MANUAL_STORE_ID = 100
DEFAULT_WAREHOUSE_ID = 200


class OperatorError(ValueError):
    """An operator action that the state does not allow (e.g. shipping a cancelled order)."""


@dataclass
class UpsertResult:
    """What createorders reports for one order."""

    order: Order | None
    order_number: str | None
    order_key: str | None
    error: str | None = None


def _uuid_from(prefix: int, n: int) -> str:
    # deterministic, GUID-shaped, different per prefix so keys and batches never collide
    return str(uuid.UUID(int=(prefix << 96) + n))


class ShipStationState:
    """Every record of the simulated account, plus the operations that change them."""

    def __init__(self, clock: Clock, notify: Notify | None = None) -> None:
        self.clock = clock
        self.notify: Notify = notify or (lambda _event, _path, _stores: None)
        self.reset()

    def reset(self) -> None:
        """Forget everything and start again with the seed stores and warehouses."""
        self.orders: dict[int, Order] = {}
        self.keys: dict[str, int] = {}
        self.shipments: dict[int, Shipment] = {}
        #: (resource, id) -> field -> value sent instead of the real one, e.g.
        #: ("shipments", 12) -> {"shipmentItems": "?"}: the operator's way to make the account
        #: answer a malformed record, as a real one may
        self.raw_fields: dict[tuple[str, int], dict[str, object]] = {}
        self.fulfillments: dict[int, Fulfillment] = {}
        self.products: dict[str, Product] = {}
        self.webhooks: dict[int, V1Webhook] = {}
        self._order_ids = itertools.count(100001)
        self._item_ids = itertools.count(500001)
        self._shipment_ids = itertools.count(700001)
        self._fulfillment_ids = itertools.count(800001)
        self._batch_ids = itertools.count(900001)
        self._product_ids = itertools.count(300001)
        self._webhook_ids = itertools.count(1)
        self._key_seq = itertools.count(1)
        self._import_seq = itertools.count(1)
        now = self.clock.now()
        self.stores = {
            MANUAL_STORE_ID: Store(
                MANUAL_STORE_ID, "ShipStation Manual Store", 0, "ShipStation", now
            ),
            MANUAL_STORE_ID + 1: Store(MANUAL_STORE_ID + 1, "Plex Orders", 0, "ShipStation", now),
        }
        origin = {
            "name": "Main warehouse",
            "street1": "1 Dock Rd",
            "city": "Austin",
            "state": "TX",
            "postalCode": "78701",
            "country": "US",
            "residential": False,
        }
        self.warehouses = {
            DEFAULT_WAREHOUSE_ID: Warehouse(
                DEFAULT_WAREHOUSE_ID, "Main warehouse", now, True, origin
            ),
            DEFAULT_WAREHOUSE_ID + 1: Warehouse(
                DEFAULT_WAREHOUSE_ID + 1, "Overflow", now, False, {**origin, "name": "Overflow"}
            ),
        }

    # ------------------------------------------------------------------ createorder(s)

    def upsert_orders(self, payloads: list[Any]) -> tuple[list[UpsertResult], str | None]:
        """Apply one createorder(s) call; returns per-order results and the import batch."""
        results: list[UpsertResult] = []
        announced: list[Order] = []
        for payload in payloads:
            number = payload.get("orderNumber") if isinstance(payload, dict) else None
            key = payload.get("orderKey") if isinstance(payload, dict) else None
            try:
                order, announce = self._upsert_one(payload)
            except OrderRejected as exc:
                results.append(
                    UpsertResult(None, _str_or_none(number), _str_or_none(key), str(exc))
                )
                continue
            if announce:
                announced.append(order)
            results.append(UpsertResult(order, order.number, order.order_key))
        return results, self._announce(announced) if announced else None

    def _announce(self, orders: list[Order]) -> str:
        """Put ``orders`` in a new import batch and fire ORDER_NOTIFY / ITEM_ORDER_NOTIFY."""
        batch = _uuid_from(0x1B, next(self._import_seq))
        for order in orders:
            order.import_batch = batch
        stores = {order.store_id for order in orders}
        for event in ("ORDER_NOTIFY", "ITEM_ORDER_NOTIFY"):
            self.notify(event, f"/orders?importBatch={batch}", stores)
        return batch

    def _upsert_one(self, payload: Any) -> tuple[Order, bool]:
        if not isinstance(payload, dict):
            raise OrderRejected("each order must be a JSON object")
        fields, dates = validated_fields(payload)
        existing = self._find_existing(payload)
        items_payload = payload.get("items") or []
        advanced_in = payload.get("advancedOptions") or {}
        if not isinstance(advanced_in, dict):
            raise OrderRejected("advancedOptions must be an object")
        self._check_warehouse(advanced_in.get("warehouseId"))
        now = self.clock.now()
        if existing is not None:
            if existing.status in FROZEN_STATUSES:
                raise OrderRejected(
                    f"Order {existing.number} (orderKey {existing.order_key}) is "
                    f"{existing.status} and can no longer be updated"
                )
            was_awaiting_payment = existing.status == "awaiting_payment"
            existing.fields = fields
            existing.dates = dates
            existing.advanced = advanced_options(advanced_in)  # storeId is ignored on update
            existing.bill_to = address(payload.get("billTo"))
            existing.ship_to = address(payload.get("shipTo"))
            existing.items = self._items(items_payload, existing.items, now)
            existing.modify_date = now
            announce = was_awaiting_payment and existing.status not in (
                "awaiting_payment",
                "cancelled",
            )
            return existing, announce
        store_id = self._store_for_creation(advanced_in.get("storeId"))
        key = payload.get("orderKey") or _uuid_from(0x0C, next(self._key_seq))
        order = Order(
            order_id=next(self._order_ids),
            order_key=str(key),
            store_id=store_id,
            fields=fields,
            dates=dates,
            advanced=advanced_options(advanced_in),
            bill_to=address(payload.get("billTo")),
            ship_to=address(payload.get("shipTo")),
            items=self._items(items_payload, [], now),
            create_date=now,
            modify_date=now,
        )
        self.orders[order.order_id] = order
        self.keys[order.order_key] = order.order_id
        return order, order.status != "awaiting_payment"

    def _find_existing(self, payload: JsonDict) -> Order | None:
        key = payload.get("orderKey")
        if key is not None and not isinstance(key, str):
            raise OrderRejected(f"orderKey must be a string, got {key!r}")
        by_key = self.active_order(self.keys.get(str(key))) if key else None
        order_id = payload.get("orderId")
        if order_id is None:
            return by_key
        by_id = self.active_order(order_id if isinstance(order_id, int) else None)
        if by_id is None:
            raise OrderRejected(
                f"orderId {order_id!r} does not exist; do not send orderId on create"
            )
        if key and by_key is not by_id:
            raise OrderRejected(f"orderId {order_id} does not belong to orderKey {key!r}")
        return by_id

    def _store_for_creation(self, store_id: object) -> int:
        if store_id is None:
            return MANUAL_STORE_ID
        if not isinstance(store_id, int) or store_id not in self.stores:
            raise OrderRejected(
                f"advancedOptions.storeId {store_id!r} is not a store of this account"
            )
        return store_id

    def _check_warehouse(self, warehouse_id: object) -> None:
        if warehouse_id is None:
            return
        if not isinstance(warehouse_id, int) or warehouse_id not in self.warehouses:
            raise OrderRejected(f"advancedOptions.warehouseId {warehouse_id!r} does not exist")

    def _items(self, payloads: Any, previous: list[OrderItem], now: datetime) -> list[OrderItem]:
        if not isinstance(payloads, list):
            raise OrderRejected("items must be a list")
        # keep an item's id when its lineItemKey survives the replacement, so shipments match
        by_key = {
            it.fields.get("lineItemKey"): it for it in previous if it.fields.get("lineItemKey")
        }
        items: list[OrderItem] = []
        for index, raw in enumerate(payloads):
            fields = validated_item(raw, index)
            old = by_key.get(fields["lineItemKey"]) if fields["lineItemKey"] else None
            product = self._product_for(fields["sku"], fields["name"], now)
            if old is not None:
                old.fields, old.modify_date, old.product_id = fields, now, product.product_id
                items.append(old)
            else:
                items.append(OrderItem(next(self._item_ids), fields, product.product_id, now, now))
        return items

    def _product_for(self, sku: str, name: str | None, now: datetime) -> Product:
        product = self.products.get(sku)
        if product is None:  # V1 creates products when orders with new SKUs are imported
            product = Product(next(self._product_ids), sku, name, now, now)
            self.products[sku] = product
        return product

    # ------------------------------------------------------------------ lookups

    def active_order(self, order_id: int | None) -> Order | None:
        """The order with that id, unless unknown or (soft) deleted."""
        order = self.orders.get(order_id) if order_id is not None else None
        return order if order is not None and order.active else None

    def require_order(self, order_id: int) -> Order:
        """Like :meth:`active_order`, raising :class:`OperatorError` when absent."""
        order = self.active_order(order_id)
        if order is None:
            raise OperatorError(f"order {order_id} does not exist")
        return order

    def shipped_quantity(self, item: OrderItem) -> int:
        """How much of an order line has non-voided labels."""
        return sum(
            s_item.quantity
            for shipment in self.shipments.values()
            if not shipment.voided
            for s_item in shipment.items
            if s_item.order_item_id == item.order_item_id
        )

    # ------------------------------------------------------------------ order changes

    def delete_order(self, order_id: int) -> Order | None:
        """Soft delete (V1 ``DELETE /orders/{id}``): the order disappears from lists."""
        order = self.active_order(order_id)
        if order is not None:
            order.active = False
            order.modify_date = self.clock.now()
            self.keys.pop(order.order_key, None)
        return order

    def edit_order(self, order_id: int, changes: Mapping[str, Any]) -> Order:
        """An edit made in the UI (all or nothing): bumps modifyDate and fires no webhook, except
        ORDER_NOTIFY when an ``awaiting_payment`` order becomes payable, as an import would."""
        order = self.require_order(order_id)
        fields, dates, advanced = dict(order.fields), dict(order.dates), dict(order.advanced)
        addresses = {"shipTo": dict(order.ship_to), "billTo": dict(order.bill_to)}
        for name, value in changes.items():
            if name in ORDER_DATE_FIELDS:
                try:
                    dates[name] = parse_v1_datetime(value, name)
                except OrderRejected as exc:
                    raise OperatorError(str(exc)) from exc
            elif name in addresses:
                if not isinstance(value, dict):
                    raise OperatorError(f"{name} must be an object")
                addresses[name].update(value)
            elif name == "orderStatus" and value not in ORDER_STATUSES:
                raise OperatorError(f"orderStatus {value!r} is not a V1 order status")
            elif name == "orderNumber" and not (isinstance(value, str) and 0 < len(value) <= 50):
                raise OperatorError("orderNumber must be 1 to 50 characters")
            elif name in ORDER_FIELDS:
                fields[name] = value
            elif name in ADVANCED_FIELDS:
                advanced[name] = value
            else:
                raise OperatorError(f"field {name!r} cannot be edited")
        was_unpaid = order.status == "awaiting_payment"
        order.fields, order.dates, order.advanced = fields, dates, advanced
        order.ship_to, order.bill_to = addresses["shipTo"], addresses["billTo"]
        order.modify_date = self.clock.now()
        if was_unpaid and order.status not in ("awaiting_payment", "cancelled"):
            self._announce([order])
        return order

    def cancel_order(self, order_id: int) -> Order:
        """Cancel an order from the UI (frozen afterwards)."""
        order = self.require_order(order_id)
        if order.status == "shipped":
            raise OperatorError(f"order {order.number} is shipped; void its labels first")
        order.fields["orderStatus"] = "cancelled"
        order.modify_date = self.clock.now()
        return order

    def reject_fulfillment(self, order_id: int) -> Order:
        """A fill provider rejects the order: FULFILLMENT_REJECTED."""
        order = self.require_order(order_id)
        order.fields["orderStatus"] = "rejected_fulfillment"
        order.modify_date = self.clock.now()
        order.import_batch = _uuid_from(0x1B, next(self._import_seq))
        self.notify(
            "FULFILLMENT_REJECTED", f"/orders?importBatch={order.import_batch}", {order.store_id}
        )
        return order

    # ------------------------------------------------------------------ shipping

    def create_labels(self, requests: Iterable[LabelRequest]) -> list[Shipment]:
        """Create one label per request, all in one batch (one SHIP_NOTIFY)."""
        requests = list(requests)
        order_ids = [req.order_id for req in requests]
        if len(set(order_ids)) != len(order_ids):
            # planned together, two labels for one order could both take the same open quantity
            raise OperatorError("one label per order per batch; make split labels one at a time")
        # plan every label before creating any, so a refused one leaves the batch unmade
        planned = [(req, self._plan_label(req)) for req in requests]
        if not planned:
            raise OperatorError("no labels requested")
        batch_id = next(self._batch_ids)
        now = self.clock.now()
        shipments = []
        for req, (order, items) in planned:
            shipment_id = next(self._shipment_ids)
            shipment = Shipment(
                shipment_id=shipment_id,
                order_id=order.order_id,
                order_key=order.order_key,
                order_number=order.number,
                batch_id=batch_id,
                create_date=now,
                ship_date=req.ship_date or pacific_date(now),
                tracking_number=req.tracking_number or f"9400{shipment_id:018d}",
                carrier_code=req.carrier_code or order.fields.get("carrierCode") or "stamps_com",
                service_code=req.service_code or order.fields.get("serviceCode"),
                warehouse_id=order.advanced.get("warehouseId") or DEFAULT_WAREHOUSE_ID,
                ship_to=dict(order.ship_to),
                items=items,
            )
            self.shipments[shipment_id] = shipment
            self._refresh_shipped_status(order, shipment.ship_date)
            shipments.append(shipment)
        stores = {self.orders[s.order_id].store_id for s in shipments}
        for event in ("SHIP_NOTIFY", "ITEM_SHIP_NOTIFY"):
            self.notify(event, f"/shipments?batchId={batch_id}&includeShipmentItems=False", stores)
        return shipments

    def _plan_label(self, req: LabelRequest) -> tuple[Order, list[ShipmentItem]]:
        order = self.require_order(req.order_id)
        if order.status in FROZEN_STATUSES:
            raise OperatorError(f"order {order.number} is {order.status}; no label can be made")
        items: list[ShipmentItem] = []
        wanted = dict(req.quantities) if req.quantities is not None else None
        for item in order.items:
            remaining = int(item.fields["quantity"]) - self.shipped_quantity(item)
            qty = remaining if wanted is None else _take(wanted, item)
            if qty > remaining:
                line = item.fields.get("lineItemKey") or item.fields["sku"]
                raise OperatorError(
                    f"order {order.number} line {line}: {qty} requested but only {remaining} "
                    "left to ship"
                )
            if qty > 0:
                items.append(
                    ShipmentItem(
                        item.order_item_id,
                        item.fields.get("lineItemKey"),
                        item.fields["sku"],
                        item.fields.get("name"),
                        qty,
                        float(item.fields.get("unitPrice") or 0.0),
                        item.product_id,
                    )
                )
        if wanted:
            raise OperatorError(f"order {order.number} has no line(s) {sorted(wanted)}")
        if not items:
            raise OperatorError(f"order {order.number} has nothing left to ship")
        return order, items

    def _refresh_shipped_status(self, order: Order, ship_date: date | None) -> None:
        complete = all(
            self.shipped_quantity(item) >= int(item.fields["quantity"]) for item in order.items
        )
        if complete and order.status != "shipped":
            order.fields["orderStatus"] = "shipped"
            order.ship_date = ship_date
        elif not complete and order.status == "shipped" and not self._has_fulfillment(order):
            order.fields["orderStatus"] = "awaiting_shipment"
            order.ship_date = None
        order.modify_date = self.clock.now()

    def _has_fulfillment(self, order: Order) -> bool:
        return any(
            f.order_id == order.order_id and not f.voided for f in self.fulfillments.values()
        )

    def void_label(self, shipment_id: int) -> Shipment:
        """Void a label: it stays listed with ``voided: true``; the order reopens if needed."""
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            raise OperatorError(f"shipment {shipment_id} does not exist")
        if shipment.voided:
            raise OperatorError(f"shipment {shipment_id} is already voided")
        shipment.voided = True
        shipment.void_date = self.clock.now()
        self._refresh_shipped_status(self.orders[shipment.order_id], None)
        return shipment

    def mark_shipped(
        self,
        order_id: int,
        *,
        carrier_code: str,
        ship_date: date | None = None,
        tracking_number: str | None = None,
    ) -> Fulfillment:
        """Ship outside label creation (V1 markasshipped): a fulfilment, FULFILLMENT_SHIPPED."""
        order = self.require_order(order_id)
        if order.status in FROZEN_STATUSES:
            raise OperatorError(f"order {order.number} is {order.status} and cannot be shipped")
        now = self.clock.now()
        batch_id = next(self._batch_ids)
        fulfillment = Fulfillment(
            fulfillment_id=next(self._fulfillment_ids),
            order_id=order.order_id,
            order_number=order.number,
            batch_id=batch_id,
            create_date=now,
            ship_date=ship_date or pacific_date(now),
            tracking_number=tracking_number,
            carrier_code=carrier_code,
            customer_email=order.fields.get("customerEmail"),
            ship_to=dict(order.ship_to),
        )
        self.fulfillments[fulfillment.fulfillment_id] = fulfillment
        order.fields["orderStatus"] = "shipped"
        order.ship_date = fulfillment.ship_date
        order.modify_date = now
        self.notify("FULFILLMENT_SHIPPED", f"/fulfillments?batchId={batch_id}", {order.store_id})
        return fulfillment

    # ------------------------------------------------------------------ V1 webhooks

    def subscribe(self, hook_type: str, url: str, name: str | None, store_id: int | None) -> int:
        """Register a V1 webhook; returns its id."""
        hook = V1Webhook(next(self._webhook_ids), hook_type, url, name, store_id)
        self.webhooks[hook.webhook_id] = hook
        return hook.webhook_id


@dataclass
class LabelRequest:
    """One label the operator makes: ``quantities`` maps lineItemKey/sku/orderItemId → quantity
    (None ships everything still open)."""

    order_id: int
    quantities: Mapping[str, int] | None = None
    carrier_code: str | None = None
    service_code: str | None = None
    tracking_number: str | None = None
    ship_date: date | None = None


def _take(wanted: dict[str, int], item: OrderItem) -> int:
    for ref in (item.fields.get("lineItemKey"), str(item.order_item_id), item.fields["sku"]):
        if ref is not None and ref in wanted:
            return int(wanted.pop(ref))
    return 0


def _str_or_none(value: object) -> str | None:
    return str(value) if value is not None else None
