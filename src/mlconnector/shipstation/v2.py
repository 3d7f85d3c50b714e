"""ShipStation V2 client (``https://api.shipstation.com``): inventory levels and changes,
inventory warehouses and locations, environment webhooks and the webhook signing keys.

* ``API-Key`` header, registered with the redactor.
* One sliding-window limiter per key (200 requests/minute; V2 sends no budget headers); a 429's
  ``Retry-After`` blocks the key and the base class waits it out.
* Timestamps are ISO 8601 with an offset, kept as aware UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from mlconnector.clock import Clock
from mlconnector.config import default_webhook_keys_url
from mlconnector.errors import (
    AuthenticationError,
    ConnectorError,
    ForeignURLError,
    InvalidResponseError,
)
from mlconnector.http import ApiClient, RateLimiterRegistry, Redactor, RequestEvent, RetryPolicy
from mlconnector.shipstation._common import (
    M,
    RepeatedPageError,
    body_request_id,
    error_text,
    parse_model,
)
from mlconnector.shipstation.models import (
    InventoryChange,
    InventoryLevel,
    InventoryLocation,
    InventoryWarehouse,
    V2Webhook,
    WebhookHeader,
)
from mlconnector.shipstation.webhooks import (
    PRODUCTION_V2_HOST,
    AllowList,
    WebhookDelivery,
    keys_from_jwks,
)

DEFAULT_V2_BASE_URL = "https://api.shipstation.com"
V2_LIMIT_PER_MINUTE = 200


def _parse(model: type[M], raw: Any, what: str) -> M:
    return parse_model(model, raw, what, service="ShipStation V2")


class ShipStationV2Client(ApiClient):
    """Async client for ShipStation API V2 over an injected ``httpx.AsyncClient``."""

    service = "ShipStation V2"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        clock: Clock,
        base_url: str = DEFAULT_V2_BASE_URL,
        connection: str = "default",
        limiters: RateLimiterRegistry | None = None,
        retry: RetryPolicy | None = None,
        redactor: Redactor | None = None,
        on_event: Callable[[RequestEvent], None] | None = None,
        timeout: float = 30.0,
        production: bool | None = None,
        extra_resource_bases: Iterable[str] = (),
        webhook_keys_url: str | None = None,
        next_link_bases: Iterable[str] = (),
    ) -> None:
        if not api_key:
            raise ValueError(f"ShipStation V2 connection {connection!r} needs an API key")
        redactor = redactor or Redactor()
        redactor.add(api_key)
        registry = limiters or RateLimiterRegistry(clock)
        limiter = registry.for_credential(
            httpx.URL(base_url).host, api_key, limit_per_minute=V2_LIMIT_PER_MINUTE
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
        self._api_key = api_key
        #: the signing keys (JWKS): absolute, or relative to the base URL; UNCONFIRMED default
        #: (docs/shipstation-client.md, "Unconfirmed facts")
        self.webhook_keys_url = webhook_keys_url or default_webhook_keys_url(base_url)
        if production is None:
            production = self.base_url.scheme == "https" and bool(
                PRODUCTION_V2_HOST.match(self.base_url.host)
            )
        self.allow_list = AllowList.build(
            [str(self.base_url), *extra_resource_bases],
            production_host=PRODUCTION_V2_HOST if production else None,
        )
        #: where a ``links.next.href`` may lead with the API key: the allow-list, plus the
        #: configured ``v2_next_link_bases`` (an API gateway or egress proxy)
        self.next_links = AllowList.build(
            [str(self.base_url), *next_link_bases],
            production_host=PRODUCTION_V2_HOST if production else None,
        )

    # --- ApiClient hooks ---------------------------------------------------------------------
    async def auth_headers(self) -> dict[str, str]:
        return {"API-Key": self._api_key}

    def is_own_origin(self, url: httpx.URL) -> bool:
        return self.allow_list.allows(url) or self.next_links.allows(url)

    def error_message(self, response: httpx.Response) -> str | None:
        return error_text(response)

    def request_id(self, response: httpx.Response) -> str | None:
        return body_request_id(response) or super().request_id(response)

    def classify(self, response: httpx.Response) -> ConnectorError | None:
        error = super().classify(response)
        if isinstance(error, AuthenticationError):
            host = response.request.url.host if response.request else self.base_url.host
            error.message = (
                f"ShipStation V2 refused the API key of connection {self.connection!r} at {host}"
            )
            error.hint = (
                "check the V2 API key (ShipStation: Settings → Account → API Settings); "
                "V1 key/secret pairs do not work on V2"
            )
        return error

    # --- pagination ----------------------------------------------------------------------------
    async def _iter(
        self, path: str, key: str, params: dict[str, Any], what: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Follow ``links.next.href`` (or ``page``/``pages``) until the last page.

        A page identical to an earlier one raises :class:`RepeatedPageError`.
        """
        seen: set[str] = set()
        url: str = path
        query: dict[str, Any] | None = {k: v for k, v in params.items() if v is not None}
        page = 1
        while True:
            body = await self.request_json("GET", url, params=query, record=f"{what} page {page}")
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise InvalidResponseError(f"{self.service} {path}: page {page} has no '{key}'")
            items: list[dict[str, Any]] = body[key]
            if not items:
                return
            fingerprint = repr(items)
            if fingerprint in seen:
                raise RepeatedPageError(
                    f"{self.service} {path}: page {page} repeats an earlier page; refusing to loop"
                )
            seen.add(fingerprint)
            for item in items:
                yield item
            next_href = _next_href(body)
            pages = body.get("pages")
            if next_href:
                url, query = self._checked_next(next_href, path, page), None
            elif isinstance(pages, int) and page < pages:
                query = {**(query or params), "page": page + 1}
            else:
                return
            page += 1

    def _checked_next(self, href: str, path: str, page: int) -> str:
        """The absolute next-page URL, if the API key may go there; else a ``ForeignURLError``."""
        url = self.url_for(href)
        if not self.next_links.allows(url):
            raise ForeignURLError(
                f"{self.service} {path}: page {page} links the next page to "
                f"{url.scheme}://{url.host}{url.path[:80]}, which is not an allowed address of "
                f"connection {self.connection!r}; nothing was sent there",
                hint="if an API gateway or egress proxy rewrites the links, add its https URL to "
                f"connections.{self.connection}.shipstation.v2_next_link_bases",
            )
        return str(url)

    # --- inventory -----------------------------------------------------------------------------
    async def list_inventory(
        self,
        *,
        sku: str | None = None,
        inventory_warehouse_id: str | None = None,
        inventory_location_id: str | None = None,
        group_by: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[InventoryLevel]:
        """Every inventory level matching the filters, across all pages."""
        params = {
            "sku": sku,
            "inventory_warehouse_id": inventory_warehouse_id,
            "inventory_location_id": inventory_location_id,
            "group_by": group_by,
            "limit": limit,
        }
        async for item in self._iter("/v2/inventory", "inventory", params, "inventory"):
            yield _parse(InventoryLevel, item, "inventory level")

    async def change_inventory(self, change: InventoryChange) -> None:
        """Send one inventory transaction (ShipStation answers 204 No Content)."""
        await self.request(
            "POST",
            "/v2/inventory",
            json_body=change.to_v2(),
            record=f"sku {change.sku} at {change.inventory_location_id}",
        )

    async def adjust_inventory(
        self, sku: str, inventory_location_id: str, quantity: int, **options: Any
    ) -> None:
        """Set on-hand of ``sku`` at a location to ``quantity`` (absolute)."""
        await self.change_inventory(
            InventoryChange(
                transaction_type="adjust",
                sku=sku,
                inventory_location_id=inventory_location_id,
                quantity=quantity,
                **options,
            )
        )

    async def increment_inventory(
        self, sku: str, inventory_location_id: str, quantity: int, **options: Any
    ) -> None:
        """Add ``quantity`` of ``sku`` at a location."""
        await self.change_inventory(
            InventoryChange(
                transaction_type="increment",
                sku=sku,
                inventory_location_id=inventory_location_id,
                quantity=quantity,
                **options,
            )
        )

    async def decrement_inventory(
        self, sku: str, inventory_location_id: str, quantity: int, **options: Any
    ) -> None:
        """Remove ``quantity`` of ``sku`` (all or nothing: a shortfall is a 400)."""
        await self.change_inventory(
            InventoryChange(
                transaction_type="decrement",
                sku=sku,
                inventory_location_id=inventory_location_id,
                quantity=quantity,
                **options,
            )
        )

    async def modify_inventory(
        self, sku: str, inventory_location_id: str, quantity: int, **options: Any
    ) -> None:
        """Change attributes (``new_inventory_location_id``, ``new_cost``, ``new_condition``)."""
        await self.change_inventory(
            InventoryChange(
                transaction_type="modify",
                sku=sku,
                inventory_location_id=inventory_location_id,
                quantity=quantity,
                **options,
            )
        )

    # --- inventory warehouses and locations ----------------------------------------------------
    async def list_inventory_warehouses(self) -> list[InventoryWarehouse]:
        return [
            _parse(InventoryWarehouse, item, "inventory warehouse")
            async for item in self._iter(
                "/v2/inventory_warehouses", "inventory_warehouses", {}, "inventory warehouses"
            )
        ]

    async def create_inventory_warehouse(self, name: str) -> InventoryWarehouse:
        raw = await self.request_json(
            "POST", "/v2/inventory_warehouses", json_body={"name": name}, record=f"warehouse {name}"
        )
        return _parse(InventoryWarehouse, raw, "inventory warehouse")

    async def list_inventory_locations(self) -> list[InventoryLocation]:
        return [
            _parse(InventoryLocation, item, "inventory location")
            async for item in self._iter(
                "/v2/inventory_locations", "inventory_locations", {}, "inventory locations"
            )
        ]

    async def create_inventory_location(
        self, name: str, inventory_warehouse_id: str
    ) -> InventoryLocation:
        raw = await self.request_json(
            "POST",
            "/v2/inventory_locations",
            json_body={"name": name, "inventory_warehouse_id": inventory_warehouse_id},
            record=f"location {name}",
        )
        return _parse(InventoryLocation, raw, "inventory location")

    # --- environment webhooks ------------------------------------------------------------------
    async def list_webhooks(self) -> list[V2Webhook]:
        raw = await self.request_json("GET", "/v2/environment/webhooks")
        items = raw.get("webhooks") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise InvalidResponseError("ShipStation V2 webhooks list is not a list")
        return [_parse(V2Webhook, item, "webhook") for item in items]

    async def create_webhook(
        self,
        *,
        url: str,
        event: str,
        headers: dict[str, str] | None = None,
    ) -> V2Webhook:
        """Subscribe ``url`` to ``event``; ``headers`` are sent with every delivery."""
        body: dict[str, Any] = {"url": url, "event": event}
        if headers:
            body["headers"] = [WebhookHeader(key=k, value=v).to_v2() for k, v in headers.items()]
        raw = await self.request_json("POST", "/v2/environment/webhooks", json_body=body)
        return _parse(V2Webhook, raw, "webhook")

    async def delete_webhook(self, webhook_id: str) -> None:
        await self.request(
            "DELETE", f"/v2/environment/webhooks/{webhook_id}", record=f"webhook {webhook_id}"
        )

    async def fetch_webhook_keys(self) -> dict[str, rsa.RSAPublicKey]:
        """The RSA keys that sign webhook deliveries, by key id (a JWKS-like document).

        The document is public: the API key is sent only when ``webhook_keys_url`` is one of this
        client's allowed addresses.
        """
        url = self.url_for(self.webhook_keys_url)
        raw = await self.request_json(
            "GET", str(url), authenticated=self.allow_list.allows(url), record="webhook keys"
        )
        return keys_from_jwks(raw)

    async def fetch_resource(self, delivery: WebhookDelivery) -> Any:
        """GET what a V2 delivery points at (JSON), after the allow-list check."""
        url = self.allow_list.check(delivery.resource_url)
        return await self.request_json("GET", str(url), record=f"webhook {delivery.resource_type}")


def _next_href(body: dict[str, Any]) -> str | None:
    links = body.get("links")
    if not isinstance(links, dict):
        return None
    nxt = links.get("next")
    href = nxt.get("href") if isinstance(nxt, dict) else None
    return href if isinstance(href, str) and href else None
