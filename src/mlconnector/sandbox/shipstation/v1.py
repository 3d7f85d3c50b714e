"""V1 routes (``https://ssapi.shipstation.com`` shape): Basic auth, 40/min per key, Pacific times.

Every authenticated response carries ``X-Rate-Limit-Limit/Remaining/Reset``; errors are
``{"message": ...}``. Query filters take ``yyyy-mm-dd hh:mm:ss`` in US Pacific (also
``yyyy-mm-ddThh:mm:ss[.fff]`` and a bare date); a malformed filter, page or pageSize is a 400.
Start/End filters are inclusive.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlconnector.timezones import PACIFIC, TimeFormatError, parse_pacific

from .models import ORDER_STATUSES, JsonDict, Order
from .render import (
    render_fulfillment,
    render_order,
    render_product,
    render_shipment,
    render_store,
    render_v1_webhook,
    render_warehouse,
)
from .state import OperatorError, UpsertResult

if TYPE_CHECKING:
    from .app import ShipStationSandbox

V1_EVENTS = (
    "ORDER_NOTIFY",
    "ITEM_ORDER_NOTIFY",
    "SHIP_NOTIFY",
    "ITEM_SHIP_NOTIFY",
    "FULFILLMENT_SHIPPED",
    "FULFILLMENT_REJECTED",
)
MAX_PAGE_SIZE = 500
MAX_BATCH = 100
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Any]]


class V1Error(Exception):
    """An error answer: ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------- query parsing


def parse_filter_time(request: Request, name: str) -> datetime | None:
    """A Start/End filter (Pacific) as aware UTC, or None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if len(text) == 10:
        text += " 00:00:00"
    try:
        return parse_pacific(text)
    except TimeFormatError as exc:
        raise V1Error(400, f"The value '{raw}' is not valid for {name}.") from exc


def parse_int(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter (400 when not a whole number)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise V1Error(400, f"The value '{raw}' is not valid for {name}.") from exc


def parse_bool(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter (``true``/``false``, any case)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise V1Error(400, f"The value '{raw}' is not valid for {name}.")


class Window:
    """The inclusive ``{prefix}Start`` / ``{prefix}End`` filters of one request, parsed once."""

    def __init__(self, request: Request, prefix: str) -> None:
        self.start = parse_filter_time(request, f"{prefix}Start")
        self.end = parse_filter_time(request, f"{prefix}End")

    def __contains__(self, value: datetime | None) -> bool:
        if self.start is None and self.end is None:
            return True
        if value is None:
            return False
        return (self.start is None or value >= self.start) and (
            self.end is None or value <= self.end
        )


def date_as_instant(day: date | None) -> datetime | None:
    """A Pacific calendar date as the instant of its midnight (for shipDate filters)."""
    if day is None:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=PACIFIC)


def paginate(
    request: Request, rows: Sequence[T], default_size: int = 100
) -> tuple[list[T], JsonDict]:
    """Cut one page; returns the rows and the ``total/page/pages`` fields."""
    raw_page = parse_int(request, "page")
    raw_size = parse_int(request, "pageSize")
    page = 1 if raw_page is None else raw_page
    size = default_size if raw_size is None else raw_size
    if page < 1:
        raise V1Error(400, "page must be 1 or more.")
    if size < 1 or size > MAX_PAGE_SIZE:
        raise V1Error(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}.")
    total = len(rows)
    chunk = list(rows[(page - 1) * size : page * size])
    return chunk, {"total": total, "page": page, "pages": math.ceil(total / size)}


def sort_rows(
    request: Request,
    rows: Iterable[T],
    keys: dict[str, Callable[[T], Any]],
    default: Callable[[T], Any],
) -> list[T]:
    """Sort by ``sortBy`` (one of ``keys``) and ``sortDir`` (ASC/DESC); 400 for other values."""
    sort_by = request.query_params.get("sortBy")
    direction = (request.query_params.get("sortDir") or "ASC").upper()
    if direction not in ("ASC", "DESC"):
        raise V1Error(400, f"sortDir must be ASC or DESC, not {direction!r}.")
    if sort_by and sort_by not in keys:
        raise V1Error(400, f"sortBy must be one of {', '.join(keys)}.")
    key = keys[sort_by] if sort_by else default
    return sorted(
        rows,
        key=lambda row: (key(row) is None, key(row), default(row)),
        reverse=direction == "DESC",
    )


async def json_body(request: Request) -> Any:
    """The parsed JSON body (400 when it is not JSON)."""
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise V1Error(400, "The request body is not valid JSON.") from exc


def _matches_text(haystack: object, needle: str | None, *, prefix: bool = False) -> bool:
    if not needle:
        return True
    text = str(haystack or "").lower()
    return text.startswith(needle.lower()) if prefix else needle.lower() in text


# ----------------------------------------------------------------------------- the routes


class V1Api:
    """The V1 endpoints bound to one sandbox."""

    def __init__(self, sandbox: ShipStationSandbox) -> None:
        self.sb = sandbox
        self.state = sandbox.state

    def routes(self) -> list[Route]:
        """Starlette routes (specific paths before ``/orders/{orderId}``)."""
        w = self._wrap
        return [
            Route("/orders", w(self.list_orders), methods=["GET"]),
            Route("/orders/createorder", w(self.create_order), methods=["POST"]),
            Route("/orders/createorders", w(self.create_orders), methods=["POST"]),
            Route("/orders/markasshipped", w(self.mark_as_shipped), methods=["POST"]),
            Route("/orders/{orderId}", w(self.get_order), methods=["GET"]),
            Route("/orders/{orderId}", w(self.delete_order), methods=["DELETE"]),
            Route("/shipments", w(self.list_shipments), methods=["GET"]),
            Route("/fulfillments", w(self.list_fulfillments), methods=["GET"]),
            Route("/warehouses", w(self.list_warehouses), methods=["GET"]),
            Route("/stores", w(self.list_stores), methods=["GET"]),
            Route("/products", w(self.list_products), methods=["GET"]),
            Route("/webhooks", w(self.list_webhooks), methods=["GET"]),
            Route("/webhooks/subscribe", w(self.subscribe), methods=["POST"]),
            Route("/webhooks/{webhookId}", w(self.unsubscribe), methods=["DELETE"]),
            Route("/{rest:path}", w(self.not_found), methods=["GET", "POST", "PUT", "DELETE"]),
        ]

    # -- auth and budget

    def _api_key(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        key, sep, secret = decoded.partition(":")
        if not sep:
            return None
        for account in self.sb.accounts:
            key_ok = hmac.compare_digest(key.encode(), account.api_key.encode())
            secret_ok = hmac.compare_digest(secret.encode(), account.api_secret.encode())
            if key_ok and secret_ok:
                return account.api_key
        return None

    def _wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            key = self._api_key(request)
            if key is None:
                return JSONResponse(
                    {"message": "Authorization has been denied for this request."},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="ShipStation"'},
                )
            verdict = self.sb.v1_limiter.hit(key)
            headers = verdict.v1_headers()
            if not verdict.allowed:
                return JSONResponse({"message": "Too Many Requests"}, 429, headers=headers)
            try:
                result = await handler(request)
            except V1Error as exc:
                return JSONResponse({"message": exc.message}, exc.status, headers=headers)
            if isinstance(result, Response):
                result.headers.update(headers)
                return result
            return JSONResponse(result, headers=headers)

        return endpoint

    async def not_found(self, request: Request) -> JsonDict:
        """Any other path: authenticated and counted like the rest, then 404."""
        raise V1Error(404, f"No resource {request.url.path} is served by the simulator.")

    # -- orders

    def _order_or_404(self, request: Request) -> Order:
        try:
            order_id = int(request.path_params["orderId"])
        except ValueError as exc:
            raise V1Error(404, "Order not found.") from exc
        order = self.state.active_order(order_id)
        if order is None:
            raise V1Error(404, f"Order {order_id} not found.")
        return order

    async def list_orders(self, request: Request) -> JsonDict:
        """``GET /orders`` with the documented filters, plus ``importBatch`` (webhook URLs)."""
        q = request.query_params
        status = q.get("orderStatus")
        if status and status not in ORDER_STATUSES:
            raise V1Error(400, f"orderStatus must be one of {', '.join(ORDER_STATUSES)}.")
        store_id = parse_int(request, "storeId")
        created, modified = Window(request, "createDate"), Window(request, "modifyDate")
        ordered, paid = Window(request, "orderDate"), Window(request, "paymentDate")
        number, batch = q.get("orderNumber"), q.get("importBatch")
        customer, keyword = q.get("customerName"), q.get("itemKeyword")
        rows = [
            o
            for o in self.state.orders.values()
            if o.active
            and (not status or o.status == status)
            and (store_id is None or o.store_id == store_id)
            and (not number or _matches_text(o.number, number, prefix=True))
            and (not batch or o.import_batch == batch)
            and _matches_customer(o, customer)
            and _matches_item(o, keyword)
            and o.create_date in created
            and o.modify_date in modified
            and o.dates.get("orderDate") in ordered
            and o.dates.get("paymentDate") in paid
        ]
        rows = sort_rows(
            request,
            rows,
            {
                "OrderDate": lambda o: o.dates.get("orderDate"),
                "ModifyDate": lambda o: o.modify_date,
                "CreateDate": lambda o: o.create_date,
            },
            default=lambda o: o.order_id,
        )
        page, meta = paginate(request, rows)
        return {"orders": [self._raw("orders", o.order_id, render_order(o)) for o in page], **meta}

    async def get_order(self, request: Request) -> JsonDict:
        """``GET /orders/{orderId}``."""
        order = self._order_or_404(request)
        return self._raw("orders", order.order_id, render_order(order))

    async def delete_order(self, request: Request) -> JsonDict:
        """``DELETE /orders/{orderId}``: a soft delete."""
        order = self._order_or_404(request)
        self.state.delete_order(order.order_id)
        return {"success": True, "message": "The requested order has been deleted."}

    async def create_order(self, request: Request) -> JsonDict:
        """``POST /orders/createorder``: upsert one order; a refusal is a 400."""
        body = await json_body(request)
        if not isinstance(body, dict):
            raise V1Error(400, "The request body must be one order object.")
        results, _ = self.state.upsert_orders([body])
        result = results[0]
        if result.order is None:
            raise V1Error(400, result.error or "The order was not accepted.")
        return render_order(result.order)

    async def create_orders(self, request: Request) -> JsonDict:
        """``POST /orders/createorders``: up to 100 orders, each succeeding or failing alone."""
        body = await json_body(request)
        if not isinstance(body, list):
            raise V1Error(400, "The request body must be a JSON array of orders.")
        if len(body) > MAX_BATCH:
            raise V1Error(
                400, f"At most {MAX_BATCH} orders per createorders call ({len(body)} sent)."
            )
        results, _ = self.state.upsert_orders(body)
        return {
            "hasErrors": any(r.order is None for r in results),
            "results": [_result_row(r) for r in results],
        }

    async def mark_as_shipped(self, request: Request) -> JsonDict:
        """``POST /orders/markasshipped``: a fulfilment, no label, no SHIP_NOTIFY."""
        body = await json_body(request)
        if not isinstance(body, dict):
            raise V1Error(400, "The request body must be an object.")
        order_id, carrier = body.get("orderId"), body.get("carrierCode")
        if not isinstance(order_id, int) or not isinstance(carrier, str) or not carrier:
            raise V1Error(400, "orderId and carrierCode are required.")
        ship_date = None
        if body.get("shipDate"):
            try:
                ship_date = date.fromisoformat(str(body["shipDate"])[:10])
            except ValueError as exc:
                raise V1Error(400, f"shipDate {body['shipDate']!r} is not a date.") from exc
        if self.state.active_order(order_id) is None:
            raise V1Error(404, f"Order {order_id} not found.")
        try:
            self.state.mark_shipped(
                order_id,
                carrier_code=carrier,
                ship_date=ship_date,
                tracking_number=body.get("trackingNumber"),
            )
        except OperatorError as exc:
            raise V1Error(400, str(exc)) from exc
        order = self.state.orders[order_id]
        return {"orderId": order.order_id, "orderNumber": order.number}

    # -- shipments and fulfilments

    async def list_shipments(self, request: Request) -> JsonDict:
        """``GET /shipments`` (labels made in ShipStation only; voided ones stay listed)."""
        q = request.query_params
        include_items = parse_bool(request, "includeShipmentItems")
        batch_id, order_id = parse_int(request, "batchId"), parse_int(request, "orderId")
        store_id = parse_int(request, "storeId")
        created, shipped = Window(request, "createDate"), Window(request, "shipDate")
        voided = Window(request, "voidDate")
        rows = [
            s
            for s in self.state.shipments.values()
            if (batch_id is None or s.batch_id == batch_id)
            and (order_id is None or s.order_id == order_id)
            and (store_id is None or self.state.orders[s.order_id].store_id == store_id)
            and (not q.get("orderNumber") or s.order_number == q.get("orderNumber"))
            and (not q.get("trackingNumber") or s.tracking_number == q.get("trackingNumber"))
            and (not q.get("carrierCode") or s.carrier_code == q.get("carrierCode"))
            and (not q.get("serviceCode") or s.service_code == q.get("serviceCode"))
            and _matches_text(s.ship_to.get("name"), q.get("recipientName"))
            and (
                not q.get("recipientCountryCode")
                or s.ship_to.get("country") == q.get("recipientCountryCode")
            )
            and s.create_date in created
            and date_as_instant(s.ship_date) in shipped
            and s.void_date in voided
        ]
        rows = sort_rows(
            request,
            rows,
            {"ShipDate": lambda s: s.ship_date, "CreateDate": lambda s: s.create_date},
            default=lambda s: s.shipment_id,
        )
        page, meta = paginate(request, rows)
        return {
            "shipments": [
                self._raw(
                    "shipments", s.shipment_id, render_shipment(s, include_items=include_items)
                )
                for s in page
            ],
            **meta,
        }

    def _raw(self, resource: str, ident: int, payload: JsonDict) -> JsonDict:
        """``payload`` with the operator's raw field values (``ShipStationState.raw_fields``)."""
        changed = self.state.raw_fields.get((resource, ident))
        return {**payload, **changed} if changed else payload

    async def list_fulfillments(self, request: Request) -> JsonDict:
        """``GET /fulfillments`` (orders shipped outside label creation)."""
        q = request.query_params
        fid, order_id = parse_int(request, "fulfillmentId"), parse_int(request, "orderId")
        batch_id = parse_int(request, "batchId")
        created, shipped = Window(request, "createDate"), Window(request, "shipDate")
        rows = [
            f
            for f in self.state.fulfillments.values()
            if (fid is None or f.fulfillment_id == fid)
            and (order_id is None or f.order_id == order_id)
            and (batch_id is None or f.batch_id == batch_id)
            and (not q.get("orderNumber") or f.order_number == q.get("orderNumber"))
            and (not q.get("trackingNumber") or f.tracking_number == q.get("trackingNumber"))
            and _matches_text(f.ship_to.get("name"), q.get("recipientName"))
            and f.create_date in created
            and date_as_instant(f.ship_date) in shipped
        ]
        rows = sort_rows(
            request,
            rows,
            {"ShipDate": lambda f: f.ship_date, "CreateDate": lambda f: f.create_date},
            default=lambda f: f.fulfillment_id,
        )
        page, meta = paginate(request, rows)
        rendered = [
            self._raw("fulfillments", f.fulfillment_id, render_fulfillment(f)) for f in page
        ]
        return {"fulfillments": rendered, **meta}

    # -- reference data

    async def list_warehouses(self, request: Request) -> list[JsonDict]:
        """``GET /warehouses`` (a bare array, as on the real service)."""
        return [render_warehouse(w) for w in self.state.warehouses.values()]

    async def list_stores(self, request: Request) -> list[JsonDict]:
        """``GET /stores`` (a bare array)."""
        show_inactive = parse_bool(request, "showInactive")
        marketplace = parse_int(request, "marketplaceId")
        return [
            render_store(s)
            for s in self.state.stores.values()
            if (s.active or show_inactive)
            and (marketplace is None or s.marketplace_id == marketplace)
        ]

    async def list_products(self, request: Request) -> JsonDict:
        """``GET /products``."""
        q = request.query_params
        show_inactive = parse_bool(request, "showInactive")
        rows = [
            p
            for p in self.state.products.values()
            if (p.active or show_inactive)
            and (not q.get("sku") or p.sku == q.get("sku"))
            and _matches_text(p.name, q.get("name"))
        ]
        rows.sort(key=lambda p: p.product_id)
        page, meta = paginate(request, rows)
        return {"products": [render_product(p) for p in page], **meta}

    # -- webhooks

    async def list_webhooks(self, request: Request) -> JsonDict:
        """``GET /webhooks``."""
        return {"webhooks": [render_v1_webhook(h) for h in self.state.webhooks.values()]}

    async def subscribe(self, request: Request) -> JsonDict:
        """``POST /webhooks/subscribe`` → ``{"id": n}``."""
        body = await json_body(request)
        if not isinstance(body, dict):
            raise V1Error(400, "The request body must be an object.")
        url, event = body.get("target_url"), body.get("event")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise V1Error(400, "target_url is required and must be an http(s) URL.")
        if event not in V1_EVENTS:
            raise V1Error(400, f"event must be one of {', '.join(V1_EVENTS)}.")
        store_id = body.get("store_id")
        if store_id is not None and (
            not isinstance(store_id, int) or store_id not in self.state.stores
        ):
            raise V1Error(400, f"store_id {store_id!r} is not a store of this account.")
        name = body.get("friendly_name")
        hook_id = self.state.subscribe(str(event), url, str(name) if name else None, store_id)
        return {"id": hook_id}

    async def unsubscribe(self, request: Request) -> Response:
        """``DELETE /webhooks/{webhookId}``."""
        try:
            hook_id = int(request.path_params["webhookId"])
        except ValueError as exc:
            raise V1Error(404, "Webhook not found.") from exc
        if self.state.webhooks.pop(hook_id, None) is None:
            raise V1Error(404, f"Webhook {hook_id} not found.")
        return Response(status_code=200)


def _result_row(result: UpsertResult) -> JsonDict:
    return {
        "orderId": result.order.order_id if result.order else 0,
        "orderNumber": result.order_number,
        "orderKey": result.order_key,
        "success": result.order is not None,
        "errorMessage": result.error,
    }


def _matches_customer(order: Order, name: str | None) -> bool:
    return not name or any(
        _matches_text(addr.get("name"), name) for addr in (order.bill_to, order.ship_to)
    )


def _matches_item(order: Order, keyword: str | None) -> bool:
    return not keyword or any(
        _matches_text(item.fields.get("sku"), keyword)
        or _matches_text(item.fields.get("name"), keyword)
        for item in order.items
    )
