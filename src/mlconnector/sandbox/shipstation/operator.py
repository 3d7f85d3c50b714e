"""HTTP operator surface under ``/_operator``: the fulfilment team's hands, for demos and e2e.

No authentication and never disturbed by faults. Each route calls the matching Python method of
:class:`~.app.ShipStationSandbox`; errors are ``400 {"error": ...}``.

=======  ==========================================  =============================================
method   path                                        body / effect
=======  ==========================================  =============================================
GET      /_operator/orders                           every order (``?include_deleted=true``)
GET      /_operator/shipments, /_operator/fulfillments
GET      /_operator/counts                           record counts
POST     /_operator/orders/{id}/labels               ``{quantities?, carrierCode?, serviceCode?,
                                                     trackingNumber?, shipDate?}`` → shipment
POST     /_operator/orders/{id}/mark-shipped         ``{carrierCode?, trackingNumber?, shipDate?}``
POST     /_operator/orders/{id}/edit                 V1 field names → changed order
POST     /_operator/orders/{id}/cancel
POST     /_operator/orders/{id}/reject-fulfillment
POST     /_operator/shipments/{id}/void
POST     /_operator/webhooks/deliver                 send queued webhooks → results
GET      /_operator/webhooks/pending                 queued deliveries
POST     /_operator/v2/events                        ``{event, resource_url, data?}``
POST     /_operator/faults                           FaultConfig fields (replaces the config)
POST     /_operator/reset                            empty everything
=======  ==========================================  =============================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .render import render_shipment
from .state import OperatorError

if TYPE_CHECKING:
    from .app import ShipStationSandbox

Handler = Callable[[Request], Awaitable[Any]]


def _guard(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except (OperatorError, ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return result if isinstance(result, Response) else JSONResponse(result)

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise OperatorError("the body must be a JSON object")
    return body


def _day(value: object) -> date | None:
    return date.fromisoformat(str(value)) if value else None


def operator_routes(sb: ShipStationSandbox) -> list[Route]:
    """The ``/_operator`` routes bound to one sandbox."""

    def order_id(request: Request) -> int:
        return int(request.path_params["id"])

    async def orders(request: Request) -> Any:
        flag = request.query_params.get("include_deleted", "").lower() == "true"
        return sb.all_orders(include_deleted=flag)

    async def shipments(request: Request) -> Any:
        return sb.all_shipments()

    async def fulfillments(request: Request) -> Any:
        return sb.all_fulfillments()

    async def counts(request: Request) -> Any:
        return sb.counts()

    async def label(request: Request) -> Any:
        body = await _body(request)
        shipment = sb.create_label(
            order_id(request),
            body.get("quantities"),
            carrier_code=body.get("carrierCode"),
            service_code=body.get("serviceCode"),
            tracking_number=body.get("trackingNumber"),
            ship_date=_day(body.get("shipDate")),
        )
        return render_shipment(shipment, include_items=True)

    async def mark_shipped(request: Request) -> Any:
        body = await _body(request)
        return sb.mark_shipped(
            order_id(request),
            body.get("carrierCode") or "ups",
            tracking_number=body.get("trackingNumber"),
            ship_date=_day(body.get("shipDate")),
        )

    async def edit(request: Request) -> Any:
        return sb.edit_order(order_id(request), await _body(request))

    async def cancel(request: Request) -> Any:
        return sb.cancel_order(order_id(request))

    async def reject(request: Request) -> Any:
        return sb.reject_fulfillment(order_id(request))

    async def void(request: Request) -> Any:
        return sb.void_label(int(request.path_params["id"]))

    async def deliver(request: Request) -> Any:
        results = await sb.deliver_webhooks()
        return [
            {
                "url": r.url,
                "resource_type": r.resource_type,
                "resource_url": r.resource_url,
                "status": r.status,
                "error": r.error,
            }
            for r in results
        ]

    async def pending(request: Request) -> Any:
        return [
            {
                "url": d.url,
                "resource_type": d.resource_type,
                "body": d.body.decode(),
                "signed": d.signed,
            }
            for d in sb.webhooks.pending
        ]

    async def v2_event(request: Request) -> Any:
        body = await _body(request)
        sent = sb.emit_v2_event(
            str(body["event"]), str(body["resource_url"]), data=body.get("data")
        )
        return {"queued": sent}

    async def faults(request: Request) -> Any:
        config = sb.faults.configure(**await _body(request))
        return asdict(config)

    async def reset(request: Request) -> Any:
        sb.reset()
        return {"reset": True}

    g = _guard
    return [
        Route("/_operator/orders", g(orders), methods=["GET"]),
        Route("/_operator/shipments", g(shipments), methods=["GET"]),
        Route("/_operator/fulfillments", g(fulfillments), methods=["GET"]),
        Route("/_operator/counts", g(counts), methods=["GET"]),
        Route("/_operator/orders/{id:int}/labels", g(label), methods=["POST"]),
        Route("/_operator/orders/{id:int}/mark-shipped", g(mark_shipped), methods=["POST"]),
        Route("/_operator/orders/{id:int}/edit", g(edit), methods=["POST"]),
        Route("/_operator/orders/{id:int}/cancel", g(cancel), methods=["POST"]),
        Route("/_operator/orders/{id:int}/reject-fulfillment", g(reject), methods=["POST"]),
        Route("/_operator/shipments/{id:int}/void", g(void), methods=["POST"]),
        Route("/_operator/webhooks/deliver", g(deliver), methods=["POST"]),
        Route("/_operator/webhooks/pending", g(pending), methods=["GET"]),
        Route("/_operator/v2/events", g(v2_event), methods=["POST"]),
        Route("/_operator/faults", g(faults), methods=["POST"]),
        Route("/_operator/reset", g(reset), methods=["POST"]),
    ]
