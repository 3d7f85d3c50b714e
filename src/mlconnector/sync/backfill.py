"""One-off historical load: Plex sales-release history → ShipStation orders (`backfill`).

The regular orders flow only looks back ``initial_lookback`` (60 days) on *modified* dates. A
backfill walks a longer period by release **ship date** through a Plex history datasource (the
JSON Data Source API or the legacy SOAP ``ExecuteDataSource``):

1. the period ``[since, until]`` is cut into bounded windows (default 7 days); a JSON window
   whose answer says ``rowLimitExceeded`` is halved and re-read, down to ``min_window`` (below
   that the error names the window and what to do); a SOAP answer of HTTP 200 with
   ``Error=true`` stops the backfill with Plex's message (the client raises it);
2. the rows' sales orders with an open release (integer ``PO_Key``) are converted to REST ids
   with the Id Conversion API, then each order goes through **the orders flow's own decision and
   send path** (:class:`~mlconnector.sync.orders.OrdersFlow`): same mapping, same ``orderKey``,
   same content hash, same outbox keys (flow ``orders``) and links. A backfill followed by an
   orders run (or the other way round) therefore creates nothing twice;
3. after each window is committed, the position is stored as the cursor ``(connection,
   "backfill")``: ``{"since", "until", "done_until", ...}``. A re-run with the same period
   continues after ``done_until``; a different period starts afresh;
4. a real run holds the lock of the ``orders`` flow (``Store.flow_lock``) for its walk: the
   engine's orders flow and the backfill never send at the same time.

The history datasource id is not in the configuration: :data:`DEFAULT_HISTORY_DATASOURCE`
(18120, ``Sales_Release_History_Get``; confirm it on the tenant's Data Sources screen) is the
default of the command's ``--datasource`` option, like the input and column names.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import httpx

from mlconnector.errors import ConfigError, FatalError, TransientError
from mlconnector.plex import (
    DataSourceResult,
    PlexClient,
    PlexDataSourceClient,
    PlexSoapClient,
    RowLimitExceededError,
)
from mlconnector.plex.models import CLOSED_RELEASE_STATUSES
from mlconnector.plex.windows import windows
from mlconnector.store import CredentialKind
from mlconnector.sync.base import FlowResult, PlanItem, audit
from mlconnector.sync.order_links import Decision
from mlconnector.sync.orders import FLOW as ORDERS_FLOW
from mlconnector.sync.orders import OrdersFlow
from mlconnector.sync.runtime import (
    ConnectionRuntime,
    HttpFactory,
    default_http_factory,
    missing_credential,
    plex_settings,
)
from mlconnector.timezones import format_utc_z, parse_utc_z

FLOW = "backfill"
#: ``Sales_Release_History_Get`` (the simulator's id; confirm it in the tenant)
DEFAULT_HISTORY_DATASOURCE = 18120
DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_MIN_WINDOW = timedelta(hours=1)
#: the Id Conversion API takes at most this many records per call
ID_CHUNK = 5000

Source = Literal["json", "soap"]


@dataclass(frozen=True)
class BackfillPlan:
    """What to load and how (every field has the command option of the same name)."""

    since: datetime
    until: datetime
    source: Source = "json"
    datasource_id: int = DEFAULT_HISTORY_DATASOURCE
    window: timedelta = DEFAULT_WINDOW
    min_window: timedelta = DEFAULT_MIN_WINDOW
    begin_input: str = "Begin_Date"
    end_input: str = "End_Date"
    #: the column holding the sales order's integer key, and the Id Conversion object/column
    order_key_column: str = "PO_Key"
    order_object: str = "SalesOrder"

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until must be aware UTC datetimes")
        if self.until <= self.since:
            raise ConfigError(
                f"the backfill period is empty: --until {self.until.isoformat()} is not after "
                f"--since {self.since.isoformat()}",
                hint="give an --until later than --since (or leave it out: now)",
            )
        if self.window <= timedelta(0) or self.min_window <= timedelta(0):
            raise ConfigError("the backfill window and minimum window must be positive")


@dataclass(frozen=True)
class BackfillState:
    """The stored position (cursor ``backfill``): the period and how far it is done."""

    since: datetime
    until: datetime
    done_until: datetime | None = None
    windows: int = 0
    rows: int = 0
    orders: int = 0

    def covers(self, plan: BackfillPlan) -> bool:
        """Whether this state belongs to the same period (and can be resumed)."""
        return self.since == plan.since and self.until == plan.until

    @property
    def complete(self) -> bool:
        return self.done_until is not None and self.done_until >= self.until

    def to_json(self) -> str:
        return json.dumps(
            {
                "since": format_utc_z(self.since),
                "until": format_utc_z(self.until),
                "done_until": format_utc_z(self.done_until) if self.done_until else None,
                "windows": self.windows,
                "rows": self.rows,
                "orders": self.orders,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> BackfillState | None:
        """Parse a stored cursor; ``None`` when there is none or it is unreadable."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            done = raw.get("done_until")
            return cls(
                since=parse_utc_z(raw["since"]),
                until=parse_utc_z(raw["until"]),
                done_until=parse_utc_z(done) if done else None,
                windows=int(raw.get("windows", 0)),
                rows=int(raw.get("rows", 0)),
                orders=int(raw.get("orders", 0)),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class WindowDone:
    """Progress event: one window read and committed."""

    start: datetime
    end: datetime
    rows: int
    orders: int
    #: the whole period and where the walk started (for a progress bar's total and offset)
    since: datetime
    until: datetime
    resumed_from: datetime | None


@dataclass
class BackfillResult:
    """What a backfill did: the orders flow's counters plus windows, rows and narrowing."""

    result: FlowResult
    state: BackfillState
    resumed_from: datetime | None = None
    windows: int = 0
    narrowed: int = 0
    rows: int = 0
    orders: int = 0
    unknown_keys: list[str] = field(default_factory=list)

    def summary(self) -> str:
        resumed = f" (resumed at {format_utc_z(self.resumed_from)})" if self.resumed_from else ""
        return (
            f"backfill@{self.result.connection}{resumed}: {self.windows} window(s), "
            f"{self.narrowed} narrowed, {self.rows} row(s), {self.orders} order(s); "
            + self.result.summary()
        )


class HistoryReader(Protocol):
    """Runs the history datasource once (JSON raises :class:`RowLimitExceededError` when cut)."""

    async def execute(self, datasource_id: int, inputs: Mapping[str, Any]) -> DataSourceResult:
        """Run the datasource with these inputs."""
        ...


class _Reader:
    """A JSON or SOAP datasource client with the HTTP client it owns."""

    def __init__(
        self, client: PlexDataSourceClient | PlexSoapClient, http: httpx.AsyncClient
    ) -> None:
        self.client = client
        self.http = http

    async def execute(self, datasource_id: int, inputs: Mapping[str, Any]) -> DataSourceResult:
        if isinstance(self.client, PlexDataSourceClient):
            return await self.client.execute(datasource_id, inputs, on_row_limit="raise")
        return await self.client.execute(datasource_id, inputs)

    async def aclose(self) -> None:
        await self.http.aclose()


@contextlib.asynccontextmanager
async def open_history(
    rt: ConnectionRuntime,
    source: Source,
    *,
    http_factory: HttpFactory = default_http_factory,
) -> AsyncIterator[HistoryReader]:
    """The JSON or SOAP datasource reader of ``rt``'s connection (web-service user + password),
    closed on exit. Its HTTP client comes from ``http_factory("plex-datasource" | "plex-soap",
    base_url)``; JSON calls share the runtime's rate-limiter registry."""
    name = rt.name
    if not rt.config.plex.web_service_user:
        raise ConfigError(
            f"connection {name!r}: a backfill reads a Plex datasource and needs "
            "plex.web_service_user",
            hint=f"set connections.{name}.plex.web_service_user (the Plex web-service account)",
        )
    secrets: dict[str, str] = {}
    for kind in CredentialKind:
        value = await rt.store.get_credential(name, kind.value)
        if value:
            secrets[kind.value] = value
    if not secrets.get(CredentialKind.PLEX_WS_PASSWORD):
        raise missing_credential(name, CredentialKind.PLEX_WS_PASSWORD)
    settings = plex_settings(rt.config, secrets, connection=name)
    client: PlexDataSourceClient | PlexSoapClient
    if source == "soap":
        http = http_factory("plex-soap", settings.endpoints.soap_url)
        client = PlexSoapClient(
            http, settings, clock=rt.clock, redactor=rt.redactor, on_event=rt.on_event
        )
    else:
        http = http_factory("plex-datasource", settings.endpoints.datasource_url)
        client = PlexDataSourceClient(
            http,
            settings,
            clock=rt.clock,
            limiters=rt.limiters,
            redactor=rt.redactor,
            on_event=rt.on_event,
        )
    reader = _Reader(client, http)
    try:
        yield reader
    finally:
        await reader.aclose()


async def keys_to_ids(
    plex: PlexClient, keys: Sequence[int], *, standard_object: str, key_column: str
) -> dict[int, str]:
    """Datasource integer keys → REST ids (lower-case) with the Id Conversion API; keys Plex
    does not know are left out."""
    found: dict[int, str] = {}
    for start in range(0, len(keys), ID_CHUNK):
        chunk = keys[start : start + ID_CHUNK]
        answer = await plex.request_json(
            "POST",
            "platform/identity-mappings/v1/keys-to-ids",
            json_body={
                "standardObjectName": standard_object,
                "recordIdentifiers": [{key_column: key} for key in chunk],
            },
            record=f"{standard_object} keys",
        )
        rows = answer.get("recordIdentifiers", []) if isinstance(answer, dict) else []
        for row in rows:
            if isinstance(row, dict) and row.get("Id") and row.get(key_column) is not None:
                found[int(row[key_column])] = str(row["Id"]).lower()
    return found


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def open_order_keys(rows: Iterable[Mapping[str, Any]], key_column: str) -> set[int]:
    """The sales-order keys of the rows whose release still has something to ship."""
    keys: set[int] = set()
    for row in rows:
        status = str(row.get("Release_Status") or "open").strip().lower()
        left = _number(row.get("Quantity")) - _number(row.get("Quantity_Shipped"))
        raw = row.get(key_column)
        if status in CLOSED_RELEASE_STATUSES or left <= 0 or raw in (None, ""):
            continue
        try:
            keys.add(int(str(raw).strip()))
        except ValueError:
            continue
    return keys


class Backfill:
    """One backfill of one connection (see the module doc)."""

    def __init__(
        self,
        rt: ConnectionRuntime,
        plan: BackfillPlan,
        reader: HistoryReader,
        *,
        orders: OrdersFlow | None = None,
        on_window: Callable[[WindowDone], None] | None = None,
    ) -> None:
        self.rt = rt
        self.plan = plan
        self.reader = reader
        self.orders = orders or OrdersFlow()
        self.on_window = on_window
        self.owner = f"backfill:{uuid.uuid4().hex[:12]}"

    async def start_state(self) -> tuple[BackfillState, datetime | None]:
        """The state to continue from, and where a resumed walk starts (``None``: fresh)."""
        stored = await self.rt.store.get_cursor(self.rt.name, FLOW)
        state = BackfillState.from_json(stored.value if stored else None)
        if state is not None and state.covers(self.plan) and state.done_until is not None:
            return state, state.done_until
        return BackfillState(since=self.plan.since, until=self.plan.until), None

    async def run(self, *, dry_run: bool = False) -> BackfillResult:
        """Walk the period window by window; commit each window before the next.

        A real run holds the lock of the connection's ``orders`` flow for its whole walk
        (``Store.flow_lock``: the engine never sends the same groups at the same time); a dry
        run does not.
        """
        if dry_run:
            return await self._walk(dry_run=True)
        store, name = self.rt.store, self.rt.name
        async with store.flow_lock(name, ORDERS_FLOW) as held:
            if not held:
                raise TransientError(
                    f"the orders flow of connection {name!r} is running; the backfill did not "
                    "start",
                    record=name,
                    hint="try again in a few minutes, or stop `mlconnector run` for the backfill",
                )
            return await self._walk(dry_run=False)

    async def _walk(self, *, dry_run: bool) -> BackfillResult:
        plan = self.plan
        state, resumed = await self.start_state()
        outcome = BackfillResult(
            result=FlowResult(FLOW, self.rt.name, dry_run=dry_run),
            state=state,
            resumed_from=resumed,
        )
        done: set[int] = set()
        # windows to read, the next one last (a stack, so a halved window is read in order)
        pending = list(windows(resumed or plan.since, plan.until, plan.window))
        pending.reverse()
        while pending:
            low, high = pending.pop()
            try:
                result = await self.reader.execute(plan.datasource_id, self._inputs(low, high))
            except RowLimitExceededError as exc:
                if high - low <= plan.min_window:
                    raise self._too_narrow(low, high, exc) from exc
                middle = low + (high - low) / 2
                pending.extend([(middle, high), (low, middle)])
                outcome.narrowed += 1
                continue
            orders = await self._window(result.rows, done, outcome, dry_run)
            outcome.windows += 1
            outcome.rows += len(result.rows)
            outcome.orders += orders
            state = replace(
                state,
                done_until=high,
                windows=state.windows + 1,
                rows=state.rows + len(result.rows),
                orders=state.orders + orders,
            )
            if not dry_run:
                await self.rt.store.set_cursor(self.rt.name, FLOW, state.to_json())
            outcome.state = state
            if self.on_window is not None:
                self.on_window(
                    WindowDone(low, high, len(result.rows), orders, plan.since, plan.until, resumed)
                )
        if not dry_run:
            await self._audit(outcome)
        return outcome

    def _inputs(self, low: datetime, high: datetime) -> dict[str, Any]:
        return {self.plan.begin_input: format_utc_z(low), self.plan.end_input: format_utc_z(high)}

    def _too_narrow(self, low: datetime, high: datetime, exc: RowLimitExceededError) -> FatalError:
        return RowLimitExceededError(
            f"Plex history datasource {self.plan.datasource_id} still hits its Read Row Limit "
            f"for {format_utc_z(low)} .. {format_utc_z(high)}, a window of "
            f"{high - low} (the minimum); the backfill stopped there: {exc.message}",
            record=f"datasource {self.plan.datasource_id}",
            hint="re-run with a smaller --min-window (the backfill resumes where it stopped), "
            "or ask the Plex administrator to raise the datasource's Read Row Limit",
        )

    async def _window(
        self,
        rows: Sequence[Mapping[str, Any]],
        done: set[int],
        outcome: BackfillResult,
        dry_run: bool,
    ) -> int:
        """Decide and send the orders of one window's rows; the number of orders handled."""
        plan = self.plan
        keys = sorted(open_order_keys(rows, plan.order_key_column) - done)
        if not keys:
            return 0
        ids = await keys_to_ids(
            self.rt.plex, keys, standard_object=plan.order_object, key_column=plan.order_key_column
        )
        for key in keys:
            if key not in ids:
                outcome.unknown_keys.append(str(key))
                outcome.result.add(
                    PlanItem(
                        "skip",
                        "order",
                        f"{plan.order_key_column} {key}",
                        "Plex's Id Conversion API does not know this sales order key",
                    ),
                    "skipped",
                )
        decisions: list[Decision] = []
        result = outcome.result
        order_ids = sorted(set(ids.values()))
        step = self.orders.batch_size
        for start in range(0, len(order_ids), step):
            # the orders flow's own path: same mapping, keys, links and skip notes, a chunk of
            # orders per set of shared Plex reads
            decisions += await self.orders.decide_orders(
                self.rt, order_ids[start : start + step], {}, result, dry_run, set()
            )
        result.count("read", len(ids))
        if not dry_run and decisions:
            await self.orders.send(self.rt, decisions, result)
        done.update(keys)
        return len(ids)

    async def _audit(self, outcome: BackfillResult) -> None:
        plan = self.plan
        await audit(
            self.rt,
            flow=FLOW,
            action="read",
            outcome="ok",
            entity="order",
            direction="plex->ss",
            details={
                "source": plan.source,
                "datasource": plan.datasource_id,
                "period": [format_utc_z(plan.since), format_utc_z(plan.until)],
                "resumed_from": format_utc_z(outcome.resumed_from)
                if outcome.resumed_from
                else None,
                "windows": outcome.windows,
                "narrowed": outcome.narrowed,
                "rows": outcome.rows,
                "orders": outcome.orders,
                **outcome.result.counts(),
            },
        )


__all__ = [
    "DEFAULT_HISTORY_DATASOURCE",
    "DEFAULT_MIN_WINDOW",
    "DEFAULT_WINDOW",
    "FLOW",
    "Backfill",
    "BackfillPlan",
    "BackfillResult",
    "BackfillState",
    "HistoryReader",
    "WindowDone",
    "keys_to_ids",
    "open_history",
    "open_order_keys",
]
