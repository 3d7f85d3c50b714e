"""App-level behaviour: security headers on every response, the uvicorn settings, packaged files."""

from __future__ import annotations

import asyncio
import gc
import socket
from importlib import resources

import httpx
import pytest
from starlette.applications import Starlette

from mlconnector.commands._engine import web_server
from mlconnector.config import WebSettings
from mlconnector.web import server_config
from tests.unit.web.conftest import HOOK


@pytest.mark.parametrize("path", ["/", "/operations", "/healthz", "/metrics", "/nowhere"])
async def test_every_response_forbids_framing_and_foreign_content(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_webhook_answers_carry_the_headers_too(client: httpx.AsyncClient) -> None:
    response = await client.post(HOOK, content=b"not json")
    assert response.status_code == 400
    assert response.headers["x-frame-options"] == "DENY"


def test_server_config_binds_loopback_by_default_without_access_log(app: Starlette) -> None:
    config = server_config(app, WebSettings())
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert config.access_log is False
    assert config.lifespan == "on"
    custom = server_config(app, WebSettings(host="0.0.0.0", port=9000))  # noqa: S104
    assert (custom.host, custom.port) == ("0.0.0.0", 9000)  # noqa: S104


def test_templates_and_stylesheet_ship_inside_the_package() -> None:
    web = resources.files("mlconnector.web")
    for name in ("base.html", "dashboard.html", "operations.html", "audit.html", "connection.html"):
        assert (web / "templates" / name).is_file()
    assert (web / "static" / "style.css").is_file()


async def test_the_served_app_freezes_its_start_up_heap(app: Starlette) -> None:
    """Once started, what start-up built is out of the collector's reach: a full collection
    does not walk it (it stopped the event loop 70-100 ms per run of the receiver benchmark)."""
    gc.unfreeze()
    server = web_server(app, WebSettings())  # serves on the socket below
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    assert gc.get_freeze_count() == 0
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn only sets a flag
                await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 1000
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        gc.unfreeze()  # the test process goes on collecting as before
        sock.close()
