"""A process killed between send and confirm: the restart looks before it re-sends.

``mlconnector sync orders --once`` runs as a real subprocess against both simulators, served by
this test on loopback. The first run has the documented test hook
``MLCONNECTOR_TEST_EXIT_AFTER="POST /orders/createorders"`` (:mod:`mlconnector.commands._engine`):
the process dies (``os._exit(1)``) as soon as ShipStation's answer to the batch arrives, after the
orders were created and before any operation is confirmed. The second run, without the hook, must
resolve every operation left ``sent`` by looking in ShipStation, and send nothing again. The
crashed batch is a full one (100 orders), resolved with list reads
(``GET /orders?modifyDateStart=``, paged), not one ``GET /orders?orderNumber=`` per order.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from mlconnector.clock import SystemClock
from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, TenantSpec, create_plex_sandbox
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox
from mlconnector.store import CredentialKind, OperationState, init_home, load_vault, open_store
from tests.e2e.shipping_env import Recorder

PCN = 340884
CREATE = ("POST", "/orders/createorders")


def _config(home: Path, plex_url: str, ss_url: str) -> str:
    return f"""home = "{home}"
[connections.acme.plex]
pcn = "{PCN}"
rest_base_url = "{plex_url}"
read_window_hours = 744
[connections.acme.shipstation]
v1_base_url = "{ss_url}"
v2_base_url = "{ss_url}"
"""


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mlconnector.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_killed_between_send_and_confirm_then_restarted(tmp_path: Path) -> None:
    clock = SystemClock()
    plex = create_plex_sandbox(
        clock, tenants=[TenantSpec(pcn=PCN, code="mlauto", name="Midland", parts=10, orders=30)]
    )
    ss = create_shipstation_sandbox(clock)
    recorder = Recorder(ss.app)
    home = tmp_path / "home"
    env = {
        "HOME": str(tmp_path),
        "MLCONNECTOR_HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "COLUMNS": "200",
    }
    init_home(env)
    account = ShipStationAccount()
    async with serve(plex.app) as plex_url, serve(recorder) as ss_url:
        (home / "mlconnector.toml").write_text(_config(home, plex_url, ss_url))
        store = await open_store(
            f"sqlite+aiosqlite:///{home / 'mlconnector.db'}", clock=clock, vault=load_vault(env)
        )
        try:
            await store.create_connection("acme", plex_pcn=str(PCN))
            for kind, value in {
                CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
                CredentialKind.SS_V1_KEY: account.api_key,
                CredentialKind.SS_V1_SECRET: account.api_secret,
            }.items():
                await store.set_credential("acme", kind, value)

            # 1. the process dies right after ShipStation applied the batch
            crash_env = {**env, "MLCONNECTOR_TEST_EXIT_AFTER": " ".join(CREATE)}
            code, out = await _cli(crash_env, "sync", "orders", "--once")
            assert code == 1, out
            assert recorder.count(*CREATE) == 1
            created = ss.all_orders()
            assert created  # the orders exist in ShipStation...
            ops = await store.list_operations(
                connection="acme", states=[OperationState.SENT], limit=1000
            )
            assert len(ops) == len(created) == 100  # a full batch in flight, none confirmed
            queued = await store.list_operations(connection="acme", limit=1000)
            assert {op.state for op in queued} <= {OperationState.SENT, OperationState.PENDING}

            # 2. restart: every operation is resolved by looking, nothing is sent again
            reads, calls = recorder.count("GET", "/orders"), len(recorder.calls)
            code, out = await _cli(env, "sync", "orders", "--once")
            assert code == 0, out
            assert 1 <= recorder.count("GET", "/orders") - reads <= 3
            assert all("orderNumber=" not in q for m, p, q, _ in recorder.calls if p == "/orders")
            resent = {
                order["orderKey"]
                for method, path, _, body in recorder.calls[calls:]
                if (method, path) == CREATE
                for order in json.loads(body)
            }
            assert resent.isdisjoint(o["orderKey"] for o in created)  # only the never-sent ones
            assert recorder.count("POST", "/orders/createorder") == 0
            after = await store.list_operations(connection="acme", limit=1000)
            assert {op.state for op in after} == {OperationState.CONFIRMED}
            assert {op.id for op in ops} <= {op.id for op in after}
            orders = ss.all_orders(include_deleted=True)
            keys = [o["orderKey"] for o in orders]
            assert len(keys) == len(set(keys)) == len(after)  # no duplicate, nothing lost
            assert {o["orderKey"] for o in created} <= set(keys)
            links = await store.list_links("acme")
            assert {lk.order_key for lk in links if lk.ss_order_id} == set(keys)
        finally:
            await store.close()
