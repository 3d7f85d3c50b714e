"""ShipStation V1 client (``https://ssapi.shipstation.com``): orders, shipments, fulfillments,
webhooks, stores and warehouses.

* Basic auth with the API key and secret; both are registered with the redactor.
* One :class:`~mlconnector.http.RateLimiter` per key/secret pair (40 requests/minute), shared
  through the :class:`~mlconnector.http.RateLimiterRegistry`; it paces on the
  ``X-Rate-Limit-*`` headers, and the base class waits out a 429.
* Dates cross the boundary in US Pacific (see :mod:`mlconnector.shipstation.models`); filters
  take aware datetimes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import httpx

from mlconnector.clock import Clock
from mlconnector.config import DEFAULT_FULFILLMENT_WEBHOOK_PATH
from mlconnector.errors import (
    AuthenticationError,
    ConnectorError,
    ForeignURLError,
    FrozenRecordError,
    InvalidResponseError,
    RemoteValidationError,
)
from mlconnector.http import ApiClient, RateLimiterRegistry, Redactor, RequestEvent, RetryPolicy
from mlconnector.lenient import Unreadable, UnreadableRecordError
from mlconnector.shipstation._common import (
    M,
    body_request_id,
    error_text,
    paginate,
    parse_model,
    parse_or_report,
    says_frozen,
)
from mlconnector.shipstation.models import (
    CreateOrderResult,
    Fulfillment,
    MarkShippedResult,
    Order,
    Shipment,
    Store,
    V1Webhook,
    Warehouse,
)
from mlconnector.shipstation.webhooks import (
    PRODUCTION_V1_HOST,
    V1_FULFILLMENT_EVENTS,
    V1_ORDER_EVENTS,
    V1_SHIP_EVENTS,
    AllowList,
    WebhookDelivery,
    include_shipment_items,
)
from mlconnector.timezones import (
    format_pacific_filter,
    format_pacific_filter_ceil,
    to_pacific_naive,
)

DEFAULT_V1_BASE_URL = "https://ssapi.shipstation.com"
V1_LIMIT_PER_MINUTE = 40
MAX_BATCH = 100
DEFAULT_PAGE_SIZE = 500


def _parse(model: type[M], raw: Any, what: str) -> M:
    return parse_model(model, raw, what, service="ShipStation V1")


def _filter_value(value: Any, *, end: bool = False) -> Any:
    if isinstance(value, datetime):
        return format_pacific_filter_ceil(value) if end else format_pacific_filter(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def build_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """snake_case keyword filters to V1 query parameters; datetimes to Pacific, ``*_end`` rounded
    up to the second (the bound is inclusive), ``None`` dropped."""
    params: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        params[_camel(name)] = _filter_value(value, end=name.endswith("_end"))
    return params


def _names(message: str, order: Order) -> bool:
    """True when ``message`` names this order's key or number as a whole token."""
    for token in (order.order_key, order.order_number):
        if token and re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", message):
            return True
    return False


UnreadableSink = Callable[[Unreadable], None]


@dataclass
class WebhookBatch:
    """What a V1 webhook pointed at, fetched in full (every page)."""

    resource_type: str
    url: str
    orders: list[Order] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    fulfillments: list[Fulfillment] = field(default_factory=list)
    #: records of the answer that could not be read (the others are above)
    unreadable: list[Unreadable] = field(default_factory=list)


class ShipStationV1Client(ApiClient):
    """Async client for ShipStation API V1 over an injected ``httpx.AsyncClient``."""

    service = "ShipStation V1"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        api_secret: str,
        clock: Clock,
        base_url: str = DEFAULT_V1_BASE_URL,
        connection: str = "default",
        limiters: RateLimiterRegistry | None = None,
        retry: RetryPolicy | None = None,
        redactor: Redactor | None = None,
        on_event: Callable[[RequestEvent], None] | None = None,
        timeout: float = 30.0,
        production: bool | None = None,
        extra_resource_bases: Iterable[str] = (),
        fulfillment_webhook_path: str = DEFAULT_FULFILLMENT_WEBHOOK_PATH,
    ) -> None:
        if not api_key or not api_secret:
            raise ValueError(
                f"ShipStation V1 connection {connection!r} needs an API key and secret"
            )
        redactor = redactor or Redactor()
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        for secret in (api_key, api_secret, token):
            redactor.add(secret)
        registry = limiters or RateLimiterRegistry(clock)
        limiter = registry.for_credential(
            httpx.URL(base_url).host,
            f"{api_key}:{api_secret}",
            limit_per_minute=V1_LIMIT_PER_MINUTE,
        )
        super().__init__(
            http,
            base_url=base_url,
            clock=clock,
            retry=retry,
            limiter=limiter,
            redactor=redactor,
            on_event=on_event,
            timeout=timeout,
        )
        self.connection = connection
        self._authorization = f"Basic {token}"
        if production is None:
            production = self.base_url.scheme == "https" and bool(
                PRODUCTION_V1_HOST.match(self.base_url.host)
            )
        self.allow_list = AllowList.build(
            [str(self.base_url), *extra_resource_bases],
            production_host=PRODUCTION_V1_HOST if production else None,
        )
        #: the path a FULFILLMENT_* pointer must have (full match); UNCONFIRMED shape, a setting
        self.fulfillment_webhook_path = re.compile(fulfillment_webhook_path)

    # --- ApiClient hooks ---------------------------------------------------------------------
    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self._authorization}

    def is_own_origin(self, url: httpx.URL) -> bool:
        # V1 credentials may go to the configured base and, in production, to ssapiN hosts.
        return self.allow_list.allows(url)

    def error_message(self, response: httpx.Response) -> str | None:
        return error_text(response)

    def request_id(self, response: httpx.Response) -> str | None:
        return super().request_id(response) or body_request_id(response)

    def classify(self, response: httpx.Response) -> ConnectorError | None:
        error = super().classify(response)
        if error is None:
            return None
        host = response.request.url.host if response.request else self.base_url.host
        if isinstance(error, AuthenticationError):
            error.message = (
                f"ShipStation V1 refused the API key/secret of connection "
                f"{self.connection!r} at {host}"
            )
            error.hint = (
                "check the V1 API key and API secret (ShipStation: Settings → API); "
                "a V2 API key does not work on V1"
            )
        elif isinstance(error, RemoteValidationError) and says_frozen(self.error_message(response)):
            frozen = FrozenRecordError(
                f"ShipStation V1 will not change a shipped or cancelled order: "
                f"{self.error_message(response)}",
                status=error.status,
                request_id=error.request_id,
                body_excerpt=error.body_excerpt,
                hint="the order is read-only in ShipStation; the connector skips it",
            )
            return frozen
        return error

    # --- orders ------------------------------------------------------------------------------
    async def create_or_update_order(self, order: Order) -> Order:
        """Upsert one order by ``orderKey`` (send the whole order: V1 replaces it)."""
        record = f"order {order.order_key or order.order_number}"
        raw = await self.request_json(
            "POST", "/orders/createorder", json_body=order.to_v1(), record=record
        )
        return _parse(Order, raw, "createorder response")

    async def create_orders(self, orders: Sequence[Order]) -> list[CreateOrderResult]:
        """Upsert many orders in batches of at most 100; one outcome per order, in input order.

        HTTP 200 does not mean every order succeeded: each outcome has ``success`` and
        ``errorMessage``. A batch the server rejects as a whole (HTTP 400) marks each of its orders
        failed with that message; retryable failures (429, 5xx, timeouts) raise after the retry
        budget, and upsert by ``orderKey`` makes the whole call safe to repeat.
        """
        outcomes: list[CreateOrderResult] = []
        for start in range(0, len(orders), MAX_BATCH):
            chunk = list(orders[start : start + MAX_BATCH])
            outcomes.extend(await self._create_chunk(chunk, start))
        return outcomes

    async def _create_chunk(self, chunk: list[Order], start: int) -> list[CreateOrderResult]:
        record = f"createorders batch of orders {start + 1}-{start + len(chunk)}"
        try:
            raw = await self.request_json(
                "POST",
                "/orders/createorders",
                json_body=[order.to_v1() for order in chunk],
                record=record,
            )
        except (RemoteValidationError, FrozenRecordError) as exc:
            # The whole batch was refused (HTTP 400): every order in it failed with that reason.
            # Only an order the message names (or a batch of one) counts as frozen: marking the
            # others frozen would make the connector skip them for good.
            return [
                self._failed(
                    order, exc.message, frozen_ok=len(chunk) == 1 or _names(exc.message, order)
                )
                for order in chunk
            ]
        results = raw.get("results") if isinstance(raw, dict) else None
        if not isinstance(results, list):
            raise InvalidResponseError(f"{record}: response has no 'results' list")
        parsed = [_parse(CreateOrderResult, item, "createorders result") for item in results]
        return self._match_results(chunk, parsed)

    @staticmethod
    def _failed(order: Order, message: str, *, frozen_ok: bool = True) -> CreateOrderResult:
        return CreateOrderResult(
            order_key=order.order_key,
            order_number=order.order_number,
            order_id=order.order_id,
            success=False,
            error_message=message,
            frozen=frozen_ok and says_frozen(message),
        )

    def _match_results(
        self, chunk: list[Order], results: list[CreateOrderResult]
    ) -> list[CreateOrderResult]:
        """Pair results with input orders: by ``orderKey`` when every input has a distinct one,
        else by position (the server answers in request order)."""
        keys = [order.order_key for order in chunk]
        by_key = {r.order_key: r for r in results if r.order_key}
        use_keys = all(keys) and len(set(keys)) == len(keys)
        matched: list[CreateOrderResult] = []
        for index, order in enumerate(chunk):
            result = by_key.get(order.order_key or "") if use_keys else None
            if result is None and not use_keys and index < len(results):
                result = results[index]
            if result is None:
                matched.append(self._failed(order, "ShipStation returned no result for this order"))
                continue
            result.frozen = not result.success and says_frozen(result.error_message)
            matched.append(result)
        return matched

    async def get_order(self, order_id: int) -> Order:
        """One order; an answer that is not a readable order raises
        :class:`~mlconnector.lenient.UnreadableRecordError` (a skip naming the field)."""
        raw = await self.request_json("GET", f"/orders/{order_id}", record=f"order {order_id}")
        bad: list[Unreadable] = []
        order = parse_or_report(
            Order,
            raw,
            "order",
            service=self.service,
            on_unreadable=bad.append,
            where=f"/orders/{order_id}",
        )
        if order is None:
            raise UnreadableRecordError(bad)
        return order

    async def delete_order(self, order_id: int) -> None:
        """Soft-delete an order (it becomes inactive; ShipStation keeps it)."""
        await self.request_json("DELETE", f"/orders/{order_id}", record=f"order {order_id}")

    async def iter_orders(
        self,
        *,
        modify_date_start: datetime | None = None,
        modify_date_end: datetime | None = None,
        create_date_start: datetime | None = None,
        create_date_end: datetime | None = None,
        order_date_start: datetime | None = None,
        order_date_end: datetime | None = None,
        order_status: str | None = None,
        order_number: str | None = None,
        store_id: int | None = None,
        customer_name: str | None = None,
        sort_by: str | None = None,
        sort_dir: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int | None = None,
        on_unreadable: UnreadableSink | None = None,
    ) -> AsyncIterator[Order]:
        """Every order matching the filters, page by page (unreadable ones go to
        ``on_unreadable``; without a sink they raise :class:`InvalidResponseError`).

        ``order_number`` is ShipStation's **prefix** match (``1001`` also finds ``10010``); use
        :meth:`find_orders_by_number` for an exact match.
        """
        params = build_filters(
            {
                "modify_date_start": modify_date_start,
                "modify_date_end": modify_date_end,
                "create_date_start": create_date_start,
                "create_date_end": create_date_end,
                "order_date_start": order_date_start,
                "order_date_end": order_date_end,
                "order_status": order_status,
                "order_number": order_number,
                "store_id": store_id,
                "customer_name": customer_name,
                "sort_by": sort_by,
                "sort_dir": sort_dir,
            }
        )
        async for item in self._iter("/orders", "orders", params, page_size, max_pages):
            order = parse_or_report(
                Order, item, "order", service=self.service, on_unreadable=on_unreadable
            )
            if order is not None:
                yield order

    async def find_orders_by_number(self, order_number: str) -> list[Order]:
        """Orders whose ``orderNumber`` is exactly ``order_number`` (the filter is a prefix)."""
        return [
            order
            async for order in self.iter_orders(order_number=order_number)
            if order.order_number == order_number
        ]

    async def mark_as_shipped(
        self,
        order_id: int,
        *,
        carrier_code: str,
        ship_date: date | datetime | None = None,
        tracking_number: str | None = None,
        notify_customer: bool = False,
        notify_sales_channel: bool = False,
    ) -> MarkShippedResult:
        """Mark an order shipped without a label (it becomes an external shipment/fulfilment)."""
        body: dict[str, Any] = {
            "orderId": order_id,
            "carrierCode": carrier_code,
            "notifyCustomer": notify_customer,
            "notifySalesChannel": notify_sales_channel,
        }
        if ship_date is not None:
            local = to_pacific_naive(ship_date) if isinstance(ship_date, datetime) else ship_date
            body["shipDate"] = local.strftime("%Y-%m-%d")
        if tracking_number is not None:
            body["trackingNumber"] = tracking_number
        raw = await self.request_json(
            "POST", "/orders/markasshipped", json_body=body, record=f"order {order_id}"
        )
        return _parse(MarkShippedResult, raw, "markasshipped response")

    # --- shipments and fulfillments ------------------------------------------------------------
    async def iter_shipments(
        self,
        *,
        create_date_start: datetime | None = None,
        create_date_end: datetime | None = None,
        ship_date_start: datetime | None = None,
        ship_date_end: datetime | None = None,
        void_date_start: datetime | None = None,
        void_date_end: datetime | None = None,
        order_id: int | None = None,
        order_number: str | None = None,
        batch_id: int | None = None,
        store_id: int | None = None,
        tracking_number: str | None = None,
        include_shipment_items: bool = True,
        sort_by: str | None = None,
        sort_dir: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int | None = None,
        on_unreadable: UnreadableSink | None = None,
    ) -> AsyncIterator[Shipment]:
        """Shipments with labels made in ShipStation (marked-shipped orders are fulfilments).

        An unreadable shipment goes to ``on_unreadable`` and the others are yielded; without a
        sink it raises :class:`InvalidResponseError`."""
        params = build_filters(
            {
                "create_date_start": create_date_start,
                "create_date_end": create_date_end,
                "ship_date_start": ship_date_start,
                "ship_date_end": ship_date_end,
                "void_date_start": void_date_start,
                "void_date_end": void_date_end,
                "order_id": order_id,
                "order_number": order_number,
                "batch_id": batch_id,
                "store_id": store_id,
                "tracking_number": tracking_number,
                "include_shipment_items": include_shipment_items,
                "sort_by": sort_by,
                "sort_dir": sort_dir,
            }
        )
        async for item in self._iter("/shipments", "shipments", params, page_size, max_pages):
            shipment = parse_or_report(
                Shipment, item, "shipment", service=self.service, on_unreadable=on_unreadable
            )
            if shipment is not None:
                yield shipment

    async def iter_fulfillments(
        self,
        *,
        create_date_start: datetime | None = None,
        create_date_end: datetime | None = None,
        ship_date_start: datetime | None = None,
        ship_date_end: datetime | None = None,
        order_id: int | None = None,
        order_number: str | None = None,
        fulfillment_id: int | None = None,
        tracking_number: str | None = None,
        sort_by: str | None = None,
        sort_dir: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int | None = None,
        on_unreadable: UnreadableSink | None = None,
    ) -> AsyncIterator[Fulfillment]:
        """Orders shipped outside ShipStation label creation (fill providers, marked shipped);
        unreadable ones go to ``on_unreadable`` (see :meth:`iter_shipments`)."""
        params = build_filters(
            {
                "create_date_start": create_date_start,
                "create_date_end": create_date_end,
                "ship_date_start": ship_date_start,
                "ship_date_end": ship_date_end,
                "order_id": order_id,
                "order_number": order_number,
                "fulfillment_id": fulfillment_id,
                "tracking_number": tracking_number,
                "sort_by": sort_by,
                "sort_dir": sort_dir,
            }
        )
        async for item in self._iter("/fulfillments", "fulfillments", params, page_size, max_pages):
            found = parse_or_report(
                Fulfillment, item, "fulfillment", service=self.service, on_unreadable=on_unreadable
            )
            if found is not None:
                yield found

    async def _iter(
        self,
        path: str,
        key: str,
        params: dict[str, Any],
        page_size: int,
        max_pages: int | None,
    ) -> AsyncIterator[dict[str, Any]]:
        async def fetch(page: int) -> Any:
            query = {**params, "page": page, "pageSize": page_size}
            return await self.request_json("GET", path, params=query, record=f"{path} page {page}")

        async for items in paginate(
            fetch, key=key, what=f"{self.service} {path}", max_pages=max_pages
        ):
            for item in items:
                yield item

    # --- webhooks ------------------------------------------------------------------------------
    async def list_webhooks(self) -> list[V1Webhook]:
        raw = await self.request_json("GET", "/webhooks")
        items = raw.get("webhooks") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise InvalidResponseError("ShipStation V1 /webhooks has no 'webhooks' list")
        return [_parse(V1Webhook, item, "webhook") for item in items]

    async def subscribe_webhook(
        self,
        *,
        target_url: str,
        event: str,
        store_id: int | None = None,
        friendly_name: str | None = None,
    ) -> int:
        """Subscribe ``target_url`` to ``event``; returns the new webhook id."""
        body: dict[str, Any] = {"target_url": target_url, "event": event}
        if store_id is not None:
            body["store_id"] = store_id
        if friendly_name is not None:
            body["friendly_name"] = friendly_name
        raw = await self.request_json("POST", "/webhooks/subscribe", json_body=body)
        for key in ("id", "WebHookID", "webhookId"):
            if isinstance(raw, dict) and isinstance(raw.get(key), int):
                return int(raw[key])
        raise InvalidResponseError("ShipStation V1 webhooks/subscribe returned no id")

    async def unsubscribe_webhook(self, webhook_id: int) -> None:
        await self.request("DELETE", f"/webhooks/{webhook_id}", record=f"webhook {webhook_id}")

    async def follow(self, delivery: WebhookDelivery) -> WebhookBatch:
        """Fetch (every page of) what a V1 webhook delivery points at, after the allow-list check.

        SHIP_NOTIFY pointers say ``includeShipmentItems=False``; it is rewritten to ``True`` so the
        shipment lines come with the shipments. A URL that is not an allowed V1 address raises
        :class:`~mlconnector.errors.ForeignURLError` before anything is sent.
        """
        url = self.allow_list.check(delivery.resource_url)
        kind = delivery.resource_type
        model: type[Order] | type[Shipment] | type[Fulfillment]
        if kind in V1_SHIP_EVENTS:
            url = include_shipment_items(url)
            key, model = "shipments", Shipment
        elif kind in V1_ORDER_EVENTS:
            key, model = "orders", Order
        elif kind in V1_FULFILLMENT_EVENTS:
            key, model = "fulfillments", Fulfillment
        else:
            raise RemoteValidationError(
                f"{kind} is not a V1 webhook event; follow it with the V2 client",
                record=f"webhook {kind}",
            )
        if key == "fulfillments":
            if not self.fulfillment_webhook_path.fullmatch(url.path):
                # The fulfilment pointer's shape is not documented: it is a setting, and a
                # pointer of another shape is left to the /fulfillments poll.
                raise ForeignURLError(
                    f"{kind} resource_url path {url.path[:80]!r} does not match "
                    f"connections.{self.connection}.shipstation.fulfillment_webhook_path "
                    f"({self.fulfillment_webhook_path.pattern!r}); nothing was sent",
                    record=f"webhook {kind}",
                    hint="the /fulfillments poll still reads the fulfilment; if ShipStation sends "
                    "this shape, set fulfillment_webhook_path to a pattern that matches it",
                )
        elif not url.path.rstrip("/").endswith("/" + key):
            # A SHIP_NOTIFY pointer names /shipments, and so on; anything else is not a pointer
            # ShipStation would send, even on an allowed host.
            raise ForeignURLError(
                f"{kind} resource_url points at {url.path[:80]!r}, not at /{key}; nothing was sent",
                record=f"webhook {kind}",
            )
        batch = WebhookBatch(resource_type=kind, url=self.redactor.text(str(url)))
        target: list[Any] = getattr(batch, key)
        base_params = [(k, v) for k, v in url.params.multi_items() if k.lower() != "page"]

        async def fetch(page: int) -> Any:
            query = [*base_params, ("page", str(page))]
            return await self.request_json(
                "GET", str(url.copy_with(query=None)), params=query, record=f"webhook {kind}"
            )

        async for items in paginate(fetch, key=key, what=f"webhook {kind}"):
            for item in items:
                record = parse_or_report(
                    model,
                    item,
                    key[:-1],
                    service=self.service,
                    on_unreadable=batch.unreadable.append,
                    where=f"webhook {kind}",
                )
                if record is not None:
                    target.append(record)
        return batch

    # --- stores and warehouses -----------------------------------------------------------------
    async def list_stores(self, *, show_inactive: bool = False) -> list[Store]:
        raw = await self.request_json(
            "GET", "/stores", params={"showInactive": "true" if show_inactive else "false"}
        )
        if not isinstance(raw, list):
            raise InvalidResponseError("ShipStation V1 /stores did not return a list")
        return [_parse(Store, item, "store") for item in raw]

    async def list_warehouses(self) -> list[Warehouse]:
        raw = await self.request_json("GET", "/warehouses")
        if not isinstance(raw, list):
            raise InvalidResponseError("ShipStation V1 /warehouses did not return a list")
        return [_parse(Warehouse, item, "warehouse") for item in raw]
