"""Operator surface over HTTP under ``/_operator/`` (never disturbed by fault injection).

Every route takes ``?tenant=<id|pcn|code>`` (default: the first tenant) and JSON bodies with the
REST field names. Errors are ``{code, message, errors}`` like the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlconnector.sandbox.plex.errors import PlexApiError, validation_failed
from mlconnector.sandbox.plex.http import json_object
from mlconnector.sandbox.plex.query import parse_plex_datetime

if TYPE_CHECKING:
    from datetime import datetime

    from mlconnector.sandbox.plex.sandbox import PlexSandbox

OperatorHandler = Callable[[Request], Awaitable[Any]]


def _wrap(handler: OperatorHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except PlexApiError as exc:
            return exc.response()
        except (KeyError, ValueError, TypeError) as exc:
            # operator input is loosely typed; a bad value is the caller's error, not a crash
            return validation_failed(f"{type(exc).__name__}: {exc}").response()
        return JSONResponse(result)

    return endpoint


def _datetime(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    return parse_plex_datetime(name, value)


def operator_routes(sandbox: PlexSandbox) -> list[Route]:
    """Routes to edit and inspect the simulator's state and its faults."""
    from mlconnector.sandbox.plex.sandbox import LinePlan, ReleasePlan

    def tenant(request: Request) -> str | None:
        return request.query_params.get("tenant")

    async def credentials(request: Request) -> Any:
        return sandbox.credentials()

    async def edit_release(request: Request) -> Any:
        body = await json_object(request)
        ref = tenant(request)
        release = sandbox.edit_release(
            request.path_params["id"],
            quantity=body.get("quantity"),
            ship_date=_datetime(body, "shipDate"),
            due_date=_datetime(body, "dueDate"),
            status=body.get("status"),
            tenant=ref,
        )
        return sandbox.tenant(ref).release_json(release)

    async def get_release(request: Request) -> Any:
        data = sandbox.tenant(tenant(request))
        return data.release_json(data.release(request.path_params["id"]))

    async def cancel_order(request: Request) -> Any:
        return sandbox.cancel_order(request.path_params["id"], tenant=tenant(request)).to_json()

    async def order_status(request: Request) -> Any:
        body = await json_object(request)
        status = body.get("status")
        if not isinstance(status, str):
            raise validation_failed("status is required")
        return sandbox.set_order_status(
            request.path_params["id"], status, tenant=tenant(request)
        ).to_json()

    async def add_order(request: Request) -> Any:
        body = await json_object(request)
        lines = None
        if body.get("lines"):
            lines = [
                LinePlan(
                    line["partId"],
                    [
                        ReleasePlan(
                            float(r["quantity"]), _datetime(r, "shipDate") or sandbox.clock.now()
                        )
                        for r in line["releases"]
                    ],
                )
                for line in body["lines"]
            ]
        order = sandbox.add_order(
            body.get("customerId"), lines, po_number=body.get("poNumber"), tenant=tenant(request)
        )
        data = sandbox.tenant(tenant(request))
        return {
            **order.to_json(),
            "releases": [data.release_json(r) for r in data.releases_of_order(order)],
        }

    async def adjust_container(request: Request) -> Any:
        body = await json_object(request)
        container = sandbox.adjust_container(
            request.path_params["serialNo"],
            quantity=body.get("quantity"),
            status=body.get("status"),
            tenant=tenant(request),
        )
        return {
            "serialNo": container.serial_no,
            "quantity": container.quantity,
            "containerStatus": container.status,
        }

    async def add_container(request: Request) -> Any:
        body = await json_object(request)
        container = sandbox.add_container(
            body["partId"], body["locationId"], float(body["quantity"]), tenant=tenant(request)
        )
        return {"serialNo": container.serial_no, "quantity": container.quantity}

    async def split_container(request: Request) -> Any:
        body = await json_object(request)
        quantity = body.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int | float):
            raise validation_failed("quantity must be a number")
        split = sandbox.split_container(
            request.path_params["serialNo"], float(quantity), tenant=tenant(request)
        )
        return {"serialNo": split.serial_no, "quantity": split.quantity}

    async def on_hand(request: Request) -> Any:
        data = sandbox.tenant(tenant(request))
        part_id = request.query_params.get("partId")
        location_id = request.query_params.get("locationId")
        parts = [part_id] if part_id else list(data.parts)
        return [
            {"partId": p, "locationId": location_id, "onHand": data.on_hand(p, location_id)}
            for p in parts
        ]

    async def shippers(request: Request) -> Any:
        return [
            {**s.to_json(), "lines": [line.to_json() for line in s.lines]}
            for s in sandbox.shippers(tenant=tenant(request))
        ]

    async def faults(request: Request) -> Any:
        if request.method == "POST":
            sandbox.faults.configure(**(await json_object(request)))
        return asdict(sandbox.faults.config)

    async def app_settings(request: Request) -> Any:
        body = await json_object(request)
        key = request.path_params["key"]
        if "products" in body:
            sandbox.set_products(body["products"], app=key)
        if "permissions" in body:
            app = sandbox.authority.app(key)
            app.permissions = set(body["permissions"])
        if "emptyListNotFound" in body:
            sandbox.set_empty_list_not_found(bool(body["emptyListNotFound"]))
        if "rateLimit" in body:
            sandbox.set_rate_limit(int(body["rateLimit"]), app=key)
        app = sandbox.authority.app(key)
        return {
            "products": sorted(app.products),
            "permissions": sorted(app.permissions),
            "rateLimit": app.rate_limit,
        }

    async def expire_tokens(request: Request) -> Any:
        sandbox.expire_tokens()
        return {"expired": len(sandbox.authority.tokens)}

    async def datasource_settings(request: Request) -> Any:
        body = await json_object(request)
        ds_id = int(request.path_params["id"])
        sandbox.set_row_limit(ds_id, body.get("rowLimit"))
        return {"id": ds_id, "rowLimit": sandbox.datasources.datasources[ds_id].row_limit}

    async def raw_fields(request: Request) -> Any:
        record_id = str(request.path_params["id"])
        if request.method == "DELETE":
            sandbox.clear_raw_fields(record_id, tenant=tenant(request))
            return {"id": record_id, "fields": {}}
        body = await json_object(request)
        name = body.get("field")
        if not isinstance(name, str) or not name or "value" not in body:
            raise validation_failed("field (text) and value are required")
        fields = sandbox.set_raw_field(record_id, name, body["value"], tenant=tenant(request))
        return {"id": record_id, "fields": fields}

    spec: list[tuple[str, OperatorHandler, list[str]]] = [
        ("/_operator/credentials", credentials, ["GET"]),
        ("/_operator/releases/{id}", get_release, ["GET"]),
        ("/_operator/releases/{id}", edit_release, ["POST"]),
        ("/_operator/orders", add_order, ["POST"]),
        ("/_operator/orders/{id}/cancel", cancel_order, ["POST"]),
        ("/_operator/orders/{id}/status", order_status, ["POST"]),
        ("/_operator/containers", add_container, ["POST"]),
        ("/_operator/containers/{serialNo}", adjust_container, ["POST"]),
        ("/_operator/containers/{serialNo}/split", split_container, ["POST"]),
        ("/_operator/on-hand", on_hand, ["GET"]),
        ("/_operator/shippers", shippers, ["GET"]),
        ("/_operator/faults", faults, ["GET", "POST"]),
        ("/_operator/apps/{key}", app_settings, ["POST"]),
        ("/_operator/tokens/expire", expire_tokens, ["POST"]),
        ("/_operator/datasources/{id}", datasource_settings, ["POST"]),
        ("/_operator/raw/{id}", raw_fields, ["POST", "DELETE"]),
    ]
    return [Route(path, _wrap(handler), methods=methods) for path, handler, methods in spec]
