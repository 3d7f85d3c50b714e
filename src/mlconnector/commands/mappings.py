"""Mappings checked against both systems before anything is written, and the ids to fill them.

:func:`mapping_checks` (run by ``ping`` and ``config check --remote``) verifies that every mapped
ShipStation warehouse, store and V2 inventory location exists, and that the Plex building of
every open release modified in the last days has a warehouse. :func:`gather` reads what
``mlconnector lookup`` lists (ShipStation warehouses, stores, inventory locations; Plex buildings
and locations) and :func:`toml_snippet` turns it into a section to paste. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import timedelta

import httpx

from mlconnector.clock import Clock
from mlconnector.commands.checks import PING_RETRY, CheckResult, _run
from mlconnector.commands.clients import plex_client, shipstation_v1_client, shipstation_v2_client
from mlconnector.config import ConnectionConfig
from mlconnector.http import Redactor
from mlconnector.store import CredentialKind

#: how far back ``ping`` looks for open releases whose building must be mapped
DEFAULT_DAYS = 7
#: at most this many orders are loaded in full for the building check (``config check
#: --remote``); ``ping`` looks at fewer, to stay quick
MAX_ORDERS = 100
PING_MAX_ORDERS = 20


def _lookup_hint(name: str, key: str) -> str:
    return (
        f"fix connections.{name}.mappings.{key}; `mlconnector lookup --connection {name}` "
        "lists the ids and prints a section to paste"
    )


def _missing_ids(mapped: Mapping[str, object], known: Collection[object], what: str) -> str:
    """``''`` when every mapped id is known, else which ones are not."""
    wrong = [f"{key} → {value}" for key, value in mapped.items() if value not in known]
    if not wrong:
        return ""
    return f"{len(wrong)} mapped {what} not in ShipStation: {', '.join(wrong[:8])}"


class MappingError(Exception):
    """A check found a mapping that would send wrong data (the message says which)."""


async def mapping_checks(
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Clock,
    *,
    days: int = DEFAULT_DAYS,
    max_orders: int = MAX_ORDERS,
) -> list[CheckResult]:
    """One result per mapping kind (warehouses, stores, inventory locations, Plex buildings)."""
    redactor = Redactor(secrets.values())
    mappings = config.mappings
    v1 = shipstation_v1_client(
        http, name, config, secrets, clock=clock, retry=PING_RETRY, redactor=redactor, timeout=20
    )
    results: list[CheckResult] = []

    async def warehouses() -> str:
        known = {w.warehouse_id for w in await v1.list_warehouses()}
        return _verdict(
            _missing_ids(mappings.warehouses, known, "warehouse(s)"), mappings.warehouses
        )

    async def stores() -> str:
        stores = mappings.stores
        mapped: dict[str, object] = {
            **{f"customer {k}": v for k, v in stores.by_customer.items()},
            **{f"order type {k}": v for k, v in stores.by_order_type.items()},
            **({"default": stores.default} if stores.default is not None else {}),
        }
        known = {s.store_id for s in await v1.list_stores(show_inactive=True)}
        return _verdict(_missing_ids(mapped, known, "store(s)"), mapped)

    for check, action, key in (
        ("mapped warehouses exist (V1)", warehouses, "warehouses"),
        ("mapped stores exist (V1)", stores, "stores"),
    ):
        results.append(await _mapping_run(name, check, action, key, redactor))
    if secrets.get(CredentialKind.SS_V2_KEY):
        v2 = shipstation_v2_client(
            http, name, config, secrets, clock=clock, retry=PING_RETRY, redactor=redactor
        )

        async def locations() -> str:
            known = {loc.inventory_location_id for loc in await v2.list_inventory_locations()}
            mapped = mappings.inventory_locations
            return _verdict(_missing_ids(mapped, set(known), "inventory location(s)"), mapped)

        check = "mapped inventory locations exist (V2)"
        results.append(await _mapping_run(name, check, locations, "inventory_locations", redactor))
    plex = plex_client(http, config, secrets, clock=clock, retry=PING_RETRY, redactor=redactor)

    async def buildings() -> str:
        from mlconnector.sync.mapping import is_open, warehouse_of
        from mlconnector.sync.orders_read import load_bundles

        end = clock.now()
        orders = []
        async for order in plex.iter_orders_modified(end - timedelta(days=days), end):
            orders.append(order)
            if len(orders) >= max_orders:
                break
        unmapped: dict[str, list[str]] = {}
        open_orders = 0
        for bundle in (await load_bundles(plex, orders)).values():
            if isinstance(bundle, Exception) or not any(is_open(r) for r in bundle.releases):
                continue
            open_orders += 1
            warehouse, building = warehouse_of(bundle, config, list(bundle.parts.values()))
            if warehouse is None:
                label = building or "(no building)"
                unmapped.setdefault(label, []).append(bundle.order.order_number or bundle.order.id)
        if unmapped:
            listed = "; ".join(
                f"{b} (orders {', '.join(sorted(n)[:3])}{'…' if len(n) > 3 else ''})"
                for b, n in sorted(unmapped.items())
            )
            effect = (
                "they are refused (mappings.required)"
                if config.mappings.required
                else "they would be sent with warehouseId null"
            )
            raise MappingError(f"Plex building(s) without a warehouse: {listed}; {effect}")
        return f"ok ({open_orders} open order(s) modified in the last {days} day(s), all mapped)"

    results.append(
        await _mapping_run(
            name, f"Plex buildings of open releases mapped (last {days} d)", buildings,
            "warehouses", redactor,
        )
    )  # fmt: skip
    return results


def _verdict(problem: str, mapped: Mapping[str, object]) -> str:
    if problem:
        raise MappingError(problem)
    return f"ok ({len(mapped)} mapped, all exist)" if mapped else "ok (none mapped)"


async def _mapping_run(
    name: str, check: str, action: Callable[[], Awaitable[str]], key: str, redactor: Redactor
) -> CheckResult:
    """:func:`checks._run`, with a mapping problem reported as a failed check with a hint."""
    try:
        return await _run(name, "mappings", check, action, lambda exc: None, redactor)
    except MappingError as exc:
        return CheckResult(name, "mappings", check, False, str(exc), _lookup_hint(name, key))
