"""Read routes (and the release update) of the simulated Plex Connect REST API.

Lists are bare JSON arrays with no pagination; filters are those of the spec, everything else is
ignored (see :mod:`mlconnector.sandbox.plex.query`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from mlconnector.sandbox.plex.auth import Authority, CallContext
from mlconnector.sandbox.plex.errors import invalid_argument, not_found
from mlconnector.sandbox.plex.http import json_object, path_uuid, rest_route
from mlconnector.sandbox.plex.model import Customer, Order, Part, Release
from mlconnector.sandbox.plex.query import Filters, in_range, parse_plex_datetime, select


async def list_orders(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    ids, statuses, types = f.uuids("id"), f.texts("status"), f.texts("type")
    customer, number, po = f.uuid("customerId"), f.text("orderNumber"), f.text("poNumber")
    order_dates = f.date_range("orderDateBegin", "orderDateEnd")
    created = f.date_range("createdDateBegin", "createdDateEnd")
    modified = f.date_range("modifiedByDateBegin", "modifiedByDateEnd")
    found: list[Order] = select(
        ctx.data.orders.values(),
        (ids, lambda o: o.id in ids),
        (statuses, lambda o: o.status in statuses),
        (types, lambda o: o.type in types),
        (customer, lambda o: o.customer_id == customer),
        (number, lambda o: o.order_number == number),
        (po, lambda o: o.po_number == po),
        (order_dates, lambda o: in_range(o.order_date, order_dates)),
        (created, lambda o: in_range(o.created, created)),
        (modified, lambda o: in_range(o.modified, modified)),
    )
    return [ctx.data.raw(o.id, o.to_json()) for o in found]


async def get_order(ctx: CallContext, request: Request) -> dict[str, Any]:
    order = ctx.data.order(path_uuid(request))
    return ctx.data.raw(order.id, order.to_json())


async def list_order_lines(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    order = ctx.data.order(path_uuid(request))
    lines = ctx.data.order_lines(order.id)
    ordered = sorted(lines, key=lambda x: x.line_number)
    return [ctx.data.raw(line.id, line.to_json()) for line in ordered]


async def get_order_line(ctx: CallContext, request: Request) -> dict[str, Any]:
    order = ctx.data.order(path_uuid(request))
    line_id = path_uuid(request, "lineId")
    line = ctx.data.lines.get(line_id)
    if line is None or line.order_id != order.id:
        raise not_found(f"Sales order line '{line_id}'")
    return ctx.data.raw(line.id, line.to_json())


async def list_releases(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    data = ctx.data
    ident, number, line_ids = f.uuid("id"), f.text("releaseNumber"), f.uuids("orderLineIds")
    kind, status, ship_to = f.text("type"), f.text("status"), f.uuid("shipToAddressId")
    part_number = f.text("partNumber")
    ship = f.date_range("shipDateBegin", "shipDateEnd")
    due = f.date_range("dueDateBegin", "dueDateEnd")
    created = f.date_range("createdDateBegin", "createdDateEnd")
    modified = f.date_range("modifiedDateBegin", "modifiedDateEnd")
    found: list[Release] = select(
        data.releases.values(),
        (ident, lambda r: r.id == ident),
        (number, lambda r: r.release_number == number),
        (line_ids, lambda r: r.order_line_id in line_ids),
        (kind, lambda r: r.type == kind),
        (status, lambda r: r.status == status),
        (ship_to, lambda r: r.ship_to_address_id == ship_to),
        (part_number, lambda r: data.part_of_release(r).number_revision == part_number),
        (ship, lambda r: in_range(r.ship_date, ship)),
        (due, lambda r: in_range(r.due_date, due)),
        (created, lambda r: in_range(r.created, created)),
        (modified, lambda r: in_range(r.modified, modified)),
    )
    return [data.release_json(r) for r in found]


async def get_release(ctx: CallContext, request: Request) -> dict[str, Any]:
    return ctx.data.release_json(ctx.data.release(path_uuid(request)))


def _body_datetime(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    return parse_plex_datetime(name, value) if value is not None else None


def _body_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_argument(name, f"{value!r} must be a number")
    return float(value)


def _body_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid_argument(name, f"{value!r} must be a string")
    return value


async def update_release(ctx: CallContext, request: Request) -> dict[str, Any]:
    """``PUT /sales/v1/releases/{id}``: fields present in the body are changed."""
    release = ctx.data.release(path_uuid(request))
    body = await json_object(request)
    shipped = _body_number(body, "quantityShipped")
    ctx.data.edit_release(
        release,
        quantity=_body_number(body, "quantity"),
        ship_date=_body_datetime(body, "shipDate"),
        due_date=_body_datetime(body, "dueDate"),
        status=_body_text(body, "status"),
        note=_body_text(body, "note"),
        quantity_shipped=int(shipped) if shipped is not None else None,
    )
    return ctx.data.release_json(release)


async def list_customers(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    ids, code, name = f.uuids("id"), f.text("code"), f.text("name")
    status, kind = f.text("status"), f.text("type")
    modified = f.date_range("modifiedDateBegin", "modifiedDateEnd")
    found: list[Customer] = select(
        ctx.data.customers.values(),
        (ids, lambda c: c.id in ids),
        (code, lambda c: c.code == code),
        (name, lambda c: c.name == name),
        (status, lambda c: c.status == status),
        (kind, lambda c: c.type == kind),
        (modified, lambda c: in_range(c.modified, modified)),
    )
    return [c.to_json() for c in found]


def _customer(ctx: CallContext, request: Request, name: str) -> Customer:
    ident = path_uuid(request, name)
    customer = ctx.data.customers.get(ident)
    if customer is None:
        raise not_found(f"Customer '{ident}'")
    return customer


async def get_customer(ctx: CallContext, request: Request) -> dict[str, Any]:
    return _customer(ctx, request, "id").to_json()


async def list_addresses(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    customer = _customer(ctx, request, "customerId")
    f = Filters(request.query_params)
    ids, code = f.uuids("id"), f.text("code")
    ship_to, bill_to, active = f.boolean("shipTo"), f.boolean("billTo"), f.boolean("active")
    modified = f.date_range("modifiedDateBegin", "modifiedDateEnd")
    found = select(
        customer.addresses,
        (ids, lambda a: a.id in ids),
        (code, lambda a: a.code == code),
        (ship_to, lambda a: a.ship_to == ship_to),
        (bill_to, lambda a: a.bill_to == bill_to),
        (active, lambda a: a.active == active),
        (modified, lambda a: in_range(a.modified, modified)),
    )
    return [a.to_json() for a in found]


async def list_parts(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    ids, number, revision = f.uuids("id"), f.text("number"), f.text("revision")
    kind, status, source = f.text("type"), f.text("status"), f.text("source")
    found: list[Part] = select(
        ctx.data.parts.values(),
        (ids, lambda p: p.id in ids),
        (number, lambda p: p.number == number),
        (revision, lambda p: p.revision == revision),
        (kind, lambda p: p.type == kind),
        (status, lambda p: p.status == status),
        (source, lambda p: p.source == source),
    )
    return [p.to_json() for p in found]


async def get_part(ctx: CallContext, request: Request) -> dict[str, Any]:
    ident = path_uuid(request)
    part = ctx.data.parts.get(ident)
    if part is None:
        raise not_found(f"Part '{ident}'")
    return part.to_json()


async def list_inventory_parts(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    number, revision = f.text("partNumber"), f.text("partRevision")
    kind, source, status = f.text("partType"), f.text("partSource"), f.text("partStatus")
    created = f.date_range("beginCreatedDateTime", "endCreatedDateTime")
    updated = f.date_range("beginUpdatedDateTime", "endUpdatedDateTime")
    found: list[Part] = select(
        ctx.data.parts.values(),
        (number, lambda p: p.number == number),
        (revision, lambda p: p.revision == revision),
        (kind, lambda p: p.type == kind),
        (source, lambda p: p.source == source),
        (status, lambda p: p.status == status),
        (created, lambda p: in_range(p.created, created)),
        (updated, lambda p: in_range(p.modified, updated)),
    )
    return [p.to_inventory_json() for p in found]


async def list_locations(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    f = Filters(request.query_params)
    ident, code, kind = f.uuid("locationId"), f.text("locationCode"), f.text("locationTypeFlag")
    found = select(
        ctx.data.locations.values(),
        (ident, lambda loc: loc.id == ident),
        (code, lambda loc: loc.code == code),
        (kind, lambda loc: loc.type == kind),
    )
    return [loc.to_json() for loc in found]


async def list_containers(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    """Active containers (quantity > 0) in any status; on-hand is the client's sum."""
    data = ctx.data
    f = Filters(request.query_params)
    part, location = f.uuid("partId"), f.uuid("locationId")
    found = select(
        data.active_containers(),
        (part, lambda c: c.part_id == part),
        (location, lambda c: c.location_id == location),
    )
    return [
        data.raw(c.serial_no, c.to_json(data.parts[c.part_id], data.locations[c.location_id]))
        for c in found
    ]


async def get_container(ctx: CallContext, request: Request) -> dict[str, Any]:
    data = ctx.data
    serial_no = str(request.path_params["serialNo"])
    container = data.containers.get(serial_no)
    if container is None:
        raise not_found(f"Container '{serial_no}'")
    payload = container.to_json(
        data.parts[container.part_id], data.locations[container.location_id]
    )
    return data.raw(serial_no, payload)


async def list_tenants(ctx: CallContext, request: Request) -> list[dict[str, Any]]:
    """The tenants the calling app may address."""
    f = Filters(request.query_params)
    ids, code, codes = f.uuids("idList"), f.text("code"), f.texts("codeList")
    visible = [t.tenant for t in ctx.data_all() if t.tenant.id in ctx.app.tenant_ids]
    found = select(
        visible,
        (ids, lambda t: t.id in ids),
        (code, lambda t: t.code == code),
        (codes, lambda t: t.code in codes),
    )
    return [t.to_json() for t in found]


async def get_tenant(ctx: CallContext, request: Request) -> dict[str, Any]:
    ident = path_uuid(request)
    for data in ctx.data_all():
        if data.tenant.id == ident and ident in ctx.app.tenant_ids:
            return data.tenant.to_json()
    raise not_found(f"Tenant '{ident}'")


def rest_routes(authority: Authority) -> list[Route]:
    """Routes of the sales, master-data and inventory read APIs."""

    def r(path: str, handler: Any, product: str, permission: str, method: str = "GET") -> Route:
        return rest_route(
            authority, path, handler, product=product, permission=permission, method=method
        )

    sales, common, inv = "Sales Orders", "Common APIs", "Inventory"
    return [
        r("/sales/v1/orders", list_orders, sales, "sales.orders.read"),
        r("/sales/v1/orders/{id}", get_order, sales, "sales.orders.read"),
        r("/sales/v1/orders/{id}/lines", list_order_lines, sales, "sales.orders.read"),
        r("/sales/v1/orders/{id}/lines/{lineId}", get_order_line, sales, "sales.orders.read"),
        r("/sales/v1/releases", list_releases, sales, "sales.releases.read"),
        r("/sales/v1/releases/{id}", get_release, sales, "sales.releases.read"),
        r("/sales/v1/releases/{id}", update_release, sales, "sales.releases.write", "PUT"),
        r("/mdm/v1/customers", list_customers, common, "mdm.read"),
        r("/mdm/v1/customers/{id}", get_customer, common, "mdm.read"),
        r("/mdm/v1/customers/{customerId}/addresses", list_addresses, common, "mdm.read"),
        r("/mdm/v1/parts", list_parts, common, "mdm.read"),
        r("/mdm/v1/parts/{id}", get_part, common, "mdm.read"),
        r("/mdm/v1/tenants", list_tenants, common, "mdm.read"),
        r("/mdm/v1/tenants/{id}", get_tenant, common, "mdm.read"),
        r("/inventory/v1/inventory-definitions/parts", list_inventory_parts, inv, "inventory.read"),
        r("/inventory/v1/inventory-definitions/locations", list_locations, inv, "inventory.read"),
        r("/inventory/v1/inventory-tracking/containers", list_containers, inv, "inventory.read"),
        r(
            "/inventory/v1/inventory-tracking/containers/{serialNo}",
            get_container,
            inv,
            "inventory.read",
        ),
    ]
