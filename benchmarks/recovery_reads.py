"""What crash recovery costs: ShipStation V1 reads to resolve a 100-order ``createorders`` batch
left ``sent`` by a kill, one look-up per order (before) vs. list reads (after).

Both simulators in-process on a :class:`FakeClock` (``_sync_env``). 150 new Plex orders are
synced with ``create_orders`` patched to apply the first batch in ShipStation and then "die"
(the process is killed between ShipStation's answer and the confirms), leaving 100 operations
``sent``. Then:

* **before**: each operation resolved on its own (``OrdersFlow.resolve``: one
  ``GET /orders?orderNumber=…`` each, as ``recover`` did before batching);
* **after**: :func:`mlconnector.sync.recover` (``OrdersFlow.resolve_batch``: ``GET
  /orders?modifyDateStart=…``, paged, matched by ``orderKey``).

Printed: V1 reads, virtual seconds spent (V1 allows 40 requests a minute) and what was found.

Run: ``uv run python benchmarks/recovery_reads.py``
"""

from __future__ import annotations

import asyncio
from typing import Any

from _sync_env import make_bench

from mlconnector.shipstation import ShipStationV1Client
from mlconnector.store import OperationState
from mlconnector.sync import recover
from mlconnector.sync.orders import OrdersFlow


class Killed(Exception):
    """The process dies right after ShipStation applied the batch."""


async def main() -> None:
    bench = await make_bench()
    try:
        rt, flow = await bench.runtime(), OrdersFlow()
        await flow.run(rt)  # the seed, not measured
        bench.clock.advance(600)
        bench.add_orders(150)
        bench.clock.advance(600)
        real = ShipStationV1Client.create_orders

        async def killed(self: ShipStationV1Client, *args: Any, **kwargs: Any) -> Any:
            await real(self, *args, **kwargs)
            raise Killed

        ShipStationV1Client.create_orders = killed  # type: ignore[method-assign]
        try:
            await flow.run(rt)
        except Killed:
            pass
        finally:
            ShipStationV1Client.create_orders = real  # type: ignore[method-assign]
        sent = await rt.store.list_operations(
            connection=rt.name, states=[OperationState.SENT], limit=1000
        )
        print(f"in-flight batch: {len(sent)} operations left 'sent' by the kill")
        bench.clock.advance(60)

        calls, started = bench.ss_app.calls["GET /orders"], bench.clock.monotonic()
        found = [await flow.resolve(rt, op) for op in sent]
        before = bench.ss_app.calls["GET /orders"] - calls
        print(
            f"before (one look-up per order): {before} V1 reads, "
            f"{bench.clock.monotonic() - started:.0f} virtual s, "
            f"{sum(1 for f in found if isinstance(f, str))} of {len(sent)} found"
        )

        calls, started = bench.ss_app.calls["GET /orders"], bench.clock.monotonic()
        report = await recover(rt, [flow])
        after = bench.ss_app.calls["GET /orders"] - calls
        print(
            f"after  (list reads, paged):     {after} V1 reads, "
            f"{bench.clock.monotonic() - started:.0f} virtual s, "
            f"{report.recovered} of {len(sent)} confirmed"
        )
    finally:
        await bench.close()


if __name__ == "__main__":
    asyncio.run(main())
