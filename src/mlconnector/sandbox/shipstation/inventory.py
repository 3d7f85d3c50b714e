"""V2 state: inventory warehouses, locations, stock levels and environment webhooks.

Stock is kept per (SKU, inventory location). Transactions follow the V2 docs:

* ``increment`` adds ``quantity`` at the location;
* ``decrement`` removes ``quantity`` — all or nothing: refused when the location holds less;
* ``adjust`` sets on-hand to ``quantity`` (absolute);
* ``modify`` changes attributes (cost, condition) or, with ``new_inventory_location_id``, moves
  ``quantity`` units to another location (all or nothing, like decrement).

``condition`` and ``lot`` are recorded but not tracked as separate stock buckets (a deliberate
simplification: the connector only uses sellable stock).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from mlconnector.clock import Clock

from .models import InventoryLevel, InventoryLocation, InventoryWarehouse, JsonDict, V2Webhook

TRANSACTION_TYPES = ("increment", "decrement", "adjust", "modify")
CONDITIONS = ("sellable", "damaged", "expired", "qa_hold")
#: the events of the spec's ``webhook_event`` enum, plus the ``*_v2`` names of the current docs
V2_EVENTS = (
    "batch",
    "carrier_connected",
    "order_source_refresh_complete",
    "rate",
    "report_complete",
    "sales_orders_imported",
    "track",
    "batch_processed_v2",
    "track_event_v2",
    "shipment_created_v2",
    "label_created_v2",
    "fulfillment_shipped_v2",
    "fulfillment_rejected_v2",
)


@dataclass
class V2Problem(Exception):
    """A V2 error: HTTP status plus the ``error_type`` / ``error_code`` of the spec's enums."""

    status: int
    error_type: str
    error_code: str
    message: str


def _invalid(message: str, code: str = "invalid_field_value") -> V2Problem:
    return V2Problem(400, "validation", code, message)


class InventoryState:
    """V2 records of the simulated account."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every warehouse, location, level and V2 webhook."""
        self.warehouses: dict[str, InventoryWarehouse] = {}
        self.locations: dict[str, InventoryLocation] = {}
        self.levels: dict[tuple[str, str], InventoryLevel] = {}
        self.webhooks: dict[str, V2Webhook] = {}
        self._ids = itertools.count(1001)

    def _next_id(self) -> str:
        return f"se-{next(self._ids)}"

    # ------------------------------------------------------------------ warehouses / locations

    def add_warehouse(self, name: object) -> InventoryWarehouse:
        """Create an inventory warehouse."""
        if not isinstance(name, str) or not name.strip():
            raise _invalid("name is required", "field_value_required")
        now = self.clock.now()
        warehouse = InventoryWarehouse(self._next_id(), name, now, now)
        self.warehouses[warehouse.inventory_warehouse_id] = warehouse
        return warehouse

    def add_location(self, name: object, warehouse_id: object) -> InventoryLocation:
        """Create an inventory location inside a warehouse."""
        if not isinstance(name, str) or not name.strip():
            raise _invalid("name is required", "field_value_required")
        if not isinstance(warehouse_id, str) or warehouse_id not in self.warehouses:
            raise _invalid(
                f"inventory_warehouse_id {warehouse_id!r} does not exist", "invalid_identifier"
            )
        now = self.clock.now()
        location = InventoryLocation(self._next_id(), name, warehouse_id, now, now)
        self.locations[location.inventory_location_id] = location
        return location

    # ------------------------------------------------------------------ stock

    def apply(self, body: Any) -> None:
        """Apply one ``POST /v2/inventory`` transaction, or raise :class:`V2Problem`."""
        if not isinstance(body, dict):
            raise _invalid("the request body must be an object", "request_body_required")
        for name in ("transaction_type", "sku", "quantity", "inventory_location_id"):
            if body.get(name) in (None, ""):
                raise _invalid(f"{name} is required", "field_value_required")
        kind, sku, quantity = body["transaction_type"], body["sku"], body["quantity"]
        if kind not in TRANSACTION_TYPES:
            raise _invalid(f"transaction_type must be one of {', '.join(TRANSACTION_TYPES)}")
        if not isinstance(sku, str):
            raise _invalid("sku must be a string")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise _invalid("quantity must be a whole number of 0 or more")
        for name in ("cost", "new_cost"):
            cost = body.get(name)
            if cost is not None and not (
                isinstance(cost, dict)
                and isinstance(cost.get("amount"), int | float)
                and not isinstance(cost.get("amount"), bool)
                and isinstance(cost.get("currency", ""), str)
            ):
                raise _invalid(f"{name} must be {{amount: number, currency: string}}")
        for name in ("condition", "new_condition"):
            if body.get(name) is not None and body[name] not in CONDITIONS:
                raise _invalid(f"{name} must be one of {', '.join(CONDITIONS)}")
        location_id = self._location(body["inventory_location_id"])
        level = self.levels.get((sku, location_id))
        if kind == "increment":
            self._level(sku, location_id, body).on_hand += quantity
        elif kind == "adjust":
            self._level(sku, location_id, body).on_hand = quantity
        elif kind == "decrement":
            self._take(level, sku, location_id, quantity).on_hand -= quantity
        else:
            self._modify(level, sku, location_id, quantity, body)

    def _location(self, location_id: object) -> str:
        if not isinstance(location_id, str) or location_id not in self.locations:
            raise _invalid(
                f"inventory_location_id {location_id!r} does not exist", "invalid_identifier"
            )
        return location_id

    def _level(self, sku: str, location_id: str, body: JsonDict) -> InventoryLevel:
        level = self.levels.setdefault((sku, location_id), InventoryLevel(sku, location_id))
        cost = body.get("cost")
        if isinstance(cost, dict) and cost.get("amount") is not None:
            level.cost_amount = float(cost["amount"])
            level.cost_currency = str(cost.get("currency") or level.cost_currency)
        if body.get("condition"):
            level.condition = str(body["condition"])
        return level

    @staticmethod
    def _take(level: InventoryLevel | None, sku: str, location_id: str, qty: int) -> InventoryLevel:
        held = level.on_hand if level else 0
        if level is None or held < qty:
            raise V2Problem(
                400,
                "business_rules",
                "invalid_field_value",
                f"cannot decrement {qty} of {sku!r} at {location_id}: only {held} on hand; "
                "nothing was changed",
            )
        return level

    def _modify(
        self, level: InventoryLevel | None, sku: str, location_id: str, qty: int, body: JsonDict
    ) -> None:
        target = body.get("new_inventory_location_id")
        if target is not None:
            target_id = self._location(target)
            self._take(level, sku, location_id, qty).on_hand -= qty
            self._level(sku, target_id, {}).on_hand += qty
            return
        current = self._take(level, sku, location_id, 0)
        new_cost = body.get("new_cost")
        if isinstance(new_cost, dict) and new_cost.get("amount") is not None:
            current.cost_amount = float(new_cost["amount"])
        if body.get("new_condition"):
            current.condition = str(body["new_condition"])

    def render_levels(
        self,
        sku: str | None,
        warehouse_id: str | None,
        location_id: str | None,
        group_by: str | None,
    ) -> list[JsonDict]:
        """Stock rows matching the filters; ``group_by=warehouse`` sums a SKU per warehouse."""
        rows: dict[tuple[str, str, str | None], JsonDict] = {}
        for (level_sku, loc_id), level in sorted(self.levels.items()):
            wh_id = self.locations[loc_id].inventory_warehouse_id
            if (
                (sku and level_sku != sku)
                or (warehouse_id and wh_id != warehouse_id)
                or (location_id and loc_id != location_id)
            ):
                continue
            key = (level_sku, wh_id, None if group_by == "warehouse" else loc_id)
            row = rows.setdefault(
                key,
                {
                    "sku": level_sku,
                    "on_hand": 0,
                    "allocated": 0,
                    "available": 0,
                    "average_cost": {"amount": level.cost_amount, "currency": level.cost_currency},
                    "inventory_warehouse_id": wh_id,
                    "inventory_location_id": key[2],
                },
            )
            row["on_hand"] += level.on_hand
            row["allocated"] += level.allocated
            row["available"] += level.on_hand - level.allocated
        out = list(rows.values())
        if group_by == "warehouse":
            for row in out:
                row.pop("inventory_location_id")
        return out

    # ------------------------------------------------------------------ environment webhooks

    def add_webhook(self, body: Any) -> V2Webhook:
        """``POST /v2/environment/webhooks``: one URL per event (409 otherwise)."""
        if not isinstance(body, dict):
            raise _invalid("the request body must be an object", "request_body_required")
        url, event = body.get("url"), body.get("event")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("url is required and must be an http(s) URL", "field_value_required")
        if event not in V2_EVENTS:
            raise _invalid(f"event must be one of {', '.join(V2_EVENTS)}")
        if any(hook.event == event for hook in self.webhooks.values()):
            raise V2Problem(
                409,
                "validation",
                "webhook_event_type_conflict",
                f"a webhook for event {event!r} already exists",
            )
        headers = _headers(body.get("headers"))
        hook = V2Webhook(self._next_id(), url, str(event), headers)
        self.webhooks[hook.webhook_id] = hook
        return hook

    def update_webhook(self, webhook_id: str, body: Any) -> None:
        """``PUT /v2/environment/webhooks/{id}`` (url and/or headers)."""
        hook = self.webhook(webhook_id)
        if not isinstance(body, dict):
            raise _invalid("the request body must be an object", "request_body_required")
        if "url" in body:
            if not isinstance(body["url"], str) or not body["url"].startswith(
                ("http://", "https://")
            ):
                raise _invalid("url must be an http(s) URL")
            hook.url = body["url"]
        if "headers" in body:
            hook.headers = _headers(body["headers"])

    def webhook(self, webhook_id: str) -> V2Webhook:
        """One V2 webhook (404 when unknown)."""
        hook = self.webhooks.get(webhook_id)
        if hook is None:
            raise V2Problem(
                404, "validation", "invalid_identifier", f"webhook {webhook_id!r} not found"
            )
        return hook


def _headers(raw: Any) -> list[JsonDict]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(h, dict) and isinstance(h.get("key"), str) and isinstance(h.get("value"), str)
        for h in raw
    ):
        raise _invalid("headers must be a list of {key, value} strings")
    return [{"key": h["key"], "value": h["value"]} for h in raw]


def render_v2_webhook(hook: V2Webhook) -> JsonDict:
    """The V2 ``webhook`` object."""
    return {
        "webhook_id": hook.webhook_id,
        "url": hook.url,
        "event": hook.event,
        "headers": hook.headers,
    }
