"""A partial pass is partial on every surface: the run report, ``/metrics`` (counters and
histograms with the values the simulators' own records imply), ``/healthz`` and the dashboard.

Over real loopback HTTP: the engine (with a :class:`Metrics` observer) runs the inventory flow
against the simulators with every Plex location mapped to a ShipStation inventory location that
does not exist, after a short 429 storm; then the web app built with the same ``Metrics`` is
asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlconnector import __version__
from mlconnector.config import Config, Mappings
from mlconnector.store import Role
from mlconnector.sync import LogAlertSink
from mlconnector.sync.engine import Engine
from mlconnector.web import create_web_app
from mlconnector.web.metrics import Metrics
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import CONNECTION, ShipEnv, ship_env
from tests.unit.web.conftest import log_in

#: the web app answers the hosts it is bound to by default (localhost among them)
ORIGIN = "http://localhost"

LOCATIONS = ("DET-FG-01", "DET-FG-02", "LON-FG-01", "LON-FG-02", "TOL-FG-01", "TOL-FG-02")

Sample = tuple[str, dict[str, str], float]


def parse(text: str) -> list[Sample]:
    """Every sample of the exposition, through prometheus-client's own parser."""
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    return sum(
        v for n, lb, v in samples if n == name and all(lb.get(k) == x for k, x in labels.items())
    )


def broken_inventory_config(env: ShipEnv) -> Config:
    return env.config(mappings=Mappings(inventory_locations=dict.fromkeys(LOCATIONS, "se-1002")))


async def test_a_partial_inventory_pass_is_partial_in_metrics_healthz_and_dashboard(
    tmp_path: Path,
) -> None:
    async with ship_env(tmp_path, FAKE_START) as env:
        config = broken_inventory_config(env)
        metrics = Metrics(env={})
        engine = Engine(config, env.store, env.clock, observer=metrics, alerts=LogAlertSink())
        env.ss.faults.configure(storm_requests=2, storm_retry_after=1)
        try:
            report = await engine.run_once(CONNECTION, "inventory")
        finally:
            await engine.aclose()
        assert env.ss.faults.config.injected == {"storm": 2}
        assert report.outcome == "partial"
        assert report.result is not None
        failed = report.result.failed
        assert failed > 0
        assert report.result.adjusted == 0

        app = create_web_app(store=env.store, config=config, clock=env.clock, metrics=metrics)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as client:
            text = (await client.get("/metrics")).text
            health = await client.get("/healthz")
            live = await client.get("/livez")
            await log_in(client, env.store, role=Role.VIEWER, origin=ORIGIN)
            dashboard = (await client.get("/")).text

    samples = parse(text)
    conn = {"connection": CONNECTION, "flow": "inventory"}
    # the run, by outcome, and its duration
    assert total(samples, "mlconnector_runs_total", **conn, outcome="partial") == 1
    assert total(samples, "mlconnector_runs_total", outcome="ok") == 0
    assert total(samples, "mlconnector_run_duration_seconds_count", **conn) == 1
    assert total(samples, "mlconnector_flow_last_run_outcome", **conn, outcome="partial") == 1
    assert total(samples, "mlconnector_flow_last_run_outcome", **conn, outcome="ok") == 0
    assert total(samples, "mlconnector_flow_last_run_ok", **conn) == 0
    # every rejected adjust is one POST /v2/inventory answered 400, never retried
    v2 = {"system": "shipstation-v2"}
    assert total(samples, "mlconnector_api_requests_total", **v2, status="400") == failed
    assert (
        total(
            samples,
            "mlconnector_api_requests_total",
            **v2,
            method="POST",
            endpoint="/v2/inventory",
            status="400",
        )
        == failed
    )
    # the storm: two 429s, each waited out, no retry counted as an error
    assert total(samples, "mlconnector_api_requests_total", **v2, status="429") == 2
    assert total(samples, "mlconnector_api_rate_limit_waits_total", **v2) == 2
    assert total(samples, "mlconnector_api_retries_total") == 0
    # one latency observation per exchange
    requests = total(samples, "mlconnector_api_requests_total")
    assert requests > failed + 2
    assert total(samples, "mlconnector_api_request_duration_seconds_count") == requests
    # the outbox: each failed write entered pending, sent, failed; none confirmed
    for state in ("pending", "sent", "failed"):
        assert total(samples, "mlconnector_operation_transitions_total", **conn, state=state) == (
            failed
        )
    assert total(samples, "mlconnector_operation_transitions_total", state="confirmed") == 0
    assert total(samples, "mlconnector_operations", connection=CONNECTION, state="failed") == (
        failed
    )
    assert total(samples, "mlconnector_build_info", version=__version__) == 1
    # endpoint labels are route templates, never record ids
    endpoints = {lb["endpoint"] for n, lb, _ in samples if n == "mlconnector_api_requests_total"}
    assert endpoints
    assert not [e for e in endpoints if re.search(r"\d", re.sub(r"/v\d+(?=/|$)", "", e))]

    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "degraded"
    assert [(f["connection"], f["flow"], f["outcome"]) for f in body["flows"]] == [
        (CONNECTION, "inventory", "partial")
    ]
    assert body["operations"] == {"failed": failed, "dead": 0}
    assert live.status_code == 200

    assert '<span class="outcome-partial">partial</span>' in dashboard
    assert "outcome-ok" not in dashboard


async def test_a_failed_run_counts_its_retries_and_is_failed(tmp_path: Path) -> None:
    async with ship_env(tmp_path, FAKE_START) as env:
        config = env.config()
        metrics = Metrics(env={})
        engine = Engine(config, env.store, env.clock, observer=metrics, alerts=LogAlertSink())
        env.plex.faults.configure(error_rate=1.0, error_status=503)
        try:
            report = await engine.run_once(CONNECTION, "orders")
        finally:
            await engine.aclose()
        assert report.outcome == "failed"
        app = create_web_app(store=env.store, config=config, clock=env.clock, metrics=metrics)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as client:
            refused = await client.post("/webhooks/shipstation/acme/not-the-token", json={})
            stranger = await client.post("/webhooks/shipstation/someone-else/x", json={})
            samples = parse((await client.get("/metrics")).text)
            health = (await client.get("/healthz")).json()
    conn = {"connection": CONNECTION, "flow": "orders"}
    assert total(samples, "mlconnector_runs_total", **conn, outcome="failed") == 1
    assert total(samples, "mlconnector_flow_last_run_outcome", **conn, outcome="failed") == 1
    # the run stopped on its first Plex request: every 503 but the last was retried
    answered = total(samples, "mlconnector_api_requests_total", system="plex", status="503")
    assert answered == env.plex.faults.config.injected["error"] > 1
    retries = total(samples, "mlconnector_api_retries_total", system="plex", error="TransientError")
    assert retries == answered - 1
    assert health["status"] == "degraded"
    assert health["flows"] == [
        {
            "connection": CONNECTION,
            "flow": "orders",
            "outcome": "failed",
            "at": health["flows"][0]["at"],
        }
    ]
    assert (refused.status_code, stranger.status_code) == (404, 404)
    deliveries = "mlconnector_webhook_deliveries_total"
    assert total(samples, deliveries, connection=CONNECTION, outcome="refused") == 1
    # a name that is not configured does not become a label value
    assert total(samples, deliveries, connection="unknown", outcome="refused") == 1
    assert not [
        lb for n, lb, _ in samples if n == deliveries and lb["connection"] == "someone-else"
    ]
