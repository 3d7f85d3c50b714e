"""Connectivity and permission checks of one connection (what ``mlconnector ping`` runs).

Plex: reads of sales orders (last hour, through the windowed reader that verifies the filter
took effect), inventory containers (filtered to a nil part id, so the answer is tiny), customer
shippers (filtered by a shipper number nobody uses), and a write-permission probe:

* ``write_back = "shipper"``: ``PUT shipping/v1-beta1/customer-shippers/{nil uuid}`` with an
  empty body. No shipper has the nil id, so nothing can change; an answer of 404 (or 400) means
  the request got past authentication, the API-product subscription and the role check, while
  401/403 means it did not. (On real Plex the order of those gates is not documented; a 404
  is the strongest harmless evidence available.)
* ``write_back = "datasource"``: ``GET /api/datasources/{update_shipper_tracking}`` (the
  datasource's description) as the web-service user, which proves the user may use it without
  executing it.
* ``plex.container_split.datasource_id`` set: the same description read of the split datasource.

"auth + tenant" passes when any Plex read got through (so the key is good and the tenant is
granted); with OAuth2 the token request is checked first. ShipStation: V1 ``GET /warehouses``
and V2 ``GET /v2/inventory_warehouses`` prove each credential. Nothing is written anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx

from mlconnector.clock import Clock
from mlconnector.commands.clients import (
    plex_client,
    plex_datasource_client,
    shipstation_v1_client,
    shipstation_v2_client,
)
from mlconnector.commands.credentials import System, fields_of
from mlconnector.config import ConnectionConfig
from mlconnector.errors import (
    AuthenticationError,
    ConfigError,
    ConnectorError,
    NotFoundError,
    PermissionDeniedError,
    RemoteValidationError,
    RetryBudgetExhaustedError,
    TransientError,
)
from mlconnector.http import Redactor, RetryPolicy
from mlconnector.plex import PlexClient, product_for

NIL_UUID = "00000000-0000-0000-0000-000000000000"
PING_SHIPPER_NUMBER = "mlconnector-ping"
#: a ping should answer quickly: one retry, short waits
PING_RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0, max_rate_limit_waits=2)


@dataclass(frozen=True)
class CheckResult:
    """One line of the ping table."""

    connection: str
    system: str
    check: str
    ok: bool
    detail: str
    hint: str | None = None
    #: the HTTP status of a failure, when there was an answer
    status: int | None = None


Action = Callable[[], Awaitable[str]]
Hint = Callable[[ConnectorError], str | None]


async def _run(
    connection: str, system: str, check: str, action: Action, hint: Hint, redactor: Redactor
) -> CheckResult:
    try:
        detail = await action()
    except ConnectorError as exc:
        text = hint(exc) or exc.hint
        return CheckResult(
            connection,
            system,
            check,
            False,
            redactor.text(_describe(exc)),
            redactor.text(text) if text else None,
            exc.status,
        )
    return CheckResult(connection, system, check, True, detail)


def _describe(exc: ConnectorError) -> str:
    parts = [exc.message]
    if exc.status is not None:
        parts.append(f"HTTP {exc.status}")
    if exc.request_id:
        parts.append(f"request id {exc.request_id}")
    return " | ".join(parts)


def _unreachable(exc: ConnectorError, where: str) -> str | None:
    if isinstance(exc, TransientError | RetryBudgetExhaustedError) and exc.status is None:
        return f"cannot reach the host: check {where} in the configuration and the network"
    return None


def _missing(
    name: str, system: System, config: ConnectionConfig, secrets: Mapping[str, str]
) -> CheckResult | None:
    absent = [f.name for f in fields_of(system) if f.required(config) and f.kind not in secrets]
    if not absent:
        return None
    label = "Plex" if system is System.PLEX else "ShipStation"
    return CheckResult(
        name,
        label,
        "credentials",
        False,
        f"not set: {', '.join(absent)}",
        f"run `mlconnector credentials set {system.value} --connection {name}`",
    )


# --- Plex --------------------------------------------------------------------------------------
async def check_plex(
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Clock,
) -> list[CheckResult]:
    """Auth, tenant, read access (orders, inventory, shippers) and the write probe."""
    missing = _missing(name, System.PLEX, config, secrets)
    if missing:
        return [missing]
    redactor = Redactor(secrets.values())
    client = plex_client(http, config, secrets, clock=clock, retry=PING_RETRY, redactor=redactor)
    where = f"[connections.{name}.plex] rest_base_url"

    def rest_hint(exc: ConnectorError) -> str | None:
        path = exc.record or ""
        product, grant = product_for(path)
        if isinstance(exc, AuthenticationError):
            return (
                f"check the Consumer Key (`mlconnector credentials set plex --connection {name}`);"
                f" is the app subscribed to the '{product}' API product in developers.plex.com,"
                f" and is {client.routing_label()} granted to it? (Plex answers 401 for all three)"
            )
        if isinstance(exc, PermissionDeniedError):
            return f"ask the Plex administrator to give the integration user {grant}"
        return _unreachable(exc, where)

    results: list[CheckResult] = []
    if config.plex.auth_mode == "oauth2":
        results.append(
            await _run(
                name,
                "Plex",
                "OAuth2 token",
                lambda: _token(client),
                lambda exc: _unreachable(exc, f"[connections.{name}.plex] token_url"),
                redactor,
            )
        )
        if not results[-1].ok:
            return results
    reads = [
        ("read sales orders", lambda: _orders(client, clock)),
        ("read inventory (containers)", lambda: _containers(client)),
        ("read customer shippers", lambda: _shippers(client)),
    ]
    for check, action in reads:
        results.append(await _run(name, "Plex", check, action, rest_hint, redactor))
    results.append(
        await _write_probe(name, config, secrets, client, http, clock, rest_hint, redactor)
    )
    split = await container_split_check(name, config, secrets, http, clock)
    if split is not None:
        results.append(split)
    return [_auth_summary(name, client, results), *results]


async def _token(client: PlexClient) -> str:
    await client.credentials.token()
    return "token issued"


async def _orders(client: PlexClient, clock: Clock) -> str:
    end = clock.now()
    orders = [o async for o in client.iter_orders_modified(end - timedelta(hours=1), end)]
    return f"ok ({len(orders)} modified in the last hour)"


async def _containers(client: PlexClient) -> str:
    await client.list_containers(part_id=NIL_UUID)
    return "ok"


async def _shippers(client: PlexClient) -> str:
    await client.list_shippers([("shipperNumber", PING_SHIPPER_NUMBER)])
    return "ok"


async def _write_probe(
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    client: PlexClient,
    http: httpx.AsyncClient,
    clock: Clock,
    rest_hint: Hint,
    redactor: Redactor,
) -> CheckResult:
    if config.write_back == "datasource":
        datasource = config.plex.datasources.update_shipper_tracking
        return await _datasource_check(
            name,
            config,
            secrets,
            http,
            clock,
            redactor,
            datasource,
            "write access",
            "plex.datasources.update_shipper_tracking",
        )

    async def probe() -> str:
        path = f"shipping/v1-beta1/customer-shippers/{NIL_UUID}"
        try:
            await client.request_json("PUT", path, json_body={}, record=path)
        except (NotFoundError, RemoteValidationError) as exc:
            return f"allowed (probe on a nil shipper id answered {exc.status}; nothing changed)"
        return "allowed"

    return await _run(name, "Plex", "write access (customer shippers)", probe, rest_hint, redactor)


async def container_split_check(
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Clock,
) -> CheckResult | None:
    """The configured container-split datasource exists and is granted (``None``: none set)."""
    split = config.plex.container_split.datasource_id
    if split is None:
        return None
    return await _datasource_check(
        name,
        config,
        secrets,
        http,
        clock,
        Redactor(secrets.values()),
        split,
        "container split",
        "plex.container_split.datasource_id",
    )


async def _datasource_check(
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Clock,
    redactor: Redactor,
    datasource: int,
    purpose: str,
    setting: str,
) -> CheckResult:
    """The datasource's description as the web-service user: it exists and is granted
    (``setting``: where its id is configured, for the hint)."""

    async def describe() -> str:
        ds_client = plex_datasource_client(
            http, config, secrets, clock=clock, retry=PING_RETRY, redactor=redactor
        )
        await ds_client.request_json("GET", f"api/datasources/{datasource}")
        return f"web-service user may use datasource {datasource} (not executed)"

    def ds_hint(exc: ConnectorError) -> str | None:
        if isinstance(exc, ConfigError) and exc.status is not None:  # Plex: no such datasource
            return (
                f"check [connections.{name}] {setting} = {datasource} against the Data Sources "
                "screen in Plex"
            )
        return _unreachable(exc, f"[connections.{name}.plex] datasource_base_url") or (
            f"have the Plex administrator grant datasource {datasource} to the web-service "
            f"user on 'Web Service Access By User Account'"
            if isinstance(exc, PermissionDeniedError | NotFoundError)
            else None
        )

    return await _run(
        name, "Plex", f"{purpose} (datasource {datasource})", describe, ds_hint, redactor
    )


def _auth_summary(name: str, client: PlexClient, results: list[CheckResult]) -> CheckResult:
    """Auth and tenant pass when any REST call got through; fail when every one was a 401."""
    check = f"auth + tenant ({client.routing_label()})"
    reads = [r for r in results if r.check != "OAuth2 token"]
    if any(r.ok for r in reads):
        return CheckResult(name, "Plex", check, True, "key accepted, tenant granted")
    if all(r.status == 401 for r in reads):
        return CheckResult(
            name,
            "Plex",
            check,
            False,
            "every Plex call answered 401",
            f"check the Consumer Key (`mlconnector credentials set plex --connection {name}`) "
            f"and that {client.routing_label()} is granted to the app; is the app subscribed to "
            "the Sales Orders API product?",
        )
    return CheckResult(name, "Plex", check, False, "no Plex call succeeded", reads[0].hint)


# --- ShipStation -------------------------------------------------------------------------------
async def check_shipstation(
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Clock,
) -> list[CheckResult]:
    """V1 and V2 authentication, each with a cheap authenticated read."""
    missing = _missing(name, System.SHIPSTATION, config, secrets)
    if missing:
        return [missing]
    redactor = Redactor(secrets.values())
    v1 = shipstation_v1_client(
        http, name, config, secrets, clock=clock, retry=PING_RETRY, redactor=redactor, timeout=20
    )
    v2 = shipstation_v2_client(
        http, name, config, secrets, clock=clock, retry=PING_RETRY, redactor=redactor, timeout=20
    )

    async def v1_read() -> str:
        return f"ok ({len(await v1.list_warehouses())} warehouses)"

    async def v2_read() -> str:
        return f"ok ({len(await v2.list_inventory_warehouses())} inventory warehouses)"

    return [
        await _run(
            name,
            "ShipStation",
            "V1 auth (GET /warehouses)",
            v1_read,
            lambda exc: _unreachable(exc, f"[connections.{name}.shipstation] v1_base_url"),
            redactor,
        ),
        await _run(
            name,
            "ShipStation",
            "V2 auth (GET /v2/inventory_warehouses)",
            v2_read,
            lambda exc: _unreachable(exc, f"[connections.{name}.shipstation] v2_base_url"),
            redactor,
        ),
    ]


async def check_connection(
    name: str,
    config: ConnectionConfig,
    secrets: Mapping[str, str],
    http: httpx.AsyncClient,
    clock: Clock,
) -> list[CheckResult]:
    """Every check of one connection (Plex and ShipStation concurrently)."""
    plex, shipstation = await asyncio.gather(
        check_plex(name, config, secrets, http, clock),
        check_shipstation(name, config, secrets, http, clock),
    )
    return [*plex, *shipstation]
