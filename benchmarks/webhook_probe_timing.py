"""How long a wrong webhook token takes to refuse for a known and an unknown connection.

The receiver does the same work for both (one read, one decryption, a constant-time compare), so
the two medians should be close; the issue measured about 5 ms between them before. Every probe
uses a new connection name or token, so the token cache never answers.

    uv run python benchmarks/webhook_probe_timing.py [probes]
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mlconnector.clock import SystemClock
from mlconnector.config import Config, WebSettings
from mlconnector.store import CredentialKind, Vault, generate_key, open_store
from mlconnector.web import ReceiverOptions, create_web_app


async def main(probes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(
            f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}",
            clock=SystemClock(),
            vault=Vault([generate_key()], source="a benchmark key"),
        )
        names = [f"known{n}" for n in range(probes)]
        for name in names:
            await store.create_connection(name)
            await store.set_credential(
                name, CredentialKind.WEBHOOK_TOKEN, secrets.token_urlsafe(32)
            )
        config = Config(home=Path(tmp), web=WebSettings(allowed_hosts=("bench",)))
        app = create_web_app(
            store=store,
            config=config,
            clock=SystemClock(),
            receiver_options=ReceiverOptions(token_ttl=0.0),
        )
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            times: dict[str, list[float]] = {"known": [], "unknown": []}
            for n in range(probes):
                for kind, name in (("known", names[n]), ("unknown", f"nobody{n}")):
                    token = secrets.token_urlsafe(32)
                    started = time.perf_counter()
                    response = await client.post(
                        f"/webhooks/shipstation/{name}/{token}", content=b"{}"
                    )
                    times[kind].append(time.perf_counter() - started)
                    assert response.status_code == 404
        await store.close()
    for kind, values in times.items():
        print(
            f"{kind:8} connection, wrong token: median {statistics.median(values) * 1000:.3f} ms, "
            f"p90 {statistics.quantiles(values, n=10)[-1] * 1000:.3f} ms ({len(values)} probes)"
        )
    gap = statistics.median(times["known"]) - statistics.median(times["unknown"])
    print(f"known - unknown median: {gap * 1000:+.3f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
