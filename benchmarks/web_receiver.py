"""Webhook receiver throughput over real loopback HTTP (uvicorn via ``serve``), SQLite store.

Run: ``uv run python benchmarks/web_receiver.py [--n 500] [--concurrency 8]``. Prints figures; it
asserts nothing about time. Measures V1 deliveries (token check, parse, allow-list, inbox insert),
signed V2 deliveries (plus RSA verification, keys fetched once from the ShipStation simulator's
JWKS), duplicates (de-duplicated insert) and token-refused requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from mlconnector.clock import SystemClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import create_shipstation_sandbox
from mlconnector.shipstation import keys_from_jwks
from mlconnector.store import CredentialKind, Vault, generate_key, open_store
from mlconnector.web import ReceiverOptions, create_web_app

TOKEN = "bench-token-0123456789"


async def _run(
    label: str,
    client: httpx.AsyncClient,
    requests: list[tuple[str, bytes, dict[str, str]]],
    concurrency: int,
    expect: int,
) -> None:
    queue = list(reversed(requests))
    statuses: list[int] = []

    async def worker() -> None:
        while queue:
            url, body, headers = queue.pop()
            statuses.append((await client.post(url, content=body, headers=headers)).status_code)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    wrong = sum(1 for s in statuses if s != expect)
    n = len(requests)
    print(
        f"  {label:<38} {n / elapsed:8.0f}/s  ({elapsed * 1000 / n:.2f} ms each, "
        f"concurrency {concurrency}, {wrong} unexpected statuses)"
    )


async def main(n: int, concurrency: int) -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(
            f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}",
            clock=clock,
            vault=Vault([generate_key()], source="bench"),
        )
        await store.create_connection("acme")
        await store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, TOKEN)
        sandbox = create_shipstation_sandbox(clock)
        base = "http://ss.bench"
        settings = ShipStationSettings(v1_base_url=base, v2_base_url=base)
        config = Config(
            home=Path(tmp),
            connections={
                "acme": ConnectionConfig(plex=PlexSettings(pcn="1"), shipstation=settings)
            },
        )

        async def keys(connection: str) -> dict[str, rsa.RSAPublicKey]:
            return keys_from_jwks(sandbox.signer.jwks())

        options = ReceiverOptions(key_source=keys)
        app = create_web_app(store=store, config=config, clock=clock, receiver_options=options)
        async with (
            app.router.lifespan_context(app),
            serve(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            hook = f"/webhooks/shipstation/acme/{TOKEN}"

            def v1(i: int) -> bytes:
                return json.dumps(
                    {
                        "resource_url": f"{base}/shipments?batchId={i}",
                        "resource_type": "SHIP_NOTIFY",
                    }
                ).encode()

            def v2(i: int) -> tuple[str, bytes, dict[str, str]]:
                body = json.dumps(
                    {"resource_url": f"{base}/v2/x?{i}", "resource_type": "LABEL_CREATED_V2"}
                ).encode()
                return hook, body, sandbox.signer.signed_headers(body, clock.now())

            print(f"webhook receiver over loopback, SQLite, n={n}")
            for c in (1, concurrency):
                offset = c * 10 * n
                await _run(
                    "V1 new deliveries",
                    client,
                    [(hook, v1(offset + i), {}) for i in range(n)],
                    c,
                    200,
                )
                await _run(
                    "V1 duplicates (already stored)",
                    client,
                    [(hook, v1(offset + i), {}) for i in range(n)],
                    c,
                    200,
                )
                await _run(
                    "V2 signed new deliveries", client, [v2(offset + i) for i in range(n)], c, 200
                )
                await _run(
                    "wrong token (404)",
                    client,
                    [("/webhooks/shipstation/acme/nope", v1(i), {}) for i in range(n)],
                    c,
                    404,
                )
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency))
