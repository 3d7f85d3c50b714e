"""The Host allow-list, the Origin check against configured names, trusted proxy headers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import Config, WebSettings, parse_config
from mlconnector.errors import ConfigError
from mlconnector.store import OperationState, Store
from mlconnector.web import create_web_app
from mlconnector.web.security import HostPolicy
from tests.unit.web.conftest import HOOK, ORIGIN, log_in, make_config
from tests.unit.web.seed import seed

V1_BODY = b'{"resource_url": "http://ss.test/shipments?batchId=1", "resource_type": "SHIP_NOTIFY"}'


def policy(**web: object) -> HostPolicy:
    config = Config(
        home=Path("/tmp"),
        public_base_url="https://connector.example.com:8443",
        web=WebSettings.model_validate(web),
    )
    return HostPolicy.from_config(config)


def test_default_hosts_are_the_bound_host_loopback_names_and_the_public_url() -> None:
    default = policy()
    for host in (
        "127.0.0.1:8080",
        "localhost",
        "LOCALHOST:9",
        "[::1]:8080",
        "connector.example.com",
    ):
        assert default.host_allowed(host), host
    for host in ("evil.example", "127.0.0.1.evil.example", "", "connector.example.com.evil"):
        assert not default.host_allowed(host), host
    bound = policy(host="ops.plant.local")
    assert bound.host_allowed("ops.plant.local:8080")
    assert not policy(host="0.0.0.0").host_allowed("0.0.0.0")  # noqa: S104 (a wildcard bind)


def test_configured_hosts_replace_the_defaults_and_wildcards_match_subdomains() -> None:
    custom = policy(allowed_hosts=["*.plant.example", "ui.example"])
    assert custom.host_allowed("a.plant.example")
    assert custom.host_allowed("ui.example:443")
    assert not custom.host_allowed("plant.example")
    assert not custom.host_allowed("localhost")
    assert policy(allowed_hosts=["*"]).host_allowed("anything.at.all")


def test_origins_are_checked_against_configured_names_not_the_host_header() -> None:
    derived = policy()
    assert derived.origin_allowed("http://localhost:8080")
    assert derived.origin_allowed("https://connector.example.com:8443/operations")  # a Referer
    for origin in (None, "", "null", "https://evil.example", "file:///x", "http://user@localhost"):
        assert not derived.origin_allowed(origin), origin
    pinned = policy(public_origins=["https://ui.example"], allowed_hosts=["ui.example", "x.test"])
    assert pinned.origin_allowed("https://ui.example:443")
    assert pinned.origin_allowed("https://connector.example.com:8443")  # public_base_url
    assert not pinned.origin_allowed("http://ui.example")  # another scheme
    assert not pinned.origin_allowed("https://x.test")  # an allowed Host, but not an origin


async def test_a_foreign_host_is_refused_everywhere_but_the_probes(
    anonymous: httpx.AsyncClient,
) -> None:
    for method, path in (("GET", "/"), ("GET", "/login"), ("POST", HOOK)):
        response = await anonymous.request(method, path, headers={"host": "evil.example"})
        assert response.status_code == 400, path
        assert "allowed_hosts" in response.text
    for probe in ("/healthz", "/livez", "/metrics"):  # probes and scrapers use the pod address
        response = await anonymous.get(probe, headers={"host": "10.0.0.7:8080"})
        assert response.status_code == 200, probe


async def test_a_rebinding_page_with_matching_host_and_origin_cannot_replay(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The attack of the issue: Host and Origin both name the attacker's domain."""
    seeded = await seed(store)
    evil = {"host": "rebound.evil.example", "origin": "http://rebound.evil.example"}
    response = await client.post(f"/operations/{seeded.dead_id}/replay", headers=evil)
    assert response.status_code == 400
    page = await client.get("/operations", headers={"host": "rebound.evil.example"})
    assert page.status_code == 400
    assert "op-" not in page.text
    op = await store.get_operation(seeded.dead_id)
    assert op is not None
    assert op.state is OperationState.DEAD


async def test_an_allowed_host_with_an_unlisted_origin_is_refused(
    store: Store, tmp_path: Path, fake_clock: FakeClock
) -> None:
    """With public_origins set, the Host being allowed is not enough for a form."""
    seeded = await seed(store)
    config = make_config(tmp_path).model_copy(
        update={
            "web": WebSettings(
                allowed_hosts=("testserver",), public_origins=("https://ops.example",)
            )
        }
    )
    app = create_web_app(store=store, config=config, clock=fake_clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as client:
        csrf = await log_in(client, store, origin="https://ops.example")
        url = f"/operations/{seeded.dead_id}/replay"
        same_host = await client.post(url, data={"csrf_token": csrf}, headers={"origin": ORIGIN})
        assert same_host.status_code == 403
        assert "Origin" in same_host.text
        listed = await client.post(
            url, data={"csrf_token": csrf}, headers={"origin": "https://ops.example"}
        )
        assert listed.status_code == 303


async def test_webhooks_still_work_through_an_allowed_host(client: httpx.AsyncClient) -> None:
    response = await client.post(HOOK, content=V1_BODY)
    assert response.status_code == 200


def test_settings_are_validated_with_the_key_named(tmp_path: Path) -> None:
    file = tmp_path / "mlconnector.toml"
    with pytest.raises(ConfigError, match=r"web\.allowed_hosts"):
        parse_config('[web]\nallowed_hosts = ["bad host!"]\n', file, {})
    with pytest.raises(ConfigError, match=r"web\.public_origins"):
        parse_config('[web]\npublic_origins = ["ui.example"]\n', file, {})
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_config('[web]\ntrusted_proxy_header = "X-Remote-User"\n', file, {})
    with pytest.raises(ConfigError, match="MLCONNECTOR_WEB__METRICS_TOKEN"):
        parse_config('[web]\nmetrics_token = "0123456789abcdef0123"\n', file, {})
    from_env = parse_config(None, file, {"MLCONNECTOR_WEB__METRICS_TOKEN": "0123456789abcdef0123"})
    assert from_env.web.metrics_token == "0123456789abcdef0123"
    assert "0123456789abcdef0123" not in repr(from_env)
