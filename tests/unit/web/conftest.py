"""Fixtures of the web tests: a store (SQLite, and PostgreSQL when reachable) with a vault and one
connection (``acme``) whose ShipStation base URLs point at the simulator's address, the app, and an
in-process client logged in as an operator (``client``; it sends the session's CSRF token as the
``X-CSRF-Token`` header) or not logged in (``anonymous``). :func:`log_in` logs any client in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from mlconnector.clock import FakeClock
from mlconnector.config import (
    Config,
    ConnectionConfig,
    PlexSettings,
    ShipStationSettings,
    WebSettings,
)
from mlconnector.store import CredentialKind, Role, Store, Vault, generate_key, open_store
from mlconnector.store.schema import metadata
from mlconnector.web import ReceiverOptions, create_web_app
from tests.accounts import account_hash
from tests.dbutil import migrated_sqlite, temporary_database

SS_BASE = "http://ss.test"
TOKEN = "tok-3f9a0c1d2e4b5a69788"
HOOK = f"/webhooks/shipstation/acme/{TOKEN}"


def make_config(tmp_path: Path) -> Config:
    conn = ConnectionConfig(
        plex=PlexSettings(pcn="79870"),
        shipstation=ShipStationSettings(v1_base_url=SS_BASE, v2_base_url=SS_BASE),
    )
    return Config(
        home=tmp_path,
        connections={"acme": conn},
        public_base_url="https://connector.example",
        # sessions that outlive the fake clock's jumps (tests of expiry set their own)
        web=WebSettings(
            allowed_hosts=("testserver",), session_idle_minutes=7 * 24 * 60, session_max_hours=744
        ),
    )


PASSWORD = "a long test password"
ORIGIN = "http://testserver"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page puts into its forms."""
    match = _CSRF.search(html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


async def log_in(
    client: httpx.AsyncClient,
    store: Store,
    name: str = "ops",
    role: Role = Role.OPERATOR,
    password: str = PASSWORD,
    origin: str = ORIGIN,
) -> str:
    """Create the account if needed, log ``client`` in through the login form (sent from
    ``origin``), and return the session's CSRF token."""
    if await store.get_user(name) is None:
        await store.create_user(name, role, account_hash(password))
    form = await client.get("/login")
    response = await client.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": name, "password": password},
        headers={"origin": origin},
    )
    assert response.status_code == 303, response.text
    return csrf_of((await client.get("/")).text)


@pytest.fixture(scope="session")
def web_pg_url() -> Iterator[str]:
    """A session-wide PostgreSQL database for the web tests (skips, or fails under CI=true)."""
    with temporary_database() as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, fake_clock: FakeClock
) -> AsyncIterator[Store]:
    """A store with connection ``acme`` and its webhook token, on SQLite and on PostgreSQL."""
    vault = Vault([generate_key()], source="a test key")
    if request.param == "sqlite":
        url = migrated_sqlite(tmp_path / "mlc.db")
    else:
        url = request.getfixturevalue("web_pg_url")
    store = await open_store(url, clock=fake_clock, vault=vault)
    if store.dialect == "postgresql":
        # the session database is shared: start every test from empty tables
        names = ", ".join(t.name for t in metadata.sorted_tables)
        async with store.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await store.create_connection("acme", plex_pcn="79870")
    await store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, TOKEN)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def outbound() -> list[str]:
    """Every URL the app tried to reach (the default HTTP factory records and refuses)."""
    return []


@pytest.fixture
def http_factory(outbound: list[str]) -> Callable[[str, str], httpx.AsyncClient]:
    def handler(request: httpx.Request) -> httpx.Response:
        outbound.append(str(request.url))
        return httpx.Response(599, json={"message": "no network in unit tests"})

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    return factory


@pytest.fixture
def options() -> ReceiverOptions:
    return ReceiverOptions()


@pytest.fixture
async def app(
    store: Store,
    config: Config,
    fake_clock: FakeClock,
    options: ReceiverOptions,
    http_factory: Callable[[str, str], httpx.AsyncClient],
) -> AsyncIterator[Starlette]:
    app = create_web_app(
        store=store,
        config=config,
        clock=fake_clock,
        receiver_options=options,
        http_factory=http_factory,
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def anonymous(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client that has not logged in."""
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield client


@pytest.fixture
async def client(app: Starlette, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """A client logged in as the operator ``ops``, sending its CSRF token as a header."""
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        client.headers["x-csrf-token"] = await log_in(client, store)
        yield client
