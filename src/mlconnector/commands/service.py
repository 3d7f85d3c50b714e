"""Long-running commands and their set-up: ``run``, ``worker``, ``serve``, ``webhooks register``
and ``sandbox``.

* ``run``: the scheduler and the web app (webhook receiver + UI) in one process; a stored webhook
  nudges the engine so the inbox is processed at once;
* ``worker``: the engine only — on PostgreSQL procrastinate's worker (any number of them share
  the jobs, one per flow run, locked per (connection, flow)); on SQLite the in-process scheduler;
* ``serve``: the web app only (stateless; on PostgreSQL a stored webhook defers the shipments
  job at once);
* ``webhooks register``: subscribe the connection's ShipStation account to the shipment events at
  ``{public_url}/webhooks/shipstation/{connection}/{token}``; idempotent;
* ``sandbox``: both simulators on loopback until Ctrl-C, with their URLs and credentials.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands._engine import on_signals, opened_engine, web_server
from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.config import Config
from mlconnector.sync.scheduler import EngineOptions

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mlconnector.store import Store
    from mlconnector.sync.engine import Engine
    from mlconnector.sync.runtime import ConnectionRuntime
    from mlconnector.web.metrics import Metrics

#: the ShipStation V1 events the connector listens to
WEBHOOK_EVENTS = ("SHIP_NOTIFY", "ITEM_SHIP_NOTIFY", "FULFILLMENT_SHIPPED", "FULFILLMENT_REJECTED")

webhooks_app = typer.Typer(help="ShipStation webhook subscriptions.", no_args_is_help=True)


# --- run / worker / serve ----------------------------------------------------------------------
@reports_errors
def run(ctx: typer.Context) -> None:
    """Scheduler + webhook receiver + operator UI in one process (Ctrl-C / SIGTERM stops it
    after the running steps finish)."""
    state = get_context(ctx)
    _serve_forever(_run(state, state.load_config(), web=True, engine=True))


@reports_errors
def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Flow runs at once in this process.")
    ] = 16,
    stalled_after: Annotated[
        float,
        typer.Option(
            "--stalled-after",
            min=1.0,
            help="PostgreSQL: seconds without a heartbeat after which a worker's jobs are "
            "handed to another.",
        ),
    ] = 30.0,
) -> None:
    """The engine's worker only: procrastinate's on PostgreSQL (run several to scale out),
    the in-process scheduler on SQLite."""
    state = get_context(ctx)
    config = state.load_config()
    _serve_forever(
        _run(
            state,
            config,
            web=False,
            engine=True,
            concurrency=concurrency,
            stalled_after=stalled_after,
        )
    )


@reports_errors
def serve(ctx: typer.Context) -> None:
    """The web app only: webhook receiver, operator UI, /healthz, /metrics."""
    state = get_context(ctx)
    _serve_forever(_run(state, state.load_config(), web=True, engine=False))


def _serve_forever(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived command on uvloop's event loop where it is installed (less CPU per
    webhook delivery and per database round trip), else on asyncio's."""
    from mlconnector.web.server import event_loop_factory

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main)


async def _run(
    state: CliContext,
    config: Config,
    *,
    web: bool,
    engine: bool,
    concurrency: int = 32,
    stalled_after: float = 30.0,
) -> None:
    from mlconnector.store.wal import checkpointing
    from mlconnector.web.metrics import Metrics

    # one set of counters per process: the engine's events show on this process's /metrics
    # (a worker's reach a separate `serve` only through PROMETHEUS_MULTIPROC_DIR)
    metrics = Metrics(env=state.env)
    options = EngineOptions(concurrency=concurrency)
    async with opened_engine(state, config, options=options, observer=metrics) as (eng, store):
        await check_master_key(store, "run" if web and engine else "serve" if web else "worker")
        if store.dialect == "postgresql":
            await _run_scaled(
                state,
                config,
                eng,
                store,
                web=web,
                work=engine,
                stalled_after=stalled_after,
                metrics=metrics,
            )
            return
        server = None
        if web:
            app = build_web_app(
                state,
                config,
                store,
                on_webhook=eng.nudge if engine else None,
                flow_states=_local_states(eng) if engine else None,
                metrics=metrics,
            )
            server = web_server(app, config.web)
            state.console.print(f"web: http://{config.web.host}:{config.web.port}/")

        def stop() -> None:
            eng.stop()
            if server is not None:
                server.should_exit = True

        # SQLite: the WAL is checkpointed by a task of its own, not inside a delivery's commit
        with on_signals(stop):
            async with checkpointing(store, state.clock):
                tasks = []
                if server is not None:
                    tasks.append(asyncio.create_task(server.serve()))
                if engine:
                    names = ", ".join(eng.connections()) or "no connection"
                    state.console.print(f"scheduler: {names}")
                    tasks.append(asyncio.create_task(_engine_then_stop(eng, stop)))
                await asyncio.gather(*tasks)


async def check_master_key(store: Store, command: str) -> None:
    """Decrypt every stored credential before anything starts: with a wrong master key the
    command stops here, naming the credential and the key's source, instead of answering 500
    to every webhook and page."""
    from mlconnector.errors import VaultError

    try:
        await store.verify_credentials()
    except VaultError as exc:
        raise VaultError(
            f"`{command}` did not start: {exc.message}", record=exc.record, hint=exc.hint
        ) from exc


def _local_states(engine: Engine) -> Callable[[str], Awaitable[dict[str, str]]]:
    async def states(connection: str) -> dict[str, str]:
        return engine.states(connection)

    return states


async def _run_scaled(
    state: CliContext,
    config: Config,
    eng: Engine,
    store: Store,
    *,
    web: bool,
    work: bool,
    stalled_after: float = 30.0,
    metrics: Metrics | None = None,
) -> None:
    """PostgreSQL: procrastinate's worker (``work``) and/or the stateless web app, whose
    webhooks defer the shipments job at once."""
    from mlconnector.sync.jobs import JobQueue, ensure_scheduled, opened_app, retry_stalled_jobs

    url = store.engine.url.render_as_string(hide_password=False)
    runner = eng.runner if work else None
    async with opened_app(store, url, runner=runner, stalled_after=stalled_after) as app:
        queue = JobQueue(app)

        async def flow_states(connection: str) -> dict[str, str]:
            return {f: s for (_c, f), s in (await queue.states(connection)).items()}

        server = None
        if web:
            web_app = build_web_app(
                state,
                config,
                store,
                on_webhook=queue.nudge,
                flow_states=flow_states,
                metrics=metrics,
            )
            server = web_server(web_app, config.web)
            state.console.print(f"web: http://{config.web.host}:{config.web.port}/")
        tasks: list[asyncio.Task[None]] = []
        if server is not None:
            tasks.append(asyncio.create_task(server.serve()))
        if work:
            # at start, not at the first periodic pass: take over the jobs of dead workers, and
            # schedule every flow that has no job yet
            await retry_stalled_jobs(app, after=stalled_after)
            await ensure_scheduled(eng.runner, queue)
            state.console.print(
                f"worker {eng.owner}: {', '.join(eng.connections()) or 'no connection'}"
            )
            tasks.append(
                asyncio.create_task(
                    app.run_worker_async(
                        name=eng.owner,
                        concurrency=eng.options.concurrency,
                        install_signal_handlers=False,
                        update_heartbeat_interval=stalled_after / 3,
                        stalled_worker_timeout=stalled_after,
                    )
                )
            )

        def stop() -> None:
            if server is not None:
                server.should_exit = True
            for task in tasks[1 if server is not None else 0 :]:
                task.cancel()  # procrastinate stops gracefully: running jobs finish

        with on_signals(stop):
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


async def _engine_then_stop(engine: Engine, stop: object) -> None:
    try:
        await engine.run_forever()
    finally:
        if callable(stop):
            stop()


def build_web_app(
    state: CliContext,
    config: Config,
    store: Store,
    *,
    on_webhook: Callable[[str], object] | None = None,
    flow_states: Callable[[str], Awaitable[dict[str, str]]] | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The web app over ``store``; stored webhooks call ``on_webhook`` (the engine's nudge)."""
    from mlconnector.web import create_web_app

    return create_web_app(
        store=store,
        config=config,
        clock=state.clock,
        on_webhook=on_webhook,
        flow_states=flow_states,
        metrics=metrics,
    )


# --- webhooks register -------------------------------------------------------------------------
@webhooks_app.command("register")
@reports_errors
def register(
    ctx: typer.Context,
    connection: Annotated[str, typer.Option("--connection", help="The connection.")],
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Where ShipStation reaches this host (default: "
            "public_base_url of the configuration).",
        ),
    ] = None,
) -> None:
    """Subscribe the shipment events (idempotent: identical subscriptions are kept)."""
    state = get_context(ctx)
    config = state.load_config()
    config.connection(connection)
    base = (public_url or config.public_base_url or "").rstrip("/")
    if not base:
        raise state.fail(
            "no public URL for the webhook receiver",
            hint="pass --public-url https://… or set public_base_url in the configuration",
        )
    rows = asyncio.run(register_webhooks(state, config, connection, base))
    table = Table(title=f"ShipStation webhooks of {connection}")
    for column in ("event", "result", "url"):
        table.add_column(column, overflow="fold")
    for event, result, url in rows:
        table.add_row(event, result, escape(url))
    state.console.print(table)


def webhook_url(base: str, connection: str, token: str) -> str:
    """The receiver URL of a connection."""
    return f"{base.rstrip('/')}/webhooks/shipstation/{connection}/{token}"


async def register_webhooks(
    state: CliContext, config: Config, connection: str, base: str
) -> list[tuple[str, str, str]]:
    """Open the store and the connection's runtime, then :func:`ensure_subscriptions`."""
    async with opened_engine(state, config, connections=[connection]) as (engine, store):
        rt = await engine.runtime(connection)
        return await ensure_subscriptions(rt, store, base)


async def ensure_subscriptions(
    rt: ConnectionRuntime, store: Store, base: str
) -> list[tuple[str, str, str]]:
    """Make sure each of :data:`WEBHOOK_EVENTS` is subscribed once at the connection's receiver
    URL (creating the ``webhook_token`` credential if missing). Returns (event, result, masked
    URL) rows; result is ``kept`` or ``created``."""
    from mlconnector.store import CredentialKind

    connection = rt.name
    token = await store.get_credential(connection, CredentialKind.WEBHOOK_TOKEN)
    if not token:
        token = secrets.token_urlsafe(32)
        await store.set_credential(connection, CredentialKind.WEBHOOK_TOKEN, token)
    target = webhook_url(base, connection, token)
    masked = webhook_url(base, connection, token[:4] + "…")
    existing = await rt.ss_v1.list_webhooks()
    rows = []
    for event in WEBHOOK_EVENTS:
        same = [
            h
            for h in existing
            if h.hook_type == event and h.url == target and h.active is not False
        ]
        if same:
            rows.append((event, "kept", masked))
            continue
        await rt.ss_v1.subscribe_webhook(
            target_url=target, event=event, friendly_name=f"ml-connector {connection}"
        )
        rows.append((event, "created", masked))
    return rows


# --- sandbox -----------------------------------------------------------------------------------
@reports_errors
def sandbox(
    ctx: typer.Context,
    plex_port: Annotated[
        int, typer.Option("--plex-port", help="Plex simulator port (0: any free port).")
    ] = 8701,
    shipstation_port: Annotated[
        int,
        typer.Option("--shipstation-port", help="ShipStation simulator port (0: any free port)."),
    ] = 8702,
) -> None:
    """Serve the Plex and ShipStation simulators on 127.0.0.1 until Ctrl-C.

    `mlconnector connections add NAME --sandbox` writes a connection to them (URLs, PCN,
    web-service user, mappings, credentials); the table says which setting each value is."""
    state = get_context(ctx)
    asyncio.run(_sandbox(state, plex_port, shipstation_port))


async def _sandbox(state: CliContext, plex_port: int, ss_port: int) -> None:
    from mlconnector.sandbox.plex import create_plex_sandbox
    from mlconnector.sandbox.profile import prepare
    from mlconnector.sandbox.server import serve as serve_app
    from mlconnector.sandbox.shipstation import create_shipstation_sandbox

    plex = create_plex_sandbox(state.clock)
    ss = create_shipstation_sandbox(state.clock)
    stopped = asyncio.Event()
    async with (
        serve_app(plex.app, port=plex_port) as plex_url,
        serve_app(ss.app, port=ss_port) as ss_url,
    ):
        ss.public_url = ss_url
        prepare(ss)  # V2 inventory locations, one per Plex building
        ss.start_auto_delivery(2.0)
        print_sandbox(state, plex_url, ss_url, plex.credentials())
        with on_signals(stopped.set):
            await stopped.wait()
        await ss.stop_auto_delivery()


def print_sandbox(state: CliContext, plex_url: str, ss_url: str, plex: dict[str, object]) -> None:
    """The simulators' addresses and sandbox-only credentials."""
    from mlconnector.sandbox.shipstation import ShipStationAccount

    account = ShipStationAccount()
    table = Table(title="sandbox (simulated systems; these credentials work only here)")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_column("setting (connections.NAME.…) or credential", overflow="fold")
    tenants = plex.get("tenants")
    pcns = ", ".join(str(t["pcn"]) for t in tenants) if isinstance(tenants, list) else ""
    first = tenants[0] if isinstance(tenants, list) and tenants else {}
    for what, value, where in (
        ("Plex URL", plex_url, "plex.rest_base_url, plex.datasource_base_url"),
        ("Plex SOAP URL", f"{plex_url}/DataSource/Service.asmx", "plex.soap_url"),
        ("Plex PCNs", pcns, "plex.pcn (one of them)"),
        ("Plex consumer key", str(plex.get("consumer_key")), "credentials set plex: consumer_key"),
        (
            "Plex web-service user",
            str(first.get("ws_username", "")),
            "plex.web_service_user (for backfill and write_back = datasource)",
        ),
        (
            "Plex web-service password",
            str(first.get("ws_password", "")),
            "credentials set plex: ws_password",
        ),
        ("ShipStation V1 URL", ss_url, "shipstation.v1_base_url"),
        ("ShipStation V2 URL", ss_url, "shipstation.v2_base_url"),
        (
            "ShipStation V1 key / secret",
            f"{account.api_key} / {account.api_secret}",
            "credentials set shipstation: v1_key, v1_secret",
        ),
        ("ShipStation V2 key", str(account.v2_api_key), "credentials set shipstation: v2_key"),
    ):
        table.add_row(what, escape(value), escape(where))
    state.console.print(table)
    command = "connections add sandbox --sandbox"
    if not (plex_url.endswith(":8701") and ss_url.endswith(":8702")):
        command += f" --plex-url {plex_url} --shipstation-v1-url {ss_url}"
    state.console.print(
        state.hint(
            f"`mlconnector {command}` writes all of it (and the mappings) into a "
            "connection named sandbox."
        )
    )
    state.console.print("Ctrl-C stops the simulators.")
