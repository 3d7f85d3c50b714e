"""App-level behaviour: security headers on every response, the uvicorn settings, packaged files."""

from __future__ import annotations

from importlib import resources

import httpx
import pytest
from starlette.applications import Starlette

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
