"""Alerts: logged always, POSTed when configured, never raising, secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.http import Redactor
from mlconnector.store import Store
from mlconnector.sync import Alert, WebhookAlertSink, build_runtime

from .conftest import SECRETS, make_config


async def test_webhook_alert_posts_redacted_json_and_survives_failures() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503)

    secret = "very-secret-value"
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        sink = WebhookAlertSink(http, "http://alerts.test/hook", Redactor([secret]))
        await sink.alert(Alert("acme", "orders", "operation 7 is dead", {"error": f"key {secret}"}))
    (request,) = seen
    body = json.loads(request.content)
    assert body["connection"] == "acme"
    assert body["title"] == "operation 7 is dead"
    assert secret not in request.content.decode()
    assert len(sink.sent) == 1

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as http:
        sink = WebhookAlertSink(http, "http://alerts.test/hook")
        await sink.alert(Alert("acme", "orders", "still logged"))  # must not raise
    assert [a.title for a in sink.sent] == ["still logged"]


async def test_runtime_uses_the_configured_alert_webhook(
    tmp_path: Path, with_secrets: Store, fake_clock: FakeClock
) -> None:
    base = make_config(tmp_path)
    config = Config(
        home=tmp_path, connections=base.connections, alert_webhook_url="http://alerts.test/x"
    )
    services: list[str] = []

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        services.append(service)
        return httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))

    rt = await build_runtime(config, "acme", with_secrets, fake_clock, factory)
    try:
        assert isinstance(rt.alerts, WebhookAlertSink)
        assert rt.alerts.url == "http://alerts.test/x"
        assert set(services) == {"plex", "shipstation-v1", "shipstation-v2", "alerts"}
        assert all(s not in rt.alerts.redactor.text(s) for s in SECRETS.values())
    finally:
        await rt.aclose()
