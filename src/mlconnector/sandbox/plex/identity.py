"""The Id Conversion API: REST UUIDs ⇄ datasource integer keys.

``POST /platform/identity-mappings/v1/ids-to-keys`` ``{standardObjectName, ids}`` and
``…/keys-to-ids`` ``{standardObjectName, recordIdentifiers:[{<key column>: n}]}``, both answering
``{standardObject:{name, keys}, recordIdentifiers:[{<key column>: n, "Id": uuid}]}``; unknown ids or
keys are left out; at most 5000 records per call. The standard object names are the simulator's
choice (Plex's list is not public): ``Shipper``, ``SalesOrder``, ``SalesOrderLine``,
``SalesRelease``, ``Part``, ``Customer``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from mlconnector.sandbox.plex.auth import Authority, CallContext
from mlconnector.sandbox.plex.errors import validation_failed
from mlconnector.sandbox.plex.http import json_object, rest_route
from mlconnector.sandbox.plex.state import TenantData

MAX_RECORDS = 5000

_OBJECTS: dict[str, tuple[str, Callable[[TenantData], Iterable[Any]]]] = {
    "Shipper": ("Shipper_Key", lambda d: d.shippers.values()),
    "SalesOrder": ("PO_Key", lambda d: d.orders.values()),
    "SalesOrderLine": ("PO_Line_Key", lambda d: d.lines.values()),
    "SalesRelease": ("Release_Key", lambda d: d.releases.values()),
    "Part": ("Part_Key", lambda d: d.parts.values()),
    "Customer": ("Customer_No", lambda d: d.customers.values()),
}


def _object(body: dict[str, Any]) -> tuple[str, str]:
    name = body.get("standardObjectName")
    if name not in _OBJECTS:
        raise validation_failed(
            f"standardObjectName must be one of {', '.join(sorted(_OBJECTS))}, got {name!r}"
        )
    return name, _OBJECTS[name][0]


async def ids_to_keys(ctx: CallContext, request: Request) -> dict[str, Any]:
    body = await json_object(request)
    name, key_name = _object(body)
    ids = body.get("ids")
    if not isinstance(ids, list) or len(ids) > MAX_RECORDS:
        raise validation_failed(f"ids must be a list of at most {MAX_RECORDS} UUIDs")
    by_id = {r.id: r for r in _OBJECTS[name][1](ctx.data)}
    found = []
    for raw in ids:
        try:
            ident = str(uuid.UUID(str(raw)))
        except ValueError:
            raise validation_failed(f"{raw!r} is not a UUID") from None
        if ident in by_id:
            found.append({key_name: by_id[ident].key, "Id": ident})
    return {"standardObject": {"name": name, "keys": [key_name]}, "recordIdentifiers": found}


async def keys_to_ids(ctx: CallContext, request: Request) -> dict[str, Any]:
    body = await json_object(request)
    name, key_name = _object(body)
    wanted = body.get("recordIdentifiers")
    if not isinstance(wanted, list) or len(wanted) > MAX_RECORDS:
        raise validation_failed(f"recordIdentifiers must be a list of at most {MAX_RECORDS}")
    by_key = {r.key: r for r in _OBJECTS[name][1](ctx.data)}
    found = []
    for item in wanted:
        if not isinstance(item, dict) or not isinstance(item.get(key_name), int):
            raise validation_failed(f"each record identifier needs an integer {key_name}")
        record = by_key.get(item[key_name])
        if record is not None:
            found.append({key_name: record.key, "Id": record.id})
    return {"standardObject": {"name": name, "keys": [key_name]}, "recordIdentifiers": found}


def identity_routes(authority: Authority) -> list[Route]:
    base = "/platform/identity-mappings/v1"
    return [
        rest_route(
            authority,
            f"{base}/ids-to-keys",
            ids_to_keys,
            product="Common APIs",
            permission="mdm.read",
            method="POST",
        ),
        rest_route(
            authority,
            f"{base}/keys-to-ids",
            keys_to_ids,
            product="Common APIs",
            permission="mdm.read",
            method="POST",
        ),
    ]
