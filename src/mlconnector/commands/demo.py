"""``mlconnector demo``: the whole story against the simulators, no credentials to type.

Both simulators and the web receiver are served on loopback; a temporary home holds the SQLite
store, the vault, a configuration file and one connection (``demo``) with sandbox credentials and
mappings that fit the Plex seed data. Then, through the engine (``run_once``, the real clock):

1. orders flow → the open Plex releases appear as ShipStation orders;
2. the simulated fulfilment team ships: one order on one label, one order split into two labels,
   1 piece of a release (a partial quantity: the sandbox's container-split Data Source is
   configured, so a container is split off), one label made and voided; the webhooks are
   delivered over HTTP to the receiver (inbox);
3. shipments flow → Plex shippers written back (on-hand lower), the voided label never written;
4. inventory flow → Plex on-hand pushed to ShipStation V2 inventory;
5. order-status flow, then a second orders pass → nothing sent (unchanged).

The demo checks its own claims and exits 1 if any failed. ``--keep`` keeps everything running
(scheduler with short intervals, web UI) until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands._engine import on_signals
from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.sync_cmd import styled

if TYPE_CHECKING:
    from mlconnector.config import Config
    from mlconnector.sandbox.plex import PlexSandbox
    from mlconnector.sandbox.shipstation import ShipStationSandbox
    from mlconnector.store import Link, Store
    from mlconnector.sync.engine import Engine
    from mlconnector.sync.runs import RunReport

CONNECTION = "demo"
PCN = 340884
#: short intervals for ``--keep`` (seconds)
KEEP_INTERVALS = {"orders": 15.0, "order_status": 15.0, "shipments": 10.0, "inventory": 20.0}


@dataclass
class DemoSummary:
    """What the demo did and whether each of its claims held."""

    home: Path
    counts: dict[str, int] = field(default_factory=dict)
    order_numbers: list[str] = field(default_factory=list)
    tracking: list[str] = field(default_factory=list)
    part: str = ""
    on_hand_before: float = 0.0
    on_hand_after: float = 0.0
    checks: list[tuple[str, bool]] = field(default_factory=list)
    #: every run of the story: (flow, outcome, summary)
    runs: list[tuple[str, str, str]] = field(default_factory=list)
    ui_url: str = ""

    def ran(self, report: RunReport) -> RunReport:
        """Keep a run's outcome and summary for the runs table; return it."""
        self.runs.append((report.flow, report.outcome, report.summary()))
        return report

    def check(self, claim: str, held: bool) -> None:
        self.checks.append((claim, bool(held)))

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(held for _, held in self.checks)


@reports_errors
def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the simulators, scheduler and UI running.")
    ] = False,
) -> None:
    """Run the whole sync story against the built-in simulators (about ten seconds)."""
    state = get_context(ctx)
    summary = asyncio.run(run_demo(state, keep=keep))
    print_summary(state, summary)
    if not summary.ok:
        raise typer.Exit(1)


def _config(home: Path, plex_url: str, ss_url: str, base: str, locations: dict[str, str]) -> str:
    """The demo's configuration file (mappings fit the Plex seed: buildings DET/TOL/LON)."""
    from mlconnector.sandbox.plex import CONTAINER_SPLIT_ID, PlexSandbox

    loc = ", ".join(f'"{k}" = "{v}"' for k, v in locations.items())
    ws_user = PlexSandbox.ws_username(PCN)
    return f"""# written by `mlconnector demo` (simulators on loopback; they stop with the demo)
home = "{home}"
public_base_url = "{base}"

[connections.{CONNECTION}.plex]
pcn = "{PCN}"
rest_base_url = "{plex_url}"
datasource_base_url = "{plex_url}"
web_service_user = "{ws_user}"
read_window_hours = 744

# the sandbox's container-split Data Source: a partial quantity is split off, not an operator task
[connections.{CONNECTION}.plex.container_split]
datasource_id = {CONTAINER_SPLIT_ID}

[connections.{CONNECTION}.shipstation]
v1_base_url = "{ss_url}"
v2_base_url = "{ss_url}"

[connections.{CONNECTION}.mappings]
warehouses = {{ "DET" = 200, "TOL" = 201, "LON" = 200 }}
inventory_locations = {{ {loc} }}

[connections.{CONNECTION}.mappings.stores]
default = 101
"""


def demo_flows() -> dict[str, Any]:
    """The flows with no safety lag: the demo's records are seconds old, on the real clock."""
    from mlconnector.sync.engine import default_flows

    flows: dict[str, Any] = default_flows()
    for flow in flows.values():
        if hasattr(flow, "safety_lag"):
            flow.safety_lag = timedelta(0)
    return flows


async def run_demo(
    state: CliContext, *, keep: bool = False, parent: Path | None = None
) -> DemoSummary:
    """Set everything up, run the story, check it; see the module doc. The temporary home is
    made under ``parent`` (default: the system's temporary folder) and kept for inspection."""
    from mlconnector.config import load_config
    from mlconnector.sandbox.plex import TenantSpec, create_plex_sandbox
    from mlconnector.sandbox.server import serve
    from mlconnector.sandbox.shipstation import create_shipstation_sandbox
    from mlconnector.store import init_home, load_vault, open_store

    home = Path(tempfile.mkdtemp(prefix="mlconnector-demo-", dir=parent))
    env = {**state.env, "MLCONNECTOR_HOME": str(home)}
    env.pop("MLCONNECTOR_MASTER_KEY", None)
    env.pop("MLCONNECTOR_CONFIG", None)
    env.pop("MLCONNECTOR_DATABASE_URL", None)
    init_home(env)
    clock = state.clock
    spec = TenantSpec(
        pcn=PCN, code="mlauto", name="Midland Automotive", customers=4, parts=12, orders=6
    )
    plex = create_plex_sandbox(clock, tenants=[spec])
    ss = create_shipstation_sandbox(clock)
    summary = DemoSummary(home=home)
    async with serve(plex.app) as plex_url, serve(ss.app) as ss_url:
        ss.public_url = ss_url
        locations = await _inventory_locations(ss_url)
        store = await open_store(
            f"sqlite+aiosqlite:///{home / 'mlconnector.db'}", clock=clock, vault=load_vault(env)
        )
        try:
            await _story(
                state,
                env,
                home,
                store,
                plex,
                ss,
                plex_url,
                ss_url,
                locations,
                summary,
                keep,
                load_config,
            )
        finally:
            await store.close()
    return summary


async def _inventory_locations(ss_url: str) -> dict[str, str]:
    """The fulfilment team's V2 inventory set-up: one warehouse, a location per Plex building's
    finished-goods area (Plex location code → ShipStation inventory location id)."""
    import httpx

    from mlconnector.sandbox.shipstation import ShipStationAccount

    headers = {"API-Key": ShipStationAccount().v2_api_key or ""}
    async with httpx.AsyncClient(base_url=ss_url, headers=headers, timeout=10.0) as http:
        wh = (await http.post("/v2/inventory_warehouses", json={"name": "Midland"})).json()
        wh_id = wh["inventory_warehouse_id"]
        mapping: dict[str, str] = {}
        for building in ("DET", "TOL", "LON"):
            loc = (
                await http.post(
                    "/v2/inventory_locations",
                    json={"name": building, "inventory_warehouse_id": wh_id},
                )
            ).json()
            for area in ("FG-01", "FG-02"):
                mapping[f"{building}-{area}"] = loc["inventory_location_id"]
    return mapping


async def _story(
    state: CliContext,
    env: dict[str, str],
    home: Path,
    store: Store,
    plex: PlexSandbox,
    ss: ShipStationSandbox,
    plex_url: str,
    ss_url: str,
    locations: dict[str, str],
    summary: DemoSummary,
    keep: bool,
    load_config: Any,
) -> None:
    from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, DEFAULT_WS_PASSWORD
    from mlconnector.sandbox.server import serve
    from mlconnector.sandbox.shipstation import ShipStationAccount
    from mlconnector.store import CredentialKind
    from mlconnector.sync.engine import Engine, EngineOptions
    from mlconnector.web import create_web_app
    from mlconnector.web.metrics import Metrics

    account = ShipStationAccount()
    await store.create_connection(CONNECTION, plex_pcn=str(PCN))
    for kind, value in {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.PLEX_WS_PASSWORD: DEFAULT_WS_PASSWORD,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
        CredentialKind.SS_V2_KEY: account.v2_api_key or "",
    }.items():
        await store.set_credential(CONNECTION, kind, value)
    engine_box: list[Engine] = []
    # the web app needs the config, the config needs the receiver's URL: serve a placeholder
    # route first, then build the real app behind it
    holder: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    async with serve(app) as web_url:
        (home / "mlconnector.toml").write_text(_config(home, plex_url, ss_url, web_url, locations))
        config: Config = load_config(None, env)
        metrics = Metrics(env=env)
        engine = Engine(
            config,
            store,
            state.clock,
            flows=demo_flows(),
            options=EngineOptions(tick=0.5, intervals=KEEP_INTERVALS),
            observer=metrics,
        )
        engine_box.append(engine)
        holder["app"] = create_web_app(
            store=store, config=config, clock=state.clock, on_webhook=engine.nudge, metrics=metrics
        )
        summary.ui_url = web_url + "/"
        try:
            await _chapters(engine, store, plex, ss, summary, web_url)
            if keep:
                login = await demo_login(store)
                await _keep_running(state, engine, summary, login)
        finally:
            await engine.aclose()


async def _chapters(
    engine: Engine,
    store: Store,
    plex: PlexSandbox,
    ss: ShipStationSandbox,
    summary: DemoSummary,
    web_url: str,
) -> None:
    from mlconnector.commands.service import ensure_subscriptions

    rt = await engine.runtime(CONNECTION)
    rows = await ensure_subscriptions(rt, store, web_url)
    summary.check("webhooks registered (4 events)", len(rows) == 4)

    # 1. orders
    first = summary.ran(await engine.run_once(CONNECTION, "orders"))
    links = [lk for lk in await store.list_links(CONNECTION) if lk.ss_order_id]
    orders = ss.all_orders()
    summary.counts["orders created in ShipStation"] = len(orders)
    summary.check("orders flow ran without error", first.ok and _failed(first) == 0)
    summary.check("every linked order exists once in ShipStation", _one_each(orders, links))
    summary.order_numbers = sorted(str(o["orderNumber"]) for o in orders)[:5]
    creates = _createorders(ss)

    # 2. the fulfilment team ships
    single, split, voided = _pick(links)
    tenant = plex.tenant(PCN)
    part_id = tenant.lines[tenant.releases[single.release_ids[0]].order_line_id].part_id
    summary.part = tenant.parts[part_id].number
    summary.on_hand_before = plex.on_hand(part_id, tenant=PCN)
    labels = [ss.create_label(int(single.ss_order_id or 0))]
    for rid in sorted(split.release_ids)[:2]:
        release = plex.release(rid, tenant=PCN)
        labels.append(
            ss.create_label(
                int(split.ss_order_id or 0), {rid: int(release.quantity - release.quantity_shipped)}
            )
        )
    partial = _partial(plex, links, [single, split, voided])
    if partial is not None:  # a partial quantity: split off a container (plex.container_split)
        link, rid, _ = partial
        labels.append(ss.create_label(int(link.ss_order_id or 0), {rid: 1}))
        containers_before = set(tenant.containers)
        stock_before = plex.on_hand(_part_of(plex, rid), tenant=PCN)
        shipped_before = tenant.releases[rid].quantity_shipped
    void_label = ss.create_label(int(voided.ss_order_id or 0))
    ss.void_label(void_label.shipment_id)
    summary.tracking = [label.tracking_number for label in labels]
    delivered = await ss.deliver_webhooks()
    summary.counts["webhooks delivered over HTTP"] = len(delivered)
    summary.check(
        "every webhook was accepted (HTTP 200)",
        bool(delivered) and all(d.status == 200 for d in delivered),
    )
    inbox = await store.list_webhooks(connection=CONNECTION)
    summary.check("webhooks landed in the inbox", len(inbox) >= 1)

    # 3. shipments → Plex
    shipped = summary.ran(await engine.run_once(CONNECTION, "shipments"))
    summary.check("shipments flow ran without error", shipped.ok and _failed(shipped) == 0)
    written = {
        f"ss-shipment-{label.shipment_id}": _shippers(plex, f"ss-shipment-{label.shipment_id}")
        for label in labels
    }
    summary.counts["shipments written back to Plex"] = sum(written.values())
    summary.check(
        "each shipped label was written back to Plex exactly once",
        all(n == 1 for n in written.values()),
    )
    summary.check(
        "the voided label was never written back",
        _shippers(plex, f"ss-shipment-{void_label.shipment_id}") == 0,
    )
    if partial is not None:
        _, rid, open_qty = partial
        new = [c for serial, c in tenant.containers.items() if serial not in containers_before]
        summary.check(
            f"1 of {open_qty:g} open was shipped exactly (a container split off in Plex)",
            tenant.releases[rid].quantity_shipped == shipped_before + 1
            and plex.on_hand(_part_of(plex, rid), tenant=PCN) == stock_before - 1
            and len(new) == 1,
        )
    summary.on_hand_after = plex.on_hand(part_id, tenant=PCN)
    summary.check(
        "Plex on-hand went down for the shipped part",
        summary.on_hand_after < summary.on_hand_before,
    )
    pending = await store.pending_webhooks(connection=CONNECTION)
    summary.check("the webhook inbox was processed", pending == [])

    # 4. inventory → ShipStation V2
    inventory = summary.ran(await engine.run_once(CONNECTION, "inventory"))
    adjusted = inventory.result.adjusted if inventory.result else 0
    summary.counts["inventory levels pushed to ShipStation V2"] = adjusted
    summary.check("inventory flow pushed on-hand", inventory.ok and adjusted > 0)

    # 5. order status, then a second orders pass sends nothing
    status = summary.ran(await engine.run_once(CONNECTION, "order_status"))
    summary.check("order-status flow ran without error", status.ok)
    again = summary.ran(await engine.run_once(CONNECTION, "orders"))
    summary.check(
        "a second orders pass sent nothing",
        again.ok
        and _createorders(ss) == creates
        and again.result is not None
        and again.result.created == 0
        and again.result.updated == 0,
    )
    summary.counts["orders sent on the second pass"] = _createorders(ss) - creates


def _failed(report: Any) -> int:
    return int(report.result.failed) if report.result is not None else 0


def _one_each(orders: list[dict[str, Any]], links: list[Link]) -> bool:
    keys = [str(o["orderKey"]) for o in orders]
    return len(keys) == len(set(keys)) and {lk.order_key for lk in links} <= set(keys)


def _createorders(ss: ShipStationSandbox) -> int:
    """How many orders ShipStation has been sent so far (from its own records)."""
    return sum(1 for _ in ss.all_orders(include_deleted=True))


def _pick(links: list[Link]) -> tuple[Link, Link, Link]:
    """An order to ship whole, one with two releases to split, one to label and void."""
    multi = [lk for lk in links if len(lk.release_ids) >= 2]
    if not multi or len(links) < 3:
        raise RuntimeError("the demo's seed has too few open orders")
    split = multi[0]
    rest = [lk for lk in links if lk is not split]
    return rest[0], split, rest[1]


def _part_of(plex: PlexSandbox, release_id: str) -> str:
    tenant = plex.tenant(PCN)
    return tenant.lines[tenant.releases[release_id].order_line_id].part_id


def _partial(
    plex: PlexSandbox, links: list[Link], used: list[Link]
) -> tuple[Link, str, float] | None:
    """A release of another order, of a part the other labels do not ship, with more than one
    piece open and stock in no 1-piece container: shipping 1 of it needs a split."""
    tenant = plex.tenant(PCN)
    busy = {_part_of(plex, rid) for lk in used for rid in lk.release_ids}
    for link in links:
        if link in used:
            continue
        for rid in sorted(link.release_ids):
            part = _part_of(plex, rid)
            release = tenant.releases[rid]
            open_qty = release.quantity - release.quantity_shipped
            stock = [c.quantity for c in tenant.containers.values() if c.part_id == part]
            if (
                part not in busy
                and open_qty > 1
                and plex.on_hand(part, tenant=PCN) >= 1
                and 1 not in stock
            ):
                return link, rid, open_qty
    return None


def _shippers(plex: PlexSandbox, reference: str) -> int:
    return sum(
        1
        for s in plex.shippers(tenant=PCN)
        if reference in (s.shipper_note or "") or reference in (s.note or "")
    )


#: the operator account ``demo --keep`` makes in its temporary home, so the UI can be opened
DEMO_USER = "demo"


async def demo_login(store: Store) -> str:
    """Create the demo home's operator account with a fresh random password and return it (the
    UI has no default account; this one lives only in the demo's throw-away home)."""
    from mlconnector.passwords import hash_password
    from mlconnector.store import Role

    password = secrets.token_urlsafe(12)
    await store.create_user(DEMO_USER, Role.OPERATOR, hash_password(password))
    return password


async def _keep_running(
    state: CliContext, engine: Engine, summary: DemoSummary, password: str
) -> None:
    state.console.print(
        f"[bold]kept running[/]: UI {summary.ui_url} (scheduler every 10-20 s); Ctrl-C stops.\n"
        f"log in as [bold]{DEMO_USER}[/] with password [bold]{escape(password)}[/] "
        "(made for this demo home only)"
    )
    with on_signals(engine.stop):
        await engine.run_forever()


def print_summary(state: CliContext, summary: DemoSummary) -> None:
    """What moved, the checks, and where to look."""
    table = Table(title="ml-connector demo: what moved")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in summary.counts.items():
        table.add_row(what, str(count))
    state.console.print(table)
    state.console.print(f"orders (first few): {', '.join(summary.order_numbers)}")
    state.console.print(f"tracking numbers: {', '.join(summary.tracking)}")
    state.console.print(
        f"on-hand of part {escape(summary.part)} in Plex: "
        f"{summary.on_hand_before:g} → {summary.on_hand_after:g}"
    )
    runs = Table(title="runs")
    runs.add_column("flow")
    runs.add_column("outcome")
    runs.add_column("summary", overflow="fold")
    for flow, outcome, line in summary.runs:
        runs.add_row(escape(flow), styled(outcome), escape(line))
    state.console.print(runs)
    checks = Table(title="checks")
    checks.add_column("claim", overflow="fold")
    checks.add_column("held")
    for claim, held in summary.checks:
        checks.add_row(escape(claim), "[green]yes[/]" if held else "[bold red]NO[/]")
    state.console.print(checks)
    home = summary.home
    state.console.print(f"temporary home: {home}")
    state.console.print(
        f"look closer: MLCONNECTOR_HOME={home} {state.cmd(f'audit --connection {CONNECTION}')}"
    )
    if summary.ok:
        state.console.print("[bold green]all checks held[/]")
    else:
        state.console.print("[bold red]some checks failed[/]")


def summary_json(summary: DemoSummary) -> str:
    """The summary as JSON (tests, scripts)."""
    return json.dumps(
        {
            "counts": summary.counts,
            "checks": summary.checks,
            "runs": [{"flow": f, "outcome": o, "summary": line} for f, o, line in summary.runs],
            "ok": summary.ok,
        },
        default=str,
    )
