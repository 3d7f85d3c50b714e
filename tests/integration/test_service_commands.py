"""``mlconnector run`` and ``mlconnector sandbox`` as real processes.

``run`` serves the web receiver and schedules the flows in one process: a webhook POSTed to the
receiver is stored and nudges the engine, whose shipments flow processes the inbox; SIGTERM stops
it cleanly (exit 0, leases released). ``sandbox`` prints the simulators' URLs and stops on SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from mlconnector.clock import SystemClock
from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, TenantSpec, create_plex_sandbox
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox
from mlconnector.store import CredentialKind, init_home, load_vault, open_store

PCN = 340884
TOKEN = "t0ken-for-the-test-0123456789"
#: a guard against a hang, not a timing assertion
GUARD = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mlconnector.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until true; the guard only stops a hang (``what`` names it)."""
    async with asyncio.timeout(GUARD):
        while not await check():  # noqa: ASYNC110 (another process: nothing to await on)
            await asyncio.sleep(0.1)


async def test_run_receives_a_webhook_processes_the_inbox_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    clock = SystemClock()
    plex = create_plex_sandbox(
        clock, tenants=[TenantSpec(pcn=PCN, code="mlauto", name="Midland", parts=6, orders=2)]
    )
    ss = create_shipstation_sandbox(clock)
    account = ShipStationAccount()
    home = tmp_path / "home"
    port = _free_port()
    env = {
        "HOME": str(tmp_path),
        "MLCONNECTOR_HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "MLCONNECTOR_WEB__PORT": str(port),
    }
    init_home(env)
    async with serve(plex.app) as plex_url, serve(ss.app) as ss_url:
        ss.public_url = ss_url
        (home / "mlconnector.toml").write_text(
            f"""[connections.acme.plex]
pcn = "{PCN}"
rest_base_url = "{plex_url}"
read_window_hours = 744
[connections.acme.shipstation]
v1_base_url = "{ss_url}"
v2_base_url = "{ss_url}"
"""
        )
        store = await open_store(
            f"sqlite+aiosqlite:///{home / 'mlconnector.db'}", clock=clock, vault=load_vault(env)
        )
        try:
            await store.create_connection("acme", plex_pcn=str(PCN))
            for kind, value in {
                CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
                CredentialKind.SS_V1_KEY: account.api_key,
                CredentialKind.SS_V1_SECRET: account.api_secret,
                CredentialKind.WEBHOOK_TOKEN: TOKEN,
            }.items():
                await store.set_credential("acme", kind, value)
            process = await _start(env, "run")
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:

                async def healthy() -> bool:
                    try:
                        # /livez: /healthz turns 503 as soon as a flow fails (inventory here)
                        return (await http.get("/livez")).status_code == 200
                    except httpx.TransportError:
                        return False

                await _until(healthy, "the web app answers")
                # the scheduler's first pass created the orders

                async def orders_sent() -> bool:
                    return bool(ss.all_orders())

                await _until(orders_sent, "orders in ShipStation")
                delivery = {
                    "resource_url": f"{ss_url}/shipments?batchId=1",
                    "resource_type": "SHIP_NOTIFY",
                }
                answer = await http.post(
                    f"/webhooks/shipstation/acme/{TOKEN}", content=json.dumps(delivery)
                )
                assert answer.status_code == 200, answer.text

                async def processed() -> bool:
                    items = await store.list_webhooks(connection="acme")
                    return bool(items) and all(i.processed_at is not None for i in items)

                await _until(processed, "the inbox item is processed")
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(GUARD):
                out, _ = await process.communicate()
            assert process.returncode == 0, out.decode()
        finally:
            await store.close()


async def test_sandbox_prints_urls_and_stops_on_sigint(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", ""), "COLUMNS": "200"}
    process = await _start(env, "sandbox", "--plex-port", "0", "--shipstation-port", "0")
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(GUARD):
        while not any("Ctrl-C stops" in line for line in lines):
            lines.append((await process.stdout.readline()).decode())
    text = "".join(lines)
    assert "sandbox-v1-key" in text
    # each value says which setting it goes in, and the command that writes them all
    for setting in ("plex.rest_base_url", "plex.web_service_user", "shipstation.v1_base_url"):
        assert setting in text
    assert "connections add sandbox --sandbox" in text
    url = next(w for w in text.split() if w.startswith("http://127.0.0.1:"))
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = await http.get(url + "/stores", auth=("sandbox-v1-key", "sandbox-v1-secret"))
    assert answer.status_code in (200, 401, 404)  # something listens there
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(GUARD):
        await process.communicate()
    assert process.returncode == 0
