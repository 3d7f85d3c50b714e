"""/healthz and /metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlconnector import __version__
from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.store import Store
from mlconnector.store.engine import create_engine
from mlconnector.web import create_web_app
from tests.conftest import FAKE_START
from tests.unit.web.seed import seed


def samples(text: str) -> dict[str, float]:
    """Every sample of the exposition (parsed by prometheus-client's own text parser), keyed
    ``name{label="value",...}`` with labels in sorted order."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return values


async def test_healthz_ok(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == store.dialect
    assert response.json()["flows"] == []
    assert response.json()["operations"] == {"failed": 0, "dead": 0}


async def test_healthz_is_degraded_naming_the_flows_and_counting_failed_and_dead(
    client: httpx.AsyncClient, store: Store
) -> None:
    await seed(store)
    response = await client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert [(f["connection"], f["flow"], f["outcome"]) for f in body["flows"]] == [
        ("acme", "shipments", "failed")
    ]
    assert body["operations"] == {"failed": 1, "dead": 1}
    assert body["connections"] == {"acme": {"failed": 1, "dead": 1}}
    assert "Plex refused" not in response.text  # no error text on an open endpoint


async def test_livez_answers_without_the_database(config: Config, fake_clock: FakeClock) -> None:
    broken = Store(create_engine("postgresql://mlc@127.0.0.1:1/mlc"), clock=fake_clock)
    app = create_web_app(store=broken, config=config, clock=fake_clock)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://t"
        ) as client:
            response = await client.get("/livez")
    finally:
        await broken.close()
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


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
    for flow, outcome in (("orders", "ok"), ("shipments", "failed")):
        for each in ("ok", "partial", "failed"):
            labels = f'{{connection="acme",flow="{flow}",outcome="{each}"}}'
            assert values[f"mlconnector_flow_last_run_outcome{labels}"] == (each == outcome)
    assert values[f"mlconnector_flow_last_run_timestamp_seconds{orders}"] == FAKE_START.timestamp()
    assert values[f"mlconnector_flow_last_run_ok{orders}"] == 1
    assert values[f"mlconnector_flow_last_run_ok{shipments}"] == 0
    assert values[f"mlconnector_flow_last_run_duration_seconds{orders}"] == 1.25
    assert values[f'mlconnector_build_info{{version="{__version__}"}}'] == 1
    families = [line.split()[2] for line in response.text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families))
    # every counter and histogram is declared even before anything happened
    for name in (
        "mlconnector_api_requests",
        "mlconnector_api_retries",
        "mlconnector_api_rate_limit_waits",
        "mlconnector_webhook_deliveries",
        "mlconnector_operation_transitions",
        "mlconnector_runs",
    ):
        assert f"# TYPE {name}_total counter" in response.text
    for name in ("mlconnector_api_request_duration_seconds", "mlconnector_run_duration_seconds"):
        assert f"# TYPE {name} histogram" in response.text


async def test_metrics_follow_the_store(client: httpx.AsyncClient, store: Store) -> None:
    await seed(store)
    (item,) = await store.pending_webhooks(connection="acme")
    await store.finish_webhook(item.id, "ok")
    values = samples((await client.get("/metrics")).text)
    assert values['mlconnector_webhook_inbox_pending{connection="acme"}'] == 0


async def test_two_apps_keep_their_own_counters(config: Config, store: Store) -> None:
    first = create_web_app(store=store, config=config, clock=store.clock)
    second = create_web_app(store=store, config=config, clock=store.clock)
    first.state.metrics.run_finished("acme", "orders", "partial", 2.0)
    for app, expected in ((first, 1.0), (second, 0.0)):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://t"
        ) as client:
            values = samples((await client.get("/metrics")).text)
        key = 'mlconnector_runs_total{connection="acme",flow="orders",outcome="partial"}'
        assert values.get(key, 0.0) == expected


async def test_a_ui_replay_counts_the_operation_back_to_pending(
    client: httpx.AsyncClient, store: Store
) -> None:
    seeded = await seed(store)
    response = await client.post(
        f"/operations/{seeded.dead_id}/replay",
        data={"back": "/operations"},
        headers={"origin": "http://testserver"},
    )
    assert response.status_code == 303
    values = samples((await client.get("/metrics")).text)
    key = 'mlconnector_operation_transitions_total{connection="acme",flow="%s",state="pending"}'
    op = await store.get_operation(seeded.dead_id)
    assert op is not None
    assert values[key % op.flow] == 1


async def test_metrics_count_open_quarantined_records_per_flow(
    client: httpx.AsyncClient, store: Store
) -> None:
    from mlconnector.store import QuarantineEntry

    await seed(store)

    def entry(record_id: str) -> QuarantineEntry:
        return QuarantineEntry("Plex Release", record_id, "quantity", "'x'", "bad", "fix it")

    await store.quarantine("acme", "orders", entry("r-1"))
    await store.quarantine("acme", "orders", entry("r-2"))
    done = await store.quarantine("acme", "shipments", entry("s-1"))
    await store.resolve_quarantined("acme", "shipments", records=[("Plex Release", "s-1")])
    assert done.id
    values = samples((await client.get("/metrics")).text)
    gauge = "mlconnector_quarantined_records"
    assert values[f'{gauge}{{connection="acme",flow="orders"}}'] == 2
    # a flow with nothing open still has its series (0), so an alert can see it clear
    assert values[f'{gauge}{{connection="acme",flow="shipments"}}'] == 0
    assert values[f'{gauge}{{connection="acme",flow="inventory"}}'] == 0
