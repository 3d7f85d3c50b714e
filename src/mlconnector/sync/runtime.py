"""Everything a flow needs for one connection, built once: :class:`ConnectionRuntime`.

:func:`build_runtime` joins the configuration (where and how) with the vaulted secrets (by
:class:`~mlconnector.store.CredentialKind`) and builds the clients: Plex REST (+ the write-back
strategy chosen by ``write_back``), ShipStation V1 and V2. All of them share the process-wide
:class:`~mlconnector.http.RateLimiterRegistry` (one budget per credential, whichever flow spends it)
and one :class:`~mlconnector.http.Redactor` that knows every secret of the connection.

The HTTP transport is injected through ``http_factory(service, base_url)``, so tests and the demo
can mount the simulators with ``httpx.ASGITransport`` or serve them on loopback.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import httpx

from mlconnector.clock import Clock
from mlconnector.config import Config, ConnectionConfig
from mlconnector.errors import ConfigError
from mlconnector.http import RateLimiterRegistry, Redactor, RequestEvent, RetryPolicy
from mlconnector.http.retry import no_jitter
from mlconnector.logsetup import register_secrets
from mlconnector.observe import NULL_OBSERVER, Observer
from mlconnector.plex import (
    ContainerSplitter,
    DataSourceStrategy,
    PlexClient,
    PlexDataSourceClient,
    PlexSettings,
    ShipperStrategy,
    WriteStrategy,
)
from mlconnector.plex.factory import settings_from_config
from mlconnector.shipstation import ShipStationV1Client, ShipStationV2Client
from mlconnector.store import CredentialKind, Store
from mlconnector.sync.alerts import AlertSink, LogAlertSink, WebhookAlertSink

log = logging.getLogger("mlconnector.sync")

#: ``http_factory(service, base_url)``: service is ``plex``, ``plex-datasource``,
#: ``shipstation-v1``, ``shipstation-v2`` or ``alerts``
HttpFactory = Callable[[str, str], httpx.AsyncClient]

#: the last HTTP exchange finished by the current asyncio task (flows of one connection may run
#: concurrently; each task sees only its own requests, so an audit never borrows another's id)
_LAST_REQUEST: ContextVar[RequestEvent | None] = ContextVar(
    "mlconnector_last_request", default=None
)


def default_http_factory(service: str, base_url: str) -> httpx.AsyncClient:
    """A plain client with a 30 s timeout (production)."""
    return httpx.AsyncClient(timeout=30.0)


@dataclass
class RuntimeStats:
    """Cheap counters fed by every HTTP exchange (for /metrics, benchmarks and the run summary)."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)


class ConnectionRuntime:
    """One connection's clients, store, clock and hooks. Build it with :func:`build_runtime`."""

    def __init__(
        self,
        *,
        name: str,
        config: ConnectionConfig,
        clock: Clock,
        store: Store,
        plex: PlexClient,
        writer: WriteStrategy,
        ss_v1: ShipStationV1Client,
        ss_v2: ShipStationV2Client | None,
        limiters: RateLimiterRegistry,
        redactor: Redactor,
        alerts: AlertSink,
        jitter: Callable[[float], float] = no_jitter,
        stats: RuntimeStats | None = None,
        owned_http: list[httpx.AsyncClient] | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.store = store
        self.plex = plex
        self.writer = writer
        self.ss_v1 = ss_v1
        self._ss_v2 = ss_v2
        self.limiters = limiters
        self.redactor = redactor
        self.alerts = alerts
        self.jitter = jitter
        self.stats = stats or RuntimeStats()
        #: metrics hooks (HTTP exchanges here, operation changes in the outbox)
        self.observer = observer
        self._owned_http = owned_http or []

    @property
    def last_request(self) -> RequestEvent | None:
        """The last HTTP exchange finished by the current task (for the audit of a write)."""
        return _LAST_REQUEST.get()

    @property
    def ss_v2(self) -> ShipStationV2Client:
        """The V2 client; a :class:`ConfigError` when the connection has no V2 API key."""
        if self._ss_v2 is None:
            raise missing_credential(self.name, CredentialKind.SS_V2_KEY)
        return self._ss_v2

    @property
    def has_ss_v2(self) -> bool:
        return self._ss_v2 is not None

    def retry_policy(self) -> RetryPolicy:
        """The outbox backoff of this connection (``[connections.X.retry]``), with its jitter."""
        budget = self.config.retry
        return RetryPolicy(
            max_attempts=budget.max_attempts,
            base_delay=budget.base_delay_seconds,
            max_delay=budget.max_delay_seconds,
            jitter=self.jitter,
        )

    def on_event(self, event: RequestEvent) -> None:
        """HTTP hook: counters and a debug line, nothing heavier (it runs on every request)."""
        _LAST_REQUEST.set(event)
        service = event.service
        self.stats.requests[service] += 1
        self.stats.statuses[f"{service} {event.status}"] += 1
        self.stats.seconds[service] = self.stats.seconds.get(service, 0.0) + event.elapsed
        if event.error:
            self.stats.errors[service] += 1
        self.observer.http_exchange(event)
        log.debug(
            "%s %s %s -> %s (attempt %s, %.3fs)",
            self.name,
            event.method,
            self.redactor.text(event.url),
            event.status,
            event.attempt,
            event.elapsed,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients this runtime created (once each)."""
        seen: set[int] = set()
        for client in self._owned_http:
            if id(client) not in seen:
                seen.add(id(client))
                await client.aclose()

    async def __aenter__(self) -> ConnectionRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def missing_credential(connection: str, kind: str) -> ConfigError:
    """The error for a credential that is not in the vault, naming the command that sets it."""
    system = "plex" if kind.startswith("plex") else "shipstation"
    return ConfigError(
        f"connection {connection!r} has no {kind} credential in the vault",
        record=connection,
        hint=f"run `mlconnector credentials set {system} --connection {connection}`",
    )


def plex_settings(
    config: ConnectionConfig, secrets: dict[str, str], *, connection: str = "?"
) -> PlexSettings:
    """config.PlexSettings + vaulted secrets → the Plex client's settings, after checking that the
    secrets the auth mode needs are there (a missing one names the command that stores it)."""
    key = secrets.get(CredentialKind.PLEX_API_KEY)
    if not key:
        raise missing_credential(connection, CredentialKind.PLEX_API_KEY)
    consumer_secret = secrets.get(CredentialKind.PLEX_CLIENT_SECRET)
    if config.plex.auth_mode == "oauth2" and not consumer_secret:
        raise missing_credential(connection, CredentialKind.PLEX_CLIENT_SECRET)
    return settings_from_config(
        config.plex,
        consumer_key=key,
        consumer_secret=consumer_secret,
        ws_password=secrets.get(CredentialKind.PLEX_WS_PASSWORD),
    )


async def _secrets(store: Store, connection: str) -> dict[str, str]:
    known = {kind.value for kind in CredentialKind}
    stored = await store.get_credentials(connection)
    return {kind: value for kind, value in stored.items() if kind in known and value}


async def build_runtime(
    config: Config,
    connection_name: str,
    store: Store,
    clock: Clock,
    http_factory: HttpFactory = default_http_factory,
    limiters: RateLimiterRegistry | None = None,
    *,
    alerts: AlertSink | None = None,
    jitter: Callable[[float], float] = no_jitter,
    retry: RetryPolicy | None = None,
    observer: Observer = NULL_OBSERVER,
) -> ConnectionRuntime:
    """Build the runtime of ``connection_name``; a missing credential is a :class:`ConfigError`
    naming the connection and the ``mlconnector credentials set`` command.

    ``limiters`` should be the process-wide registry (one budget per credential across flows);
    ``retry`` is the per-request HTTP policy of the clients (default :class:`RetryPolicy`).
    """
    conn = config.connection(connection_name)
    secrets = await _secrets(store, connection_name)
    redactor = Redactor(secrets.values())
    register_secrets(secrets.values())  # masked in every log line of the process from now on
    limiters = limiters or RateLimiterRegistry(clock, store.shared_budgets())
    for kind in (CredentialKind.SS_V1_KEY, CredentialKind.SS_V1_SECRET):
        if not secrets.get(kind):
            raise missing_credential(connection_name, kind)
    settings = plex_settings(conn, secrets, connection=connection_name)
    owned: list[httpx.AsyncClient] = []

    def http(service: str, base_url: str) -> httpx.AsyncClient:
        client = http_factory(service, base_url)
        owned.append(client)
        return client

    runtime_ref: list[ConnectionRuntime] = []

    def on_event(event: RequestEvent) -> None:
        if runtime_ref:
            runtime_ref[0].on_event(event)

    plex = PlexClient(
        http("plex", settings.endpoints.connect_url),
        settings,
        clock=clock,
        limiters=limiters,
        retry=retry,
        redactor=redactor,
        on_event=on_event,
    )
    writer: WriteStrategy
    split = settings.container_split
    datasources: PlexDataSourceClient | None = None
    if conn.write_back == "datasource" or split.datasource_id is not None:
        needs = (
            "write_back = 'datasource'"
            if conn.write_back == "datasource"
            else "plex.container_split.datasource_id"
        )
        if not settings.auth.ws_username:
            raise ConfigError(
                f"connection {connection_name!r}: {needs} needs plex.web_service_user "
                "(datasources run as a Plex web-service user)",
                hint=f"set connections.{connection_name}.plex.web_service_user",
            )
        if settings.auth.ws_password is None:
            raise missing_credential(connection_name, CredentialKind.PLEX_WS_PASSWORD)
        datasources = PlexDataSourceClient(
            http("plex-datasource", settings.endpoints.datasource_url),
            settings,
            clock=clock,
            limiters=limiters,
            retry=retry,
            redactor=redactor,
            on_event=on_event,
        )
    splitter = (
        ContainerSplitter(datasources, split)
        if datasources is not None and split.datasource_id is not None
        else None
    )
    without_split = conn.partial_without_split
    if conn.write_back == "datasource":
        assert datasources is not None
        writer = DataSourceStrategy(
            plex, datasources, splitter=splitter, without_split=without_split
        )
    else:
        writer = ShipperStrategy(plex, splitter=splitter, without_split=without_split)
    ss = conn.shipstation
    ss_v1 = ShipStationV1Client(
        http("shipstation-v1", ss.v1_base_url),
        api_key=secrets[CredentialKind.SS_V1_KEY],
        api_secret=secrets[CredentialKind.SS_V1_SECRET],
        base_url=ss.v1_base_url,
        fulfillment_webhook_path=ss.fulfillment_webhook_path,
        connection=connection_name,
        on_event=on_event,
        clock=clock,
        limiters=limiters,
        retry=retry,
        redactor=redactor,
    )
    ss_v2 = None
    if secrets.get(CredentialKind.SS_V2_KEY):
        ss_v2 = ShipStationV2Client(
            http("shipstation-v2", ss.v2_base_url),
            api_key=secrets[CredentialKind.SS_V2_KEY],
            base_url=ss.v2_base_url,
            webhook_keys_url=ss.effective_webhook_keys_url,
            next_link_bases=ss.v2_next_link_bases,
            connection=connection_name,
            on_event=on_event,
            clock=clock,
            limiters=limiters,
            retry=retry,
            redactor=redactor,
        )
    if alerts is None:
        alerts = LogAlertSink(redactor)
        if config.alert_webhook_url:
            alerts = WebhookAlertSink(
                http("alerts", config.alert_webhook_url), config.alert_webhook_url, redactor
            )
    runtime = ConnectionRuntime(
        name=connection_name,
        config=conn,
        clock=clock,
        store=store,
        plex=plex,
        writer=writer,
        ss_v1=ss_v1,
        ss_v2=ss_v2,
        limiters=limiters,
        redactor=redactor,
        alerts=alerts,
        jitter=jitter,
        owned_http=owned,
        observer=observer,
    )
    runtime_ref.append(runtime)
    return runtime
