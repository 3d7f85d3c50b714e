"""What one orders sync costs: requests per remote system, virtual and wall time.

Serves both simulators on loopback (real HTTP), seeds the default Plex tenant (or one with N
orders), and runs :class:`~mlconnector.sync.orders.OrdersFlow` three times on a FakeClock:

1. the first run (60 days of history, every open release becomes a ShipStation order);
2. a run with no change (should send nothing to ShipStation);
3. a run after one release quantity changed in Plex (one order updated).

Prints, per run: the flow summary, requests by service, virtual seconds (rate-limit waits) and
wall seconds.

Run: ``uv run python benchmarks/orders_flow.py [orders]``
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, TenantSpec, create_plex_sandbox
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox
from mlconnector.store import CredentialKind, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, build_runtime
from mlconnector.sync.orders import OrdersFlow

PCN = 340884


async def timed(label: str, rt: ConnectionRuntime, flow: OrdersFlow, clock: FakeClock) -> None:
    before = dict(rt.stats.requests)
    virtual, wall = clock.now(), time.perf_counter()
    result = await flow.run(rt)
    requests = {k: v - before.get(k, 0) for k, v in rt.stats.requests.items()}
    print(
        f"{label:<28} {result.summary():<60} requests={requests} "
        f"virtual={(clock.now() - virtual).total_seconds():.0f}s "
        f"wall={time.perf_counter() - wall:.2f}s"
    )


async def main(orders: int) -> None:
    clock = FakeClock(datetime(2026, 1, 15, 12, tzinfo=UTC))
    spec = TenantSpec(pcn=PCN, code="mlauto", name="Midland", orders=orders)
    plex = create_plex_sandbox(clock, tenants=[spec])
    ss = create_shipstation_sandbox(clock)
    account = ShipStationAccount()
    home = Path(tempfile.mkdtemp(prefix="mlc-bench-"))
    vault = Vault([generate_key()], source="benchmark")
    store = await open_store(f"sqlite+aiosqlite:///{home / 'mlc.db'}", clock=clock, vault=vault)
    await store.create_connection("bench", plex_pcn=str(PCN))
    secrets = {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
    }
    for kind, value in secrets.items():
        await store.set_credential("bench", kind, value)
    async with serve(plex.app) as plex_url, serve(ss.app) as ss_url:
        conn = ConnectionConfig(
            plex=PlexSettings(pcn=str(PCN), rest_base_url=plex_url),
            shipstation=ShipStationSettings(v1_base_url=ss_url),
        )
        config = Config(home=home, connections={"bench": conn})
        rt = await build_runtime(config, "bench", store, clock)
        flow = OrdersFlow()
        try:
            await timed("first run", rt, flow, clock)
            clock.advance(600)
            await timed("no change", rt, flow, clock)
            data = plex.tenant(PCN)
            release = next(r for r in data.releases.values() if r.status == "Open")
            plex.edit_release(release.id, quantity=release.quantity + 1, tenant=PCN)
            clock.advance(600)
            await timed("one release edited", rt, flow, clock)
            print(f"ShipStation orders: {len(ss.all_orders())}")
        finally:
            await rt.aclose()
            await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
