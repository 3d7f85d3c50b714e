"""What the shipments and inventory flows cost: requests per remote system, virtual and wall time.

Serves both simulators and a webhook receiver (persisting into the inbox) on loopback (real
HTTP), seeds the default Plex tenant (or one with N orders), links every open release group with
the orders flow, then on a FakeClock:

* shipments: enough Plex stock for every open release (the seeded tenant holds too little; a
  shortage is a test, not a benchmark), one label per linked ShipStation order (SHIP_NOTIFY
  delivered to the receiver), a run (webhooks + polls, Plex write-backs), and a run with
  nothing new;
* inventory: a first run (every mapped SKU adjusted), a run with no change (no V2 request),
  and a run after one Plex container changed (one adjust).

Then every SHIP_NOTIFY delivery is received again (new bytes, same pointer: followed, each
shipment re-read though already written back).

Prints, per run: the flow summary, requests by service, virtual seconds and wall seconds, and
the store's transactions (commits) and SQL statements; for the shipments run also Plex requests,
transactions and statements per written-back shipment, and requests per path.

Run: ``uv run python benchmarks/shipments_inventory_flow.py [orders]``
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlconnector.clock import FakeClock
from mlconnector.config import (
    Config,
    ConnectionConfig,
    Mappings,
    PlexSettings,
    ShipStationSettings,
)
from mlconnector.http import RequestEvent
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    PlexSandbox,
    TenantSpec,
    create_plex_sandbox,
)
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import (
    OperatorError,
    ShipStationAccount,
    create_shipstation_sandbox,
)
from mlconnector.store import CredentialKind, Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, build_runtime
from mlconnector.sync.base import Flow
from mlconnector.sync.inventory import InventoryFlow
from mlconnector.sync.orders import OrdersFlow
from mlconnector.sync.shipments import ShipmentsFlow

PCN = 340884
NAME = "bench"

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b\d+\b")


class DbCounter:
    """Commits (transactions) and SQL statements executed on the store's engine."""

    def __init__(self, store: Store) -> None:
        self.commits = 0
        self.statements = 0
        engine = store.engine.sync_engine
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "before_cursor_execute", self._statement)

    def _commit(self, *_: Any) -> None:
        self.commits += 1

    def _statement(self, *_: Any) -> None:
        self.statements += 1


def count_paths(rt: ConnectionRuntime) -> Counter[str]:
    """Requests per (service, method, path with ids replaced by ``{id}``), for the breakdown."""
    paths: Counter[str] = Counter()
    forward = rt.on_event

    def on_event(event: RequestEvent) -> None:
        path = _ID.sub("{id}", event.url.split("?", 1)[0].split("://", 1)[-1].split("/", 1)[-1])
        paths[f"{event.service} {event.method} /{path}"] += 1
        forward(event)

    rt.on_event = on_event  # type: ignore[method-assign]
    return paths


async def timed(
    label: str,
    rt: ConnectionRuntime,
    flow: Flow,
    clock: FakeClock,
    db: DbCounter,
    paths: Counter[str] | None = None,
) -> None:
    before = dict(rt.stats.requests)
    commits, statements = db.commits, db.statements
    by_path = Counter(paths or {})
    virtual, wall = clock.now(), time.perf_counter()
    result = await flow.run(rt)
    requests = {k: v - before.get(k, 0) for k, v in rt.stats.requests.items()}
    commits, statements = db.commits - commits, db.statements - statements
    print(
        f"{label:<34} {result.summary():<70} requests={requests} "
        f"virtual={(clock.now() - virtual).total_seconds():.0f}s "
        f"wall={time.perf_counter() - wall:.2f}s"
    )
    print(f"    store: {commits} transactions, {statements} statements")
    written = result.counts().get("written_back", 0)
    if written:
        print(
            f"    per written-back shipment: {requests['plex'] / written:.2f} plex requests, "
            f"{commits / written:.2f} transactions, {statements / written:.2f} statements"
        )
    if paths is not None:
        for path, n in sorted((paths - by_path).items(), key=lambda kv: -kv[1]):
            print(f"    {n:>6}  {path}")
    for error in result.errors[:3]:
        print(f"    error: {error}")


def top_up_stock(plex: PlexSandbox, shippable_locations: set[str]) -> tuple[int, float]:
    """Give every part enough shippable stock for all its open releases (benchmark set-up).

    The seeded tenant holds less stock than its open releases ask for, so without this a third
    of the write-backs fail on INSUFFICIENT_INVENTORY and the request figure measures failures
    (tests/e2e/test_shipments_flow.py covers that failure). The shortfall of a part goes into
    one new container at a location that already holds the part (else the first mapped one), so
    the inventory flow sees no new (SKU, location) pair. Returns (containers added, units).
    """
    data = plex.tenant(PCN)
    needed: Counter[str] = Counter()
    for release in data.releases.values():
        if release.status in ("Open", "Scheduled"):
            part_id = data.lines[release.order_line_id].part_id
            needed[part_id] += release.quantity - release.quantity_shipped
    added, units = 0, 0.0
    for part_id, quantity in sorted(needed.items()):
        short = quantity - plex.on_hand(part_id, tenant=PCN)
        if short <= 0:
            continue
        held = sorted(
            c.location_id
            for c in data.containers.values()
            if c.part_id == part_id and data.locations[c.location_id].code in shippable_locations
        )
        location = (
            held[0]
            if held
            else sorted(
                loc.id for loc in data.locations.values() if loc.code in shippable_locations
            )[0]
        )
        plex.add_container(part_id, location, short, tenant=PCN)
        added, units = added + 1, units + short
    return added, units


def receiver(store: Store, bodies: list[bytes]) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        bodies.append(body)
        await store.receive_webhook(NAME, body, dict(request.headers))
        return Response(status_code=200)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def main(orders: int) -> None:
    clock = FakeClock(datetime(2026, 1, 15, 12, tzinfo=UTC))
    spec = TenantSpec(pcn=PCN, code="mlauto", name="Midland", orders=orders)
    plex = create_plex_sandbox(clock, tenants=[spec])
    ss = create_shipstation_sandbox(clock)
    account = ShipStationAccount()
    home = Path(tempfile.mkdtemp(prefix="mlc-bench-"))
    vault = Vault([generate_key()], source="benchmark")
    store = await open_store(f"sqlite+aiosqlite:///{home / 'mlc.db'}", clock=clock, vault=vault)
    await store.create_connection(NAME, plex_pcn=str(PCN))
    secrets = {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
        CredentialKind.SS_V2_KEY: account.v2_api_key or "",
    }
    for kind, value in secrets.items():
        await store.set_credential(NAME, kind, value)
    data = plex.tenant(PCN)
    db = DbCounter(store)
    bodies: list[bytes] = []
    async with (
        serve(plex.app) as plex_url,
        serve(ss.app) as ss_url,
        serve(receiver(store, bodies)) as hook_url,
    ):
        ss.public_url = ss_url
        base = ConnectionConfig(
            plex=PlexSettings(pcn=str(PCN), rest_base_url=plex_url, read_window_hours=24 * 31),
            shipstation=ShipStationSettings(v1_base_url=ss_url, v2_base_url=ss_url),
        )
        setup = await build_runtime(Config(home=home, connections={NAME: base}), NAME, store, clock)
        warehouse = await setup.ss_v2.create_inventory_warehouse("Main")
        mapping: dict[str, str] = {}
        for location in data.locations.values():
            if location.type == "Finished Goods":
                created = await setup.ss_v2.create_inventory_location(
                    location.building_code, warehouse.inventory_warehouse_id
                )
                mapping[location.code] = created.inventory_location_id
        conn = base.model_copy(update={"mappings": Mappings(inventory_locations=mapping)})
        rt = await build_runtime(Config(home=home, connections={NAME: conn}), NAME, store, clock)
        await rt.ss_v1.subscribe_webhook(target_url=hook_url + "/hook", event="SHIP_NOTIFY")
        await timed("orders (set-up)", rt, OrdersFlow(), clock, db)
        added, units = top_up_stock(plex, set(mapping))
        print(f"stock topped up for every open release: {added} container(s), {units:g} units")
        labels, held = 0, 0
        for link in await store.list_links(NAME):
            if any(data.releases[r.lower()].status == "Hold" for r in link.release_ids):
                held += 1  # Plex refuses to schedule a held release: not a cost to measure
                continue
            if link.ss_order_id:
                try:
                    ss.create_label(int(link.ss_order_id))
                    labels += 1
                except OperatorError:
                    pass  # an order on hold cannot get a label
        delivered = await ss.deliver_webhooks()
        print(
            f"labels made: {labels} (none for {held} order(s) with a release on hold in Plex); "
            f"webhook deliveries: {len(delivered)}"
        )
        clock.advance(600)
        shipments = ShipmentsFlow()
        paths = count_paths(rt)
        await timed("shipments: webhooks + polls", rt, shipments, clock, db, paths)
        clock.advance(600)
        await timed("shipments: nothing new", rt, shipments, clock, db)
        # every delivery sent again (a sender's retry: new bytes, same pointer), received after
        # the polls' windows, so each is followed and its shipment re-read, already written back
        for body in bodies:
            again = json.loads(body) | {"redelivery": 1}
            await store.receive_webhook(NAME, json.dumps(again).encode(), {})
        clock.advance(600)
        await timed(f"shipments: {len(bodies)} re-delivered", rt, shipments, clock, db)
        inventory = InventoryFlow()
        clock.advance(600)
        await timed("inventory: first run", rt, inventory, clock, db)
        clock.advance(600)
        await timed("inventory: no change", rt, inventory, clock, db)
        container = next(
            c
            for c in data.containers.values()
            if c.status == "OK" and data.locations[c.location_id].code in mapping
        )
        plex.adjust_container(container.serial_no, quantity=container.quantity + 1, tenant=PCN)
        clock.advance(600)
        await timed("inventory: one container changed", rt, inventory, clock, db)
        await setup.aclose()
        await rt.aclose()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
