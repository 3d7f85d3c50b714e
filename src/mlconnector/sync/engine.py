"""The engine: runs every flow of every enabled connection on its interval, safely.

* **Intervals** come from ``[connections.X.poll]`` (``EngineOptions.intervals`` overrides them,
  for the demo and tests) and are measured from the last full run recorded in the store by *any*
  worker (:mod:`.runs`), so scaled-out workers share one schedule.
* **Leases**: a flow runs only under the lease of its ``(connection, flow)``
  (``Store.try_acquire_lease``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL). A second engine on the
  same database skips a flow whose lease is held and looks again next tick. The lease is renewed
  every third of its time-to-live during a long run; a worker that dies stops renewing, its lease
  expires and another worker takes the flow over. A worker that finds its lease taken stops that
  run (the outbox and :func:`~mlconnector.sync.outbox.recover` keep the writes exactly-once).
* **Crash recovery first**: before a flow's first run after start, every operation of that flow
  left ``sent`` is resolved by looking at the remote system (:func:`recover`), before anything is
  re-sent.
* **Retries**: each run starts with :func:`retry_due`; between runs, a tick that finds due
  operations of a flow runs the retries alone. Operation backoff and ``dead`` (with one alert) are
  the outbox's; a run that fails as a whole is tried again after a backoff from the connection's
  retry budget, and alerts once when the error is fatal or the failures reach the budget.
* **Webhooks**: :meth:`Engine.nudge` (the receiver's ``on_webhook``) wakes the loop and runs the
  connection's inbox flow (``shipments``) at once.
* **Stop**: :meth:`Engine.stop` (SIGTERM/SIGINT when ``install_signals``) lets the running steps
  finish, releases the leases and closes the runtimes; a second signal cancels the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from mlconnector.clock import Clock
from mlconnector.config import Config
from mlconnector.errors import ConnectorError, FatalError
from mlconnector.http import RateLimiterRegistry, RetryPolicy
from mlconnector.logsetup import run_context
from mlconnector.observe import NULL_OBSERVER, Observer
from mlconnector.store import Lease, Store, StoreError
from mlconnector.sync.alerts import Alert, AlertSink
from mlconnector.sync.base import Flow
from mlconnector.sync.outbox import recover, retry_due
from mlconnector.sync.runs import LastRun, RunReport, get_last_run, record_run
from mlconnector.sync.runtime import (
    ConnectionRuntime,
    HttpFactory,
    build_runtime,
    default_http_factory,
)
from mlconnector.sync.scheduler import (
    FLOW_CLASSES,
    INBOX_FLOW,
    EngineOptions,
    FlowBusyError,
    Key,
    Mode,
    Slot,
    default_flows,
    default_owner,
    owner_is_dead_local_process,
)

log = logging.getLogger("mlconnector.engine")


class Engine:
    """The scheduler of one process (see the module doc). ``flows`` defaults to every flow of
    this build; ``alerts`` to the runtime's own (log, plus ``alert_webhook_url`` when set)."""

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
        options: EngineOptions | None = None,
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
        self.options = options or EngineOptions()
        self.owner = self.options.owner or default_owner()
        #: metrics hooks: HTTP exchanges, outbox changes, finished runs
        self.observer = observer
        self._only = list(connections) if connections is not None else None
        self._slots: dict[Key, Slot] = {}
        self._runtimes: dict[str, ConnectionRuntime] = {}
        self._runtime_locks: dict[str, asyncio.Lock] = {}
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._signals: list[signal.Signals] = []

    # --- what runs ---------------------------------------------------------------------------
    def connections(self) -> list[str]:
        """The enabled connections this engine schedules."""
        names = [n for n, c in self.config.connections.items() if c.enabled]
        if self._only is not None:
            names = [n for n in names if n in self._only]
        return names

    def interval(self, connection: str, flow: str) -> float:
        """Seconds between runs of ``flow`` for ``connection``."""
        if flow in self.options.intervals:
            return float(self.options.intervals[flow])
        poll = self.config.connection(connection).poll
        return float(getattr(poll, flow, poll.orders))

    def flow(self, name: str) -> Flow:
        """The flow called ``name``; a :class:`ValueError` naming the known ones otherwise."""
        try:
            return self.flows[name]
        except KeyError:
            known = ", ".join(sorted(self.flows)) or "none"
            raise ValueError(f"unknown flow {name!r}; known: {known}") from None

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

    def _slot(self, key: Key) -> Slot:
        return self._slots.setdefault(key, Slot())

    # --- one run, for the CLI ------------------------------------------------------------------
    async def run_once(self, connection: str, flow: str, *, dry_run: bool = False) -> RunReport:
        """Run one flow once now (``mlconnector sync … --once``). A real run takes the lease
        (:class:`FlowBusyError` if another worker holds it), resolves operations left ``sent``,
        sends due retries, runs the pass and records it. A dry run takes no lease and writes
        nothing: the report's ``result.plan`` says what would happen."""
        the_flow = self.flow(flow)
        rt = await self.runtime(connection)
        if dry_run:
            with run_context(connection, flow) as context:
                report = RunReport(connection, flow, dry_run=True, run_id=context.run_id)
                report.result = await the_flow.run(rt, dry_run=True)
            return report
        lease = await self._acquire(connection, flow)
        if lease is None:
            raise self._busy(connection, flow, await self.store.get_lease(connection, flow))
        return await self._run_leased(rt, the_flow, "run")

    async def _acquire(self, connection: str, flow: str) -> Lease | None:
        """Take the lease; a lease left by a dead process of this host is taken over at once
        (a restarted process need not wait for its own previous lease to expire)."""
        lease = await self.store.try_acquire_lease(connection, flow, self.owner, self._ttl())
        if lease is not None:
            return lease
        held = await self.store.get_lease(connection, flow)
        if held is not None and owner_is_dead_local_process(held.owner):
            log.warning(
                "%s/%s: lease of %s, a process of this host that no longer runs, taken over",
                connection,
                flow,
                held.owner,
            )
            await self.store.release_lease(connection, flow, held.owner)
            return await self.store.try_acquire_lease(connection, flow, self.owner, self._ttl())
        return None

    def _busy(self, connection: str, flow: str, lease: Lease | None) -> FlowBusyError:
        holder = f" by {lease.owner} until {lease.expires_at.isoformat()}" if lease else ""
        return FlowBusyError(
            f"flow {flow} of connection {connection!r} is running elsewhere (lease held{holder})",
            record=f"{connection}/{flow}",
            hint="wait for that run to finish (or for its lease to expire) and try again",
        )

    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.options.lease_ttl)

    # --- the scheduler -------------------------------------------------------------------------
    def nudge(self, connection: str) -> None:
        """A webhook arrived for ``connection``: process its inbox soon (receiver hook)."""
        if INBOX_FLOW in self.flows:
            self._slot((connection, INBOX_FLOW)).nudged = True
        if self._wake is not None:
            self._wake.set()

    def stop(self) -> None:
        """Stop after the running steps finish (idempotent; a second call cancels them)."""
        if self._stopping:
            for slot in self._slots.values():
                if slot.task is not None and not slot.task.done():
                    slot.task.cancel()
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run_forever(self, *, install_signals: bool = False) -> None:
        """Schedule until :meth:`stop`; then wait for running steps and release everything."""
        self._wake = self._wake or asyncio.Event()
        if install_signals:
            self._install_signals()
        log.info("engine %s started: %s", self.owner, ", ".join(self.connections()) or "idle")
        try:
            while not self._stopping:
                await self.tick()
                await self._sleep_or_wake(self.options.tick)
            await self.drain()
        finally:
            self._remove_signals()
            await self.aclose()
            log.info("engine %s stopped", self.owner)

    async def tick(self) -> list[asyncio.Task[RunReport]]:
        """One scheduler pass: start every due flow that is not already running."""
        started: list[asyncio.Task[RunReport]] = []
        now = self.clock.now()
        for connection in self.connections():
            for name in self.flows:
                if self._stopping:
                    return started
                key = (connection, name)
                slot = self._slot(key)
                if slot.task is not None and not slot.task.done():
                    continue
                try:
                    mode = await self._due(key, slot, now)
                    if mode is None:
                        continue
                    task = await self._start(key, slot, mode)
                except StoreError as exc:
                    log.error("%s/%s: the store refused the schedule step: %s", *key, exc)
                    slot.next_due = now + timedelta(seconds=self.interval(*key))
                    continue
                if task is not None:
                    started.append(task)
        return started

    async def drain(self) -> list[RunReport]:
        """Wait for every running step (after :meth:`stop`)."""
        tasks = [s.task for s in self._slots.values() if s.task is not None and not s.task.done()]
        reports: list[RunReport] = []
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                reports.append(await task)
        return reports

    async def _due(self, key: Key, slot: Slot, now: datetime) -> Mode | None:
        if slot.nudged:
            return "run"
        if slot.next_due is None:
            slot.next_due = await self._due_from_store(key, now)
        if slot.next_due <= now:
            return "run"
        flow = self.flows[key[1]]
        if flow.kinds and await self.store.due(key[0], key[1], now=now, limit=1):
            return "retry"
        return None

    async def _due_from_store(self, key: Key, now: datetime) -> datetime:
        last = await get_last_run(self.store, *key)
        if last is None:
            return now
        return last.at + timedelta(seconds=self.interval(*key))

    async def _start(self, key: Key, slot: Slot, mode: Mode) -> asyncio.Task[RunReport] | None:
        connection, name = key
        now = self.clock.now()
        lease = await self._acquire(connection, name)
        if lease is None:
            # running elsewhere: look again next tick (its last run will move our schedule)
            slot.next_due = None if not slot.nudged else slot.next_due
            return None
        if mode == "run" and not slot.nudged:
            last = await get_last_run(self.store, *key)
            if last is not None and last.owner != self.owner:
                due = last.at + timedelta(seconds=self.interval(*key))
                if due > now:  # another worker ran it while we were deciding
                    slot.next_due = due
                    await self.store.release_lease(connection, name, self.owner)
                    return None
        slot.nudged = False
        slot.started = now
        slot.task = asyncio.create_task(self._scheduled(key, slot, mode))
        return slot.task

    async def _scheduled(self, key: Key, slot: Slot, mode: Mode) -> RunReport:
        connection, name = key
        try:
            rt = await self.runtime(connection)
        except ConnectorError as exc:
            await self.store.release_lease(connection, name, self.owner)
            report = RunReport(connection, name, error=str(exc), fatal=isinstance(exc, FatalError))
            await self._after(key, slot, report, mode, rt=None)
            return report
        report = await self._run_leased(
            rt, self.flows[name], mode, recover_first=not slot.recovered
        )
        if report.recovered is not None:
            slot.recovered = True
        if report.crashed:
            # an unexpected error may have left an operation ``sent``: resolve it before resending
            slot.recovered = False
        await self._after(key, slot, report, mode, rt=rt)
        if self._wake is not None:
            self._wake.set()  # a nudge may have arrived meanwhile
        return report

    async def _after(
        self,
        key: Key,
        slot: Slot,
        report: RunReport,
        mode: Mode,
        rt: ConnectionRuntime | None,
    ) -> None:
        """Schedule the next run; count failures and alert once per failing streak."""
        now = self.clock.now()
        interval = self.interval(*key)
        if report.outcome != "failed":
            # ok or partial: the run went through (record failures are the outbox's to retry);
            # its summary line was logged by record_run
            slot.failures, slot.alerted = 0, False
            if mode == "run":
                # measured from the start, as the store's last run is: the schedule does not drift
                slot.next_due = (slot.started or now) + timedelta(seconds=interval)
            return
        slot.failures += 1
        budget = self.config.connection(key[0]).retry
        policy = RetryPolicy(
            max_attempts=budget.max_attempts,
            base_delay=budget.base_delay_seconds,
            max_delay=budget.max_delay_seconds,
        )
        slot.next_due = now + timedelta(seconds=min(interval, policy.backoff(slot.failures)))
        log.warning("%s/%s: run failed %d time(s) in a row", *key, slot.failures)
        if not slot.alerted and (report.fatal or slot.failures >= budget.max_attempts):
            slot.alerted = True
            await self._alert(key, report, slot.failures, rt)

    async def _alert(
        self, key: Key, report: RunReport, failures: int, rt: ConnectionRuntime | None
    ) -> None:
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

    # --- a leased run --------------------------------------------------------------------------
    async def _run_leased(
        self,
        rt: ConnectionRuntime,
        flow: Flow,
        mode: Mode,
        *,
        recover_first: bool = True,
    ) -> RunReport:
        """Run the steps under the lease (already taken), renewing it; release it at the end.
        If the lease is lost (expired and taken over), the run is cancelled. Every record logged
        during the run carries its connection, flow and run id (:func:`run_context`)."""
        with run_context(rt.name, flow.name) as context:
            return await self._run_in_context(rt, flow, mode, context.run_id, recover_first)

    async def _run_in_context(
        self, rt: ConnectionRuntime, flow: Flow, mode: Mode, run_id: str, recover_first: bool
    ) -> RunReport:
        key = (rt.name, flow.name)
        report = RunReport(rt.name, flow.name, run_id=run_id)
        lost = asyncio.Event()
        work = asyncio.create_task(self._steps(rt, flow, mode, report, recover_first))
        keeper = asyncio.create_task(self._keep_lease(key, work, lost))
        started, at = self.clock.monotonic(), self.clock.now()
        cancelled = False
        try:
            await work
        except asyncio.CancelledError:
            if not lost.is_set():
                cancelled = True
                raise
            report.error = "lease lost to another worker; run stopped"
        except ConnectorError as exc:
            report.error, report.fatal = str(exc), isinstance(exc, FatalError)
        except Exception as exc:  # a bug in one flow must not stop the others
            log.exception("%s/%s: unexpected error", *key)
            report.error, report.crashed = f"unexpected {type(exc).__name__}: {exc}", True
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            try:
                if mode == "run" and not cancelled:
                    # recorded before the lease is released: whoever takes it next sees this run
                    seconds = self.clock.monotonic() - started
                    await record_run(
                        self.store,
                        report,
                        at=at,
                        seconds=seconds,
                        owner=self.owner,
                        observer=self.observer,
                    )
            finally:
                if not lost.is_set():
                    await self.store.release_lease(rt.name, flow.name, self.owner)
        return report

    async def _steps(
        self, rt: ConnectionRuntime, flow: Flow, mode: Mode, report: RunReport, recover_first: bool
    ) -> None:
        if recover_first:
            report.recovered = await recover(rt, [flow])
        if flow.kinds:
            report.retried = await retry_due(rt, [flow])
        if mode == "run":
            report.result = await flow.run(rt)

    async def _keep_lease(self, key: Key, work: asyncio.Task[None], lost: asyncio.Event) -> None:
        """Renew every third of the time-to-live while ``work`` runs; cancel it if lost."""
        period = self.options.lease_ttl / 3
        while not work.done():
            await self.clock.sleep(period)
            if work.done():
                return
            lease = await self.store.renew_lease(*key, self.owner, self._ttl())
            if lease is None:
                log.error("%s/%s: lease lost to another worker; stopping this run", *key)
                lost.set()
                work.cancel()
                return

    # --- waiting, signals, closing -------------------------------------------------------------
    async def _sleep_or_wake(self, seconds: float) -> None:
        assert self._wake is not None
        if self._wake.is_set():
            self._wake.clear()
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (sleeper, waker):
                pending.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
            self._wake.clear()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or not supported here
            self._signals.append(sig)

    def _remove_signals(self) -> None:
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for sig in self._signals:
                loop.remove_signal_handler(sig)
        self._signals.clear()

    async def aclose(self) -> None:
        """Close every runtime this engine built."""
        runtimes, self._runtimes = self._runtimes, {}
        for rt in runtimes.values():
            await rt.aclose()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = [
    "FLOW_CLASSES",
    "INBOX_FLOW",
    "Engine",
    "EngineOptions",
    "FlowBusyError",
    "LastRun",
    "RunReport",
    "default_flows",
    "owner_is_dead_local_process",
]
