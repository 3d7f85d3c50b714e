"""Customer shippers (``shipping/v1`` reads, ``v1-beta1`` writes) and inventory shipments.

Customer shipper flow: create → schedule-releases → load-fifo / load-container → ship. Shipping
takes the loaded quantity out of the containers and adds each line's quantity to its release's
``quantityShipped``. Inventory shipment flow: create (v1) → stage containers → ship (v1-beta1),
which empties the staged containers; unship (restores them) and unstage (v1-beta1) reverse it.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from mlconnector.sandbox.plex.auth import Authority, CallContext
from mlconnector.sandbox.plex.errors import invalid_argument, not_found, validation_failed
from mlconnector.sandbox.plex.http import json_object, path_uuid, rest_route
from mlconnector.sandbox.plex.model import SHIPPER_WRITABLE, InventoryShipment, Shipper, ts
from mlconnector.sandbox.plex.query import Filters, in_range, parse_plex_datetime, select

_DATETIME_FIELDS = {"scheduledShipDate"}
_NUMBER_FIELDS = {"freightAmount"}
_INT_FIELDS = {"pallets"}
_UUID_FIELDS = {"carrierId"}


def shipper_fields(body: dict[str, Any]) -> dict[str, object]:
    """Writable shipper fields present in ``body``, typed, as attribute names; others ignored."""
    fields: dict[str, object] = {}
    for name, attr in SHIPPER_WRITABLE.items():
        if name not in body:
            continue
        value = body[name]
        if value is None:
            fields[attr] = None
        elif name in _DATETIME_FIELDS:
            fields[attr] = parse_plex_datetime(name, value)
        elif name in _NUMBER_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid_argument(name, f"{value!r} must be a number")
            fields[attr] = float(value)
        elif name in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise invalid_argument(name, f"{value!r} must be an integer")
            fields[attr] = value
        elif name in _UUID_FIELDS:
            fields[attr] = _uuid_value(name, value)
        else:
            if not isinstance(value, str):
                raise invalid_argument(name, f"{value!r} must be a string")
            fields[attr] = value
    return fields


def _uuid_value(name: str, value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise invalid_argument(name, f"{value!r} is not a valid UUID") from None


async def list_shippers(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    ids, number, customer = f.uuids("id"), f.text("shipperNumber"), f.uuid("customerId")
    address, status, tracking = (
        f.uuid("customerAddressId"),
        f.text("status"),
        f.text("trackingNumber"),
    )
    ship = f.date_range("shipDateBegin", "shipDateEnd")
    created = f.date_range("createdDateBegin", "createdDateEnd")
    modified = f.date_range("modifiedDateBegin", "modifiedDateEnd")
    found: list[Shipper] = select(
        ctx.data.shippers.values(),
        (ids, lambda s: s.id in ids),
        (number, lambda s: s.shipper_number == number),
        (customer, lambda s: s.customer_id == customer),
        (address, lambda s: s.customer_address_id == address),
        (status, lambda s: s.status == status),
        (tracking, lambda s: s.tracking_number == tracking),
        (ship, lambda s: in_range(s.ship_date, ship)),
        (created, lambda s: in_range(s.created, created)),
        (modified, lambda s: in_range(s.modified, modified)),
    )
    return [s.to_json() for s in found]


async def get_shipper(ctx: CallContext, request: Request) -> dict[str, Any]:
    return ctx.data.shipper(path_uuid(request)).to_json()


async def list_shipper_lines(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    shipper = ctx.data.shipper(path_uuid(request, "shipperId"))
    ids = Filters(request.query_params).uuids("id")
    return [line.to_json() for line in select(shipper.lines, (ids, lambda x: x.id in ids))]


async def get_shipper_line(ctx: CallContext, request: Request) -> dict[str, Any]:
    shipper = ctx.data.shipper(path_uuid(request, "shipperId"))
    line_id = path_uuid(request, "lineId")
    line = next((x for x in shipper.lines if x.id == line_id), None)
    if line is None:
        raise not_found(f"Shipper line '{line_id}'")
    return line.to_json()


async def list_line_containers(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    shipper = ctx.data.shipper(path_uuid(request))
    line_id = path_uuid(request, "lineId")
    line = next((x for x in shipper.lines if x.id == line_id), None)
    if line is None:
        raise not_found(f"Shipper line '{line_id}'")
    return [
        {
            "releaseId": line.release_id,
            "serialNumber": item.serial_no,
            "quantity": item.quantity,
            "loadedDate": ts(item.loaded),
        }
        for item in line.loaded
    ]


async def create_shipper(ctx: CallContext, request: Request) -> dict[str, Any]:
    body = await json_object(request)
    customer_id, address_id = body.get("customerId"), body.get("customerAddressId")
    if not customer_id or not address_id:
        raise validation_failed("customerId and customerAddressId are required")
    return ctx.data.create_shipper(
        _uuid_value("customerId", customer_id),
        _uuid_value("customerAddressId", address_id),
        shipper_fields(body),
    ).to_json()


async def update_shipper(ctx: CallContext, request: Request) -> dict[str, Any]:
    shipper = ctx.data.shipper(path_uuid(request))
    body = await json_object(request)
    return ctx.data.update_shipper(shipper, shipper_fields(body)).to_json()


async def schedule_releases(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    shipper = ctx.data.shipper(path_uuid(request))
    body = await json_object(request)
    release_id = body.get("releaseId")
    if not release_id:
        raise validation_failed("releaseId is required")
    force = body.get("forceNewLine", False)
    if not isinstance(force, bool):
        raise invalid_argument("forceNewLine", f"{force!r} must be true or false")
    line = ctx.data.schedule_release(shipper, _uuid_value("releaseId", release_id), force)
    return [{"releaseId": line.release_id, "shipperId": shipper.id, "shipperLineId": line.id}]


async def load_fifo(ctx: CallContext, request: Request) -> dict[str, Any]:
    shipper = ctx.data.shipper(path_uuid(request, "shipperId"))
    return ctx.data.load_fifo(shipper, path_uuid(request, "lineId")).to_json()


async def load_container(ctx: CallContext, request: Request) -> dict[str, Any]:
    shipper = ctx.data.shipper(path_uuid(request, "shipperId"))
    body = await json_object(request)
    serial_no = body.get("serialNo")
    if not isinstance(serial_no, str) or not serial_no:
        raise validation_failed("serialNo is required")
    container = ctx.data.load_container(shipper, path_uuid(request, "lineId"), serial_no)
    return {
        "serialNo": container.serial_no,
        "containerType": container.container_type,
        "weightUnit": "lb",
        "hazardous": False,
    }


async def ship_shipper(ctx: CallContext, request: Request) -> dict[str, Any]:
    shipper = ctx.data.shipper(path_uuid(request, "shipperId"))
    return ctx.data.ship_shipper(shipper).to_json()


def _inventory_shipment(ctx: CallContext, request: Request) -> InventoryShipment:
    ident = path_uuid(request)
    shipment = ctx.data.inventory_shipments.get(ident)
    if shipment is None:
        raise not_found(f"Inventory shipment '{ident}'")
    return shipment


async def list_inventory_shipments(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    code, status = f.text("externalShipmentCode"), f.text("shipmentStatus")
    found = select(
        ctx.data.inventory_shipments.values(),
        (code, lambda s: s.external_code == code),
        (status, lambda s: s.status == status),
    )
    return [s.to_json() for s in found]


async def get_inventory_shipment(ctx: CallContext, request: Request) -> dict[str, Any]:
    return _inventory_shipment(ctx, request).to_json()


async def create_inventory_shipment(ctx: CallContext, request: Request) -> dict[str, Any]:
    body = await json_object(request)
    code = body.get("externalShipmentCode")
    if not isinstance(code, str):
        raise validation_failed("externalShipmentCode is required")
    return ctx.data.create_inventory_shipment(code).to_json()


async def stage_inventory(ctx: CallContext, request: Request) -> dict[str, Any]:
    shipment = _inventory_shipment(ctx, request)
    body = await json_object(request)
    serials = body.get("serialNos")
    if not isinstance(serials, list) or not serials or not all(isinstance(s, str) for s in serials):
        raise validation_failed("serialNos must be a non-empty list of serial numbers")
    return ctx.data.stage(shipment, serials).to_json()


async def ship_inventory(ctx: CallContext, request: Request) -> dict[str, Any]:
    return ctx.data.ship_inventory(_inventory_shipment(ctx, request)).to_json()


async def unship_inventory(ctx: CallContext, request: Request) -> dict[str, Any]:
    return ctx.data.unship_inventory(_inventory_shipment(ctx, request)).to_json()


async def unstage_inventory(ctx: CallContext, request: Request) -> dict[str, Any]:
    shipment = _inventory_shipment(ctx, request)
    body = await json_object(request)
    serials = body.get("serialNos")
    if not isinstance(serials, list) or not serials or not all(isinstance(s, str) for s in serials):
        raise validation_failed("serialNos must be a non-empty list of serial numbers")
    return ctx.data.unstage(shipment, serials).to_json()


def shipping_routes(authority: Authority) -> list[Route]:
    """Routes of the customer shipper and inventory shipment APIs."""
    shippers, shipments = "Customer Shippers", "Inventory Shipments"
    read, write = "shipping.shippers.read", "shipping.shippers.write"
    base, beta = "/shipping/v1/customer-shippers", "/shipping/v1-beta1/customer-shippers"
    inv, inv_beta = (
        "/inventory/v1/inventory-shipping/shipments",
        "/inventory/v1-beta1/inventory-shipping/shipments",
    )
    spec: list[tuple[str, Any, str, str, str, int]] = [
        (base, list_shippers, shippers, read, "GET", 200),
        (f"{base}/{{id}}", get_shipper, shippers, read, "GET", 200),
        (f"{base}/{{shipperId}}/lines", list_shipper_lines, shippers, read, "GET", 200),
        (f"{base}/{{shipperId}}/lines/{{lineId}}", get_shipper_line, shippers, read, "GET", 200),
        (
            f"{base}/{{id}}/lines/{{lineId}}/containers",
            list_line_containers,
            shippers,
            read,
            "GET",
            200,
        ),
        (beta, create_shipper, shippers, write, "POST", 201),
        (f"{beta}/{{id}}", update_shipper, shippers, write, "PUT", 200),
        (f"{beta}/{{id}}/schedule-releases", schedule_releases, shippers, write, "POST", 200),
        (
            f"{beta}/{{shipperId}}/lines/{{lineId}}/load-fifo",
            load_fifo,
            shippers,
            write,
            "POST",
            200,
        ),
        (
            f"{beta}/{{shipperId}}/lines/{{lineId}}/load-container",
            load_container,
            shippers,
            write,
            "POST",
            200,
        ),
        (f"{beta}/{{shipperId}}/ship", ship_shipper, shippers, write, "POST", 200),
        (inv, list_inventory_shipments, shipments, "inventory.shipments.read", "GET", 200),
        (
            f"{inv}/{{id}}",
            get_inventory_shipment,
            shipments,
            "inventory.shipments.read",
            "GET",
            200,
        ),
        (inv, create_inventory_shipment, shipments, "inventory.shipments.write", "POST", 201),
        (
            f"{inv_beta}/{{id}}/stage",
            stage_inventory,
            shipments,
            "inventory.shipments.write",
            "POST",
            202,
        ),
        (
            f"{inv_beta}/{{id}}/ship",
            ship_inventory,
            shipments,
            "inventory.shipments.write",
            "POST",
            202,
        ),
        (
            f"{inv_beta}/{{id}}/unship",
            unship_inventory,
            shipments,
            "inventory.shipments.write",
            "POST",
            202,
        ),
        (
            f"{inv_beta}/{{id}}/unstage",
            unstage_inventory,
            shipments,
            "inventory.shipments.write",
            "POST",
            202,
        ),
    ]
    return [
        rest_route(
            authority, path, handler, product=product, permission=perm, method=method, status=status
        )
        for path, handler, product, perm, method, status in spec
    ]
