"""The ShipStation simulator: app factory and the Python operator surface.

>>> sandbox = create_shipstation_sandbox(FakeClock())
>>> client = httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app), base_url="http://ss")

or serve it on loopback with :func:`mlconnector.sandbox.server.serve` and set
``sandbox.public_url`` to the served base URL so webhook ``resource_url``s point back at it.

Layout of the app: V1 at the root (``/orders``, ``/shipments``, ...), V2 under ``/v2``, the JWKS at
``/jwks``, the operator surface under ``/_operator`` (never disturbed by faults). The whole app is
wrapped in :class:`~mlconnector.sandbox.faults.FaultInjector` (``sandbox.faults``).

**Webhooks.** V1 subscribers get thin unsigned POSTs; V2 environment-webhook subscribers get signed
POSTs. V2 event mapping (the simulator serves no V2 labels/shipments, so a V2
``resource_url`` points at the matching V1 resource): SHIP_NOTIFY → ``label_created_v2``,
FULFILLMENT_SHIPPED → ``fulfillment_shipped_v2``,
FULFILLMENT_REJECTED → ``fulfillment_rejected_v2``.
Any V2 event can also be sent with :meth:`ShipStationSandbox.emit_v2_event`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.types import Scope

from mlconnector.clock import Clock
from mlconnector.sandbox.faults import FaultConfig, FaultInjector

from .inventory import InventoryState
from .limits import FixedWindowLimiter, SlidingWindowLimiter
from .models import JsonDict, Shipment
from .operator import operator_routes
from .render import render_fulfillment, render_order, render_shipment
from .state import LabelRequest, ShipStationState
from .v1 import V1Api
from .v2 import V2Api
from .webhooks import DeliveryResult, WebhookDispatcher, WebhookSigner

DEFAULT_PUBLIC_URL = "http://shipstation.sandbox.invalid"
V2_EVENT_FOR = {
    "SHIP_NOTIFY": ("label_created_v2", "LABEL_CREATED_V2"),
    "FULFILLMENT_SHIPPED": ("fulfillment_shipped_v2", "FULFILLMENT_SHIPPED_V2"),
    "FULFILLMENT_REJECTED": ("fulfillment_rejected_v2", "FULFILLMENT_REJECTED_V2"),
}


@dataclass(frozen=True)
class ShipStationAccount:
    """Credentials accepted by the simulator (all acting on the same simulated account)."""

    api_key: str = "sandbox-v1-key"
    api_secret: str = "sandbox-v1-secret"  # noqa: S105 - a fake credential of the simulator
    v2_api_key: str | None = "sandbox-v2-key"


class ShipStationSandbox:
    """One simulated ShipStation account: state, ASGI app, webhooks and operator actions."""

    def __init__(
        self,
        clock: Clock,
        *,
        accounts: Sequence[ShipStationAccount] = (ShipStationAccount(),),
        public_url: str | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not accounts:
            raise ValueError("the ShipStation sandbox needs at least one account")
        self.clock = clock
        self.accounts = tuple(accounts)
        self.public_url = (public_url or DEFAULT_PUBLIC_URL).rstrip("/")
        self.state = ShipStationState(clock, notify=self._on_event)
        self.inventory = InventoryState(clock)
        self.v1_limiter = FixedWindowLimiter(clock)
        self.v2_limiter = SlidingWindowLimiter(clock)
        self.signer = WebhookSigner()
        self.faults = FaultInjector(
            Starlette(routes=[]), clock, rate_limit_response=self._storm_response
        )
        self.webhooks = WebhookDispatcher(
            clock, self.signer, lambda: self.faults.config, webhook_transport
        )
        self.v1 = V1Api(self)
        self.v2 = V2Api(self)
        self.faults.app = Starlette(
            routes=[*operator_routes(self), *self.v2.routes(), *self.v1.routes()]
        )
        self.app = self.faults

    # ------------------------------------------------------------------ webhooks

    def _on_event(self, event: str, resource_path: str, store_ids: set[int]) -> None:
        resource_url = self.public_url + resource_path
        for hook in list(self.state.webhooks.values()):
            if (
                hook.active
                and hook.hook_type == event
                and (hook.store_id is None or hook.store_id in store_ids)
            ):
                self.webhooks.enqueue_v1(hook.url, event, resource_url)
        if event in V2_EVENT_FOR:
            name, resource_type = V2_EVENT_FOR[event]
            self.emit_v2_event(name, resource_url, resource_type=resource_type)

    def emit_v2_event(
        self,
        event: str,
        resource_url: str,
        *,
        resource_type: str | None = None,
        data: dict[str, object] | None = None,
    ) -> int:
        """Queue a signed delivery to every V2 webhook subscribed to ``event``; returns how many."""
        count = 0
        for hook in list(self.inventory.webhooks.values()):
            if hook.event == event:
                headers = {h["key"]: h["value"] for h in hook.headers}
                self.webhooks.enqueue_v2(
                    hook.url,
                    resource_type or event.upper(),
                    resource_url,
                    data=data,
                    headers=headers,
                )
                count += 1
        return count

    async def deliver_webhooks(self) -> list[DeliveryResult]:
        """POST every queued webhook now; returns what was sent and the receivers' status codes."""
        return await self.webhooks.deliver()

    def start_auto_delivery(self, interval: float = 5.0) -> None:
        """Deliver queued webhooks in the background every ``interval`` (clock) seconds."""
        self.webhooks.start(interval)

    async def stop_auto_delivery(self) -> None:
        """Stop background delivery."""
        await self.webhooks.stop()

    def _storm_response(
        self, scope: Scope, cfg: FaultConfig
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        # an injected 429 must look like the real limit answer of the API that was called
        seconds = str(max(1, int(cfg.storm_retry_after))).encode()
        if str(scope.get("path", "")).startswith("/v2"):
            body = json.dumps(
                {
                    "request_id": "00000000-0000-4000-8000-000000000429",
                    "errors": [
                        {
                            "error_source": "ShipStation",
                            "error_type": "system",
                            "error_code": "rate_limit_exceeded",
                            "message": "You have exceeded the rate limit.",
                        }
                    ],
                }
            ).encode()
            return body, [(b"retry-after", seconds)]
        return b'{"message":"Too Many Requests"}', [
            (b"x-rate-limit-limit", str(self.v1_limiter.limit).encode()),
            (b"x-rate-limit-remaining", b"0"),
            (b"x-rate-limit-reset", seconds),
        ]

    # ------------------------------------------------------------------ operator actions

    def create_label(
        self,
        order_id: int,
        quantities: dict[str, int] | None = None,
        *,
        carrier_code: str | None = None,
        service_code: str | None = None,
        tracking_number: str | None = None,
        ship_date: date | None = None,
    ) -> Shipment:
        """Make one label for an order (``quantities`` by lineItemKey/sku/orderItemId for a
        partial shipment; None ships all that is open). Fires SHIP_NOTIFY / ITEM_SHIP_NOTIFY."""
        request = LabelRequest(
            order_id, quantities, carrier_code, service_code, tracking_number, ship_date
        )
        return self.state.create_labels([request])[0]

    def set_raw_field(self, resource: str, ident: int, field: str, value: object) -> None:
        """Make ``GET /{resource}`` (``orders``, ``shipments``, ``fulfillments``) send ``value``
        as ``field`` of record ``ident`` (a malformed record, as a real account may send)."""
        self.state.raw_fields.setdefault((resource, ident), {})[field] = value

    def clear_raw_fields(self, resource: str, ident: int) -> None:
        """Send the record as the simulator holds it again (the data was corrected)."""
        self.state.raw_fields.pop((resource, ident), None)

    def create_labels(self, requests: Sequence[LabelRequest]) -> list[Shipment]:
        """Make several labels in one batch (one SHIP_NOTIFY for all)."""
        return self.state.create_labels(requests)

    def mark_shipped(
        self,
        order_id: int,
        carrier_code: str = "ups",
        *,
        tracking_number: str | None = None,
        ship_date: date | None = None,
    ) -> JsonDict:
        """Mark an order shipped outside ShipStation (a fulfilment; FULFILLMENT_SHIPPED)."""
        fulfillment = self.state.mark_shipped(
            order_id,
            carrier_code=carrier_code,
            tracking_number=tracking_number,
            ship_date=ship_date,
        )
        return render_fulfillment(fulfillment)

    def void_label(self, shipment_id: int) -> JsonDict:
        """Void a label (``voided: true``, ``voidDate``); the order reopens if it was shipped."""
        return render_shipment(self.state.void_label(shipment_id), include_items=True)

    def edit_order(self, order_id: int, changes: dict[str, Any]) -> JsonDict:
        """Edit an order as in the UI (V1 field names, all or nothing): modifyDate moves; no
        webhook unless an ``awaiting_payment`` order becomes payable (ORDER_NOTIFY)."""
        return render_order(self.state.edit_order(order_id, changes))

    def cancel_order(self, order_id: int) -> JsonDict:
        """Cancel an order in the UI (no webhook: V1 has no cancel event)."""
        return render_order(self.state.cancel_order(order_id))

    def reject_fulfillment(self, order_id: int) -> JsonDict:
        """A fill provider rejects an order (FULFILLMENT_REJECTED)."""
        return render_order(self.state.reject_fulfillment(order_id))

    def reset(self) -> None:
        """Empty every store, queue, rate-limit window and fault setting."""
        self.state.reset()
        self.inventory.reset()
        self.webhooks.clear()
        self.v1_limiter.reset()
        self.v2_limiter.reset()
        self.faults.configure()

    # ------------------------------------------------------------------ read-only helpers

    def all_orders(self, *, include_deleted: bool = False) -> list[JsonDict]:
        """Every order as V1 renders it (deleted ones only when asked)."""
        return [render_order(o) for o in self.state.orders.values() if o.active or include_deleted]

    def order_by_key(self, order_key: str) -> JsonDict | None:
        """The active order with that ``orderKey``, if any."""
        order = self.state.active_order(self.state.keys.get(order_key))
        return render_order(order) if order else None

    def all_shipments(self) -> list[JsonDict]:
        """Every shipment (with items), voided ones included."""
        return [render_shipment(s, include_items=True) for s in self.state.shipments.values()]

    def all_fulfillments(self) -> list[JsonDict]:
        """Every fulfilment."""
        return [render_fulfillment(f) for f in self.state.fulfillments.values()]

    def counts(self) -> dict[str, int]:
        """How many records of each kind exist (for assertions and the UI)."""
        orders = [o for o in self.state.orders.values() if o.active]
        return {
            "orders": len(orders),
            "orders_deleted": sum(1 for o in self.state.orders.values() if not o.active),
            "orders_shipped": sum(1 for o in orders if o.status == "shipped"),
            "shipments": len(self.state.shipments),
            "shipments_voided": sum(1 for s in self.state.shipments.values() if s.voided),
            "fulfillments": len(self.state.fulfillments),
            "webhooks_v1": len(self.state.webhooks),
            "webhooks_v2": len(self.inventory.webhooks),
            "webhooks_pending": len(self.webhooks.pending),
            "inventory_levels": len(self.inventory.levels),
        }


def create_shipstation_sandbox(
    clock: Clock,
    *,
    accounts: Sequence[ShipStationAccount] = (ShipStationAccount(),),
    public_url: str | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> ShipStationSandbox:
    """Build a ShipStation simulator (see the module doc); ``.app`` is the ASGI app."""
    return ShipStationSandbox(
        clock, accounts=accounts, public_url=public_url, webhook_transport=webhook_transport
    )
