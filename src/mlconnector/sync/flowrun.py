"""The one flow-run function, shared by the in-process scheduler (SQLite, ``mlconnector run``)
and the procrastinate jobs (PostgreSQL, ``mlconnector worker``): :meth:`FlowRunner.run`.

A run of ``(connection, flow)``:

1. **crash recovery first**: the first time this process runs the flow (and after a run that
   crashed), every operation left ``sent`` is resolved by looking at the remote system
   (:func:`~mlconnector.sync.outbox.recover`) before anything is re-sent. A worker that takes
   over the flow of a killed worker therefore resolves its writes before it sends anything;
2. the due retries (:func:`~mlconnector.sync.outbox.retry_due`);
3. the pass (mode ``run``; mode ``retry`` stops after the retries);
4. the run is recorded (the ``<flow>.last_run`` cursor and a ``run`` audit event).

"Never two at once": an in-process lock per ``(connection, flow)``, and across processes either
the procrastinate job lock ``"{connection}:{flow}"`` (a job, ``as_job``; it also checks no
one-off run holds the flow) or the store's flow lock (``Store.flow_lock``: ``sync --once``, the
embedded scheduler, a backfill). A flow that is running is refused with :class:`FlowBusyError`.
:meth:`FlowRunner.after` is the failure policy (backoff from the connection's retry budget,
one alert per failing streak) both schedulers apply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlconnector.clock import Clock
from mlconnector.config import Config
from mlconnector.errors import ConnectorError, FatalError
from mlconnector.http import RateLimiterRegistry, RetryPolicy
from mlconnector.logsetup import run_context
from mlconnector.observe import NULL_OBSERVER, Observer
from mlconnector.store import Store
from mlconnector.sync.alerts import Alert, AlertSink
from mlconnector.sync.base import Flow
from mlconnector.sync.outbox import recover, retry_due
from mlconnector.sync.runs import RunReport, record_run
from mlconnector.sync.runtime import (
    ConnectionRuntime,
    HttpFactory,
    build_runtime,
    default_http_factory,
)
from mlconnector.sync.scheduler import (
    FlowBusyError,
    Key,
    Mode,
    default_flows,
    default_owner,
)

log = logging.getLogger("mlconnector.engine")


@dataclass(frozen=True)
class Streak:
    """What the scheduler carries from one run of a flow to the next."""

    failures: int = 0
    alerted: bool = False


@dataclass(frozen=True)
class Next:
    """The policy's answer after a run: wait ``delay`` seconds; carry ``streak``; ``alert``."""

    delay: float
    streak: Streak
    alert: bool


class FlowRunner:
    """Runs flows of connections (see the module doc); one per process."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        *,
        flows: Mapping[str, Flow] | None = None,
        http_factory: HttpFactory = default_http_factory,
        limiters: RateLimiterRegistry | None = None,
        alerts: AlertSink | None = None,
        intervals: Mapping[str, float] | None = None,
        owner: str | None = None,
        connections: Sequence[str] | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.flows: dict[str, Flow] = dict(flows) if flows is not None else default_flows()
        self.http_factory = http_factory
        self.limiters = limiters or RateLimiterRegistry(clock, store.shared_budgets())
        self.alerts = alerts
        self.intervals = dict(intervals or {})
        self.owner = owner or default_owner()
        #: metrics hooks: HTTP exchanges, outbox changes, finished runs
        self.observer = observer
        self._only = list(connections) if connections is not None else None
        self._runtimes: dict[str, ConnectionRuntime] = {}
        self._runtime_locks: dict[str, asyncio.Lock] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._recovered: set[Key] = set()

    # --- what runs ---------------------------------------------------------------------------
    def connections(self) -> list[str]:
        """The enabled connections this runner serves."""
        names = [n for n, c in self.config.connections.items() if c.enabled]
        if self._only is not None:
            names = [n for n in names if n in self._only]
        return names

    def pairs(self) -> list[Key]:
        """Every (connection, flow) to schedule."""
        return [(c, f) for c in self.connections() for f in self.flows]

    def interval(self, connection: str, flow: str) -> float:
        """Seconds between runs of ``flow`` for ``connection``."""
        if flow in self.intervals:
            return float(self.intervals[flow])
        poll = self.config.connection(connection).poll
        return float(getattr(poll, flow, poll.orders))

    def flow(self, name: str) -> Flow:
        """The flow called ``name``; a :class:`ValueError` naming the known ones otherwise."""
        try:
            return self.flows[name]
        except KeyError:
            known = ", ".join(sorted(self.flows)) or "none"
            raise ValueError(f"unknown flow {name!r}; known: {known}") from None

    def busy(self, key: Key) -> bool:
        """Whether this process is running ``key`` right now."""
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

    async def runtime(self, connection: str) -> ConnectionRuntime:
        """The runtime of ``connection``, built once and shared by its flows."""
        lock = self._runtime_locks.setdefault(connection, asyncio.Lock())
        async with lock:
            rt = self._runtimes.get(connection)
            if rt is None:
                rt = await build_runtime(
                    self.config,
                    connection,
                    self.store,
                    self.clock,
                    self.http_factory,
                    self.limiters,
                    alerts=self.alerts,
                    observer=self.observer,
                )
                self._runtimes[connection] = rt
            return rt

    # --- the flow-run function -----------------------------------------------------------------
    async def run(
        self, connection: str, flow: str, mode: Mode = "run", *, as_job: bool = False
    ) -> RunReport:
        """Run ``flow`` of ``connection`` once (see the module doc); :class:`FlowBusyError` when
        it is running already. ``as_job``: the engine's job lock is held (procrastinate); else
        the store's cross-process flow lock is taken for the run. Errors of the run end up in
        the report, never raised."""
        key = (connection, flow)
        the_flow = self.flow(flow)
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            raise self._busy(key, "in this process")
        async with lock:
            if as_job:
                if not await self.store.flow_lock_free(connection, flow):
                    raise self._busy(key, "as a one-off run or backfill")
                return await self._run(key, the_flow, mode)
            async with self.store.flow_lock(connection, flow) as held:
                if not held:
                    raise self._busy(key, "in another process")
                return await self._run(key, the_flow, mode)

    def _busy(self, key: Key, where: str) -> FlowBusyError:
        return FlowBusyError(
            f"flow {key[1]} of connection {key[0]!r} is running {where}",
            record=f"{key[0]}/{key[1]}",
            hint="wait for that run to finish and try again",
        )

    async def _run(self, key: Key, flow: Flow, mode: Mode) -> RunReport:
        # every record logged during the run carries its connection, flow and run id
        with run_context(*key) as context:
            return await self._run_in_context(key, flow, mode, context.run_id)

    async def _run_in_context(self, key: Key, flow: Flow, mode: Mode, run_id: str) -> RunReport:
        report = RunReport(*key, run_id=run_id)
        started, at = self.clock.monotonic(), self.clock.now()
        try:
            rt = await self.runtime(key[0])
            if key not in self._recovered:
                report.recovered = await recover(rt, [flow])
                self._recovered.add(key)
            if flow.kinds:
                report.retried = await retry_due(rt, [flow])
            if mode == "run":
                report.result = await flow.run(rt)
        except ConnectorError as exc:
            report.error, report.fatal = str(exc), isinstance(exc, FatalError)
        except Exception as exc:  # a bug in one flow must not stop the others
            log.exception("%s/%s: unexpected error", *key)
            report.error, report.crashed = f"unexpected {type(exc).__name__}: {exc}", True
            # it may have left an operation ``sent``: resolve it before anything is resent
            self._recovered.discard(key)
        if mode == "run":
            seconds = self.clock.monotonic() - started
            await record_run(
                self.store,
                report,
                at=at,
                seconds=seconds,
                owner=self.owner,
                observer=self.observer,
            )
        return report

    async def dry_run(self, connection: str, flow: str) -> RunReport:
        """The plan of one pass, writing nothing and taking no lock."""
        the_flow = self.flow(flow)
        rt = await self.runtime(connection)
        with run_context(connection, flow) as context:
            report = RunReport(connection, flow, dry_run=True, run_id=context.run_id)
            report.result = await the_flow.run(rt, dry_run=True)
        return report

    # --- after a run ---------------------------------------------------------------------------
    def after(self, key: Key, report: RunReport, streak: Streak) -> Next:
        """When to run again and whether to alert: the interval after a good run (measured from
        its start by the caller); after a failure, the connection's backoff (capped at the
        interval) and one alert per failing streak, when fatal or at the retry budget."""
        interval = self.interval(*key)
        if report.outcome != "failed":
            # ok or partial: the run went through (record failures are the outbox's to retry);
            # its summary line was logged by record_run
            return Next(interval, Streak(), alert=False)
        failures = streak.failures + 1
        budget = self.config.connection(key[0]).retry
        policy = RetryPolicy(
            max_attempts=budget.max_attempts,
            base_delay=budget.base_delay_seconds,
            max_delay=budget.max_delay_seconds,
        )
        log.warning("%s/%s: run failed %d time(s) in a row", *key, failures)
        alert = not streak.alerted and (report.fatal or failures >= budget.max_attempts)
        delay = min(interval, policy.backoff(failures))
        return Next(delay, Streak(failures, streak.alerted or alert), alert=alert)

    async def alert(self, key: Key, report: RunReport, failures: int) -> None:
        """Raise the failing-streak alert of ``key``."""
        rt = self._runtimes.get(key[0])
        sink = rt.alerts if rt is not None else self.alerts
        alert = Alert(
            connection=key[0],
            flow=key[1],
            title=f"flow {key[1]} failed {failures} time(s) in a row",
            details={"error": report.error, "fatal": report.fatal},
        )
        if sink is None:
            log.error("ALERT %s/%s: %s %s", key[0], key[1], alert.title, alert.details)
            return
        await sink.alert(alert)

    async def aclose(self) -> None:
        """Close every runtime this runner built."""
        runtimes, self._runtimes = self._runtimes, {}
        for rt in runtimes.values():
            await rt.aclose()
