"""/healthz and /metrics."""

from __future__ import annotations

import re

import httpx

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.store import Store
from mlconnector.store.engine import create_engine
from mlconnector.web import create_web_app
from mlconnector.web.metrics import Exposition
from tests.conftest import FAKE_START
from tests.unit.web.seed import seed

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        assert SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


async def test_healthz_ok(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == store.dialect


async def test_healthz_503_when_the_database_is_unreachable(
    config: Config, fake_clock: FakeClock
) -> None:
    # nothing listens on port 1 of loopback: every connection attempt is refused at once
    broken = Store(create_engine("postgresql://mlc@127.0.0.1:1/mlc"), clock=fake_clock)
    app = create_web_app(store=broken, config=config, clock=fake_clock)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://t"
        ) as client:
            response = await client.get("/healthz")
    finally:
        await broken.close()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


async def test_metrics_expose_operations_inbox_audit_and_cursors(
    client: httpx.AsyncClient, store: Store
) -> None:
    await seed(store)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = samples(response.text)
    for state, n in (("pending", 1), ("sent", 0), ("confirmed", 1), ("failed", 1), ("dead", 1)):
        assert values[f'mlconnector_operations{{connection="acme",state="{state}"}}'] == n
    assert values['mlconnector_webhook_inbox_pending{connection="acme"}'] == 1
    assert values["mlconnector_audit_events"] == 2
    orders = '{connection="acme",flow="orders"}'
    shipments = '{connection="acme",flow="shipments"}'
    assert values[f"mlconnector_flow_cursor_advanced_timestamp_seconds{orders}"] == (
        FAKE_START.timestamp()
    )
    assert not any("last_run" in name and "cursor" in name for name in values)
    assert values[f"mlconnector_flow_last_run_timestamp_seconds{orders}"] == FAKE_START.timestamp()
    assert values[f"mlconnector_flow_last_run_ok{orders}"] == 1
    assert values[f"mlconnector_flow_last_run_ok{shipments}"] == 0
    assert values[f"mlconnector_flow_last_run_duration_seconds{orders}"] == 1.25
    families = [line.split()[2] for line in response.text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families)) == 7


async def test_metrics_follow_the_store(client: httpx.AsyncClient, store: Store) -> None:
    await seed(store)
    (item,) = await store.pending_webhooks(connection="acme")
    await store.finish_webhook(item.id, "ok")
    values = samples((await client.get("/metrics")).text)
    assert values['mlconnector_webhook_inbox_pending{connection="acme"}'] == 0


def test_label_values_are_escaped() -> None:
    out = Exposition()
    out.family("x_total", "gauge", "h", [((("flow", 'a"b\\c\nd'),), 1.5)])
    assert out.text().splitlines()[-1] == 'x_total{flow="a\\"b\\\\c\\nd"} 1.5'
