"""V2 routes under ``/v2`` (``https://api.shipstation.com`` shape): ``API-Key`` header, 200/min.

Every error is the spec's ``error_response_body``
(``{request_id, errors: [{error_source, error_type, error_code, message}]}``); a 429 carries
``Retry-After`` (seconds). Datetimes are ISO-8601 UTC with ``Z``. The JWKS for webhook signatures
is served without authentication at :data:`~.webhooks.JWKS_PATH`.
"""

from __future__ import annotations

import hmac
import itertools
import json
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlconnector.timezones import format_iso_utc

from .inventory import V2Problem, render_v2_webhook
from .models import InventoryLocation, InventoryWarehouse, JsonDict
from .webhooks import JWKS_PATH

if TYPE_CHECKING:
    from .app import ShipStationSandbox

Handler = Callable[[Request], Awaitable[Any]]
DEFAULT_LIMIT = 25  # V2 lists default to 25 rows a page (paged_list_response_body)


class V2Api:
    """The V2 endpoints bound to one sandbox."""

    def __init__(self, sandbox: ShipStationSandbox) -> None:
        self.sb = sandbox
        self.inv = sandbox.inventory
        self._request_ids = itertools.count(1)

    def routes(self) -> list[Route]:
        """Starlette routes for ``/v2/...`` and the JWKS."""
        w = self._wrap
        base = "/v2/environment/webhooks"
        return [
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route("/v2/inventory", w(self.list_inventory), methods=["GET"]),
            Route("/v2/inventory", w(self.update_inventory), methods=["POST"]),
            Route("/v2/inventory_warehouses", w(self.list_warehouses), methods=["GET"]),
            Route("/v2/inventory_warehouses", w(self.add_warehouse), methods=["POST"]),
            Route("/v2/inventory_warehouses/{id}", w(self.get_warehouse), methods=["GET"]),
            Route("/v2/inventory_locations", w(self.list_locations), methods=["GET"]),
            Route("/v2/inventory_locations", w(self.add_location), methods=["POST"]),
            Route("/v2/inventory_locations/{id}", w(self.get_location), methods=["GET"]),
            Route(base, w(self.list_webhooks), methods=["GET"]),
            Route(base, w(self.create_webhook), methods=["POST"]),
            Route(base + "/{id}", w(self.get_webhook), methods=["GET"]),
            Route(base + "/{id}", w(self.update_webhook), methods=["PUT"]),
            Route(base + "/{id}", w(self.delete_webhook), methods=["DELETE"]),
            Route(
                "/v2/{rest:path}",
                w(self.not_found),
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]

    # -- errors, auth, budget

    def error(self, problem: V2Problem, headers: dict[str, str] | None = None) -> JSONResponse:
        """The spec's error body for ``problem``."""
        request_id = str(uuid.UUID(int=(0x2E << 96) + next(self._request_ids)))
        body = {
            "request_id": request_id,
            "errors": [
                {
                    "error_source": "ShipStation",
                    "error_type": problem.error_type,
                    "error_code": problem.error_code,
                    "message": problem.message,
                }
            ],
        }
        return JSONResponse(body, problem.status, headers=headers)

    def _api_key(self, request: Request) -> str | None:
        presented = request.headers.get("api-key", "")
        for account in self.sb.accounts:
            if account.v2_api_key and hmac.compare_digest(
                presented.encode(), account.v2_api_key.encode()
            ):
                return account.v2_api_key
        return None

    def _wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            key = self._api_key(request)
            if key is None:
                return self.error(
                    V2Problem(
                        401,
                        "security",
                        "unauthorized",
                        "The API key is invalid. Send it in the API-Key header.",
                    )
                )
            verdict = self.sb.v2_limiter.hit(key)
            if not verdict.allowed:
                return self.error(
                    V2Problem(
                        429,
                        "system",
                        "rate_limit_exceeded",
                        "You have exceeded the rate limit. Retry after the given seconds.",
                    ),
                    headers={"Retry-After": str(verdict.reset)},
                )
            try:
                result = await handler(request)
            except V2Problem as problem:
                return self.error(problem)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    async def _body(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise V2Problem(
                400, "validation", "request_body_required", "The request body is not valid JSON."
            ) from exc

    def _paged(self, request: Request, key: str, rows: list[JsonDict]) -> JsonDict:
        limit = _int_param(request, "limit", DEFAULT_LIMIT)
        page = _int_param(request, "page", 1)
        if limit < 1 or page < 1:
            raise V2Problem(
                400, "validation", "invalid_field_value", "limit and page must be 1 or more"
            )
        total = len(rows)
        pages = math.ceil(total / limit)
        base = f"{self.sb.public_url}{request.url.path}"
        params = {k: v for k, v in request.query_params.items() if k != "page"}

        def href(n: int) -> dict[str, str]:
            return {"href": f"{base}?{urlencode({**params, 'page': n})}"}

        links: JsonDict = {"first": href(1), "last": href(max(pages, 1))}
        if page > 1:
            links["prev"] = href(page - 1)
        if page < pages:
            links["next"] = href(page + 1)
        chunk = rows[(page - 1) * limit : page * limit]
        return {key: chunk, "total": total, "page": page, "pages": pages, "links": links}

    # -- JWKS

    async def jwks(self, request: Request) -> Response:
        """The public key(s) that verify V2 webhook signatures."""
        return JSONResponse(self.sb.signer.jwks())

    async def not_found(self, request: Request) -> JsonDict:
        """Anything under /v2 that the simulator does not serve."""
        raise V2Problem(
            404,
            "validation",
            "invalid_identifier",
            f"{request.method} {request.url.path} is not served by the simulator",
        )

    # -- inventory

    async def list_inventory(self, request: Request) -> JsonDict:
        """``GET /v2/inventory``."""
        q = request.query_params
        group_by = q.get("group_by")
        if group_by not in (None, "warehouse", "location"):
            raise V2Problem(
                400, "validation", "invalid_field_value", "group_by must be warehouse or location"
            )
        rows = self.inv.render_levels(
            q.get("sku"), q.get("inventory_warehouse_id"), q.get("inventory_location_id"), group_by
        )
        return self._paged(request, "inventory", rows)

    async def update_inventory(self, request: Request) -> Response:
        """``POST /v2/inventory``: 204 on success, 400 (nothing changed) otherwise."""
        self.inv.apply(await self._body(request))
        return Response(status_code=204)

    async def list_warehouses(self, request: Request) -> JsonDict:
        """``GET /v2/inventory_warehouses``."""
        rows = [_warehouse(w) for w in self.inv.warehouses.values()]
        return self._paged(request, "inventory_warehouses", rows)

    async def add_warehouse(self, request: Request) -> JsonDict:
        """``POST /v2/inventory_warehouses``."""
        body = await self._body(request)
        return _warehouse(
            self.inv.add_warehouse(body.get("name") if isinstance(body, dict) else None)
        )

    async def get_warehouse(self, request: Request) -> JsonDict:
        """``GET /v2/inventory_warehouses/{id}``."""
        found = self.inv.warehouses.get(request.path_params["id"])
        if found is None:
            raise V2Problem(
                404, "validation", "invalid_identifier", "inventory warehouse not found"
            )
        return _warehouse(found)

    async def list_locations(self, request: Request) -> JsonDict:
        """``GET /v2/inventory_locations``."""
        rows = [_location(loc) for loc in self.inv.locations.values()]
        return self._paged(request, "inventory_locations", rows)

    async def add_location(self, request: Request) -> JsonDict:
        """``POST /v2/inventory_locations``."""
        body = await self._body(request)
        if not isinstance(body, dict):
            body = {}
        return _location(
            self.inv.add_location(body.get("name"), body.get("inventory_warehouse_id"))
        )

    async def get_location(self, request: Request) -> JsonDict:
        """``GET /v2/inventory_locations/{id}``."""
        found = self.inv.locations.get(request.path_params["id"])
        if found is None:
            raise V2Problem(404, "validation", "invalid_identifier", "inventory location not found")
        return _location(found)

    # -- environment webhooks

    async def list_webhooks(self, request: Request) -> list[JsonDict]:
        """``GET /v2/environment/webhooks`` (a bare array)."""
        return [render_v2_webhook(h) for h in self.inv.webhooks.values()]

    async def create_webhook(self, request: Request) -> JsonDict:
        """``POST /v2/environment/webhooks``."""
        return render_v2_webhook(self.inv.add_webhook(await self._body(request)))

    async def get_webhook(self, request: Request) -> JsonDict:
        """``GET /v2/environment/webhooks/{id}``."""
        return render_v2_webhook(self.inv.webhook(request.path_params["id"]))

    async def update_webhook(self, request: Request) -> Response:
        """``PUT /v2/environment/webhooks/{id}`` → 204."""
        self.inv.update_webhook(request.path_params["id"], await self._body(request))
        return Response(status_code=204)

    async def delete_webhook(self, request: Request) -> Response:
        """``DELETE /v2/environment/webhooks/{id}`` → 204."""
        hook = self.inv.webhook(request.path_params["id"])
        del self.inv.webhooks[hook.webhook_id]
        return Response(status_code=204)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise V2Problem(
            400, "validation", "invalid_field_value", f"{name} must be a whole number, not {raw!r}"
        ) from exc


def _warehouse(w: InventoryWarehouse) -> JsonDict:
    return {
        "inventory_warehouse_id": w.inventory_warehouse_id,
        "name": w.name,
        "created_at": format_iso_utc(w.created_at),
        "updated_at": format_iso_utc(w.updated_at),
    }


def _location(loc: InventoryLocation) -> JsonDict:
    return {
        "inventory_location_id": loc.inventory_location_id,
        "name": loc.name,
        "inventory_warehouse_id": loc.inventory_warehouse_id,
        "created_at": format_iso_utc(loc.created_at),
        "updated_at": format_iso_utc(loc.updated_at),
    }
