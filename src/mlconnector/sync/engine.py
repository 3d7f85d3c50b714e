"""The in-process scheduler (``mlconnector run`` on SQLite, a single box with no server).

It runs every flow of every enabled connection on its interval through the same flow-run
function as the scale-out workers (:meth:`~mlconnector.sync.flowrun.FlowRunner.run`); on
PostgreSQL the workers are procrastinate's (:mod:`mlconnector.sync.jobs`).

* **Due times live in memory.** At start one statement reads every flow's last run (recorded by
  :func:`~mlconnector.sync.runs.record_run`, so a restart keeps the schedule); afterwards a flow
  is due at its last start plus its interval, kept in memory and in a heap ordered by due time:
  a pass looks only at the flows due (and the nudged ones), not at every (connection, flow), so
  its CPU does not grow with the number of connections. The scheduler sleeps until the earliest
  due time (at most ``tick`` seconds), so a due run starts on time.
* **At most one store statement per ``tick`` seconds**: which flows have operations due
  (``Store.due_flows``); such a flow runs its retries alone between runs. (A pass woken by a
  finished run or a nudge does not ask again within ``tick`` seconds of the last answer.)
* **Never two at once**: one in-process lock per (connection, flow) (a flow still running is
  skipped; ``sync --once`` of a running flow is refused with :class:`FlowBusyError`), and at most
  ``concurrency`` runs at a time, the others waiting their turn in order.
* **Failures**: the connection's backoff, one alert per failing streak (``FlowRunner.after``).
* **Webhooks**: :meth:`Engine.nudge` (the receiver's ``on_webhook``) runs the connection's inbox
  flow (``shipments``) at once.
* **Stop**: :meth:`Engine.stop` (SIGTERM/SIGINT when ``install_signals``) lets the running steps
  finish and closes the runtimes; a second signal cancels the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlconnector.clock import Clock
from mlconnector.config import Config
from mlconnector.http import RateLimiterRegistry
from mlconnector.observe import NULL_OBSERVER, Observer
from mlconnector.store import Store, StoreError
from mlconnector.sync.alerts import AlertSink
from mlconnector.sync.base import Flow
from mlconnector.sync.flowrun import FlowRunner, Streak
from mlconnector.sync.runs import LastRun, RunReport, all_last_runs
from mlconnector.sync.runtime import ConnectionRuntime, HttpFactory, default_http_factory
from mlconnector.sync.scheduler import (
    FLOW_CLASSES,
    INBOX_FLOW,
    EngineOptions,
    FlowBusyError,
    Key,
    Mode,
    default_flows,
)

log = logging.getLogger("mlconnector.engine")


@dataclass
class SchedulerStats:
    """What the scheduler did (for benchmarks and the status page)."""

    ticks: int = 0
    started: int = 0
    #: seconds between a run's due time and its start, per flow
    lag: dict[str, list[float]] = field(default_factory=dict)


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
        runner: FlowRunner | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.options = options or EngineOptions()
        self.runner = runner or FlowRunner(
            config,
            store,
            clock,
            flows=flows,
            http_factory=http_factory,
            limiters=limiters,
            alerts=alerts,
            intervals=self.options.intervals,
            owner=self.options.owner,
            connections=connections,
            observer=observer,
        )
        self.config, self.store, self.clock = config, store, clock
        self.owner = self.runner.owner
        self.stats = SchedulerStats()
        self._due: dict[Key, datetime] | None = None  # None: not read from the store yet
        #: (due time, tie-breaker, key): an entry counts while its time is ``_due[key]``
        self._heap: list[tuple[datetime, int, Key]] = []
        self._seq = itertools.count()
        self._pairs: frozenset[Key] = frozenset()
        self._retry: set[Key] = set()
        self._retry_read: float | None = None  # monotonic time of the last due_flows answer
        self._streaks: dict[Key, Streak] = {}
        self._nudged: set[Key] = set()
        self._tasks: dict[Key, asyncio.Task[RunReport]] = {}
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._signals: list[signal.Signals] = []

    # --- what runs (the runner's) --------------------------------------------------------------
    @property
    def flows(self) -> dict[str, Flow]:
        return self.runner.flows

    @property
    def limiters(self) -> RateLimiterRegistry:
        return self.runner.limiters

    @property
    def observer(self) -> Observer:
        """Metrics hooks: HTTP exchanges, outbox changes, finished runs."""
        return self.runner.observer

    def connections(self) -> list[str]:
        """The enabled connections this engine schedules."""
        return self.runner.connections()

    def interval(self, connection: str, flow: str) -> float:
        """Seconds between runs of ``flow`` for ``connection``."""
        return self.runner.interval(connection, flow)

    def flow(self, name: str) -> Flow:
        return self.runner.flow(name)

    async def runtime(self, connection: str) -> ConnectionRuntime:
        return await self.runner.runtime(connection)

    def states(self, connection: str) -> dict[str, str]:
        """``doing`` / ``queued`` (due, waiting for a slot) per flow of ``connection``."""
        found: dict[str, str] = {}
        for (conn, flow), task in self._tasks.items():
            if conn == connection and not task.done():
                found[flow] = "doing" if self.runner.busy((conn, flow)) else "queued"
        return found

    # --- one run, for the CLI ------------------------------------------------------------------
    async def run_once(self, connection: str, flow: str, *, dry_run: bool = False) -> RunReport:
        """Run one flow once now (``mlconnector sync … --once``): :class:`FlowBusyError` if it
        is running in this process; a dry run writes nothing (``result.plan`` is the plan)."""
        if dry_run:
            return await self.runner.dry_run(connection, flow)
        return await self.runner.run(connection, flow)

    # --- the scheduler -------------------------------------------------------------------------
    def nudge(self, connection: str) -> None:
        """A webhook arrived for ``connection``: process its inbox now (receiver hook)."""
        if INBOX_FLOW in self.flows:
            self._nudged.add((connection, INBOX_FLOW))
        if self._wake is not None:
            self._wake.set()

    def stop(self) -> None:
        """Stop after the running steps finish (idempotent; a second call cancels them)."""
        if self._stopping:
            for task in self._tasks.values():
                if not task.done():
                    task.cancel()
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run_forever(self, *, install_signals: bool = False) -> None:
        """Schedule until :meth:`stop`; then wait for the running steps."""
        self._wake = self._wake or asyncio.Event()
        if install_signals:
            self._install_signals()
        log.info("engine %s started: %s", self.owner, ", ".join(self.connections()) or "idle")
        try:
            while not self._stopping:
                await self.tick()
                await self._sleep_or_wake(self._seconds_to_next())
            await self.drain()
        finally:
            self._remove_signals()
            await self.aclose()
            log.info("engine %s stopped", self.owner)

    async def tick(self) -> list[asyncio.Task[RunReport]]:
        """One scheduler pass: start every due flow that is not already running (in due-time
        order), the nudged ones, and the flows with operations due. Reads the store at most once
        per ``tick`` seconds (flows with due operations), plus once at the first pass (last
        runs)."""
        self.stats.ticks += 1
        now = self.clock.now()
        try:
            due = await self._due_times(now)
            retry = await self._retry_flows(now)
        except StoreError as exc:
            log.error("the store refused the schedule step: %s", exc)
            return []
        runs: list[Key] = []
        for key in sorted(self._nudged):
            if key not in self._pairs:
                self._nudged.discard(key)  # not a flow of this engine: nothing to run
            elif not self._running(key):
                runs.append(key)
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if due.get(key) != at or self._running(key):
                continue  # superseded, or running: its end pushes its next due time
            runs.append(key)
        started: list[asyncio.Task[RunReport]] = []
        for key in dict.fromkeys(runs):
            if self._stopping:
                break
            self._nudged.discard(key)
            started.append(self._start(key, "run", due[key]))
        for key in sorted(retry - set(runs)):
            if self._stopping:
                break
            if key in self._pairs and not self._running(key):
                started.append(self._start(key, "retry", now))
        return started

    def _start(self, key: Key, mode: Mode, at: datetime) -> asyncio.Task[RunReport]:
        self._tasks[key] = asyncio.create_task(self._scheduled(key, mode, at))
        return self._tasks[key]

    def _running(self, key: Key) -> bool:
        task = self._tasks.get(key)
        return task is not None and not task.done()

    def _push(self, key: Key) -> None:
        assert self._due is not None
        heapq.heappush(self._heap, (self._due[key], next(self._seq), key))

    def _has_retries(self) -> bool:
        return any(flow.kinds for flow in self.flows.values())

    async def _retry_flows(self, now: datetime) -> set[Key]:
        """The flows with operations due, asked of the store at most once per ``tick``
        seconds (each key handed out once per answer)."""
        if not self._has_retries():
            return set()
        mono = self.clock.monotonic()
        if self._retry_read is None or mono - self._retry_read >= self.options.tick:
            self._retry = set(await self.store.due_flows(now=now))
            self._retry_read = mono
        running = {key for key in self._retry if self._running(key)}  # handed out after it ends
        ready, self._retry = self._retry - running, running
        return ready

    async def _due_times(self, now: datetime) -> dict[Key, datetime]:
        if self._due is None:
            last: dict[Key, LastRun] = await all_last_runs(self.store)
            self._pairs = frozenset(self.runner.pairs())
            self._due = {
                key: last[key].at + timedelta(seconds=self.interval(*key)) if key in last else now
                for key in self._pairs
            }
            for key in self._due:
                self._push(key)
        return self._due

    def _seconds_to_next(self) -> float:
        """Until the earliest due time of a flow not running, at most ``tick``."""
        if any(not self._running(key) for key in self._nudged):
            return 0.0
        wait = self.options.tick
        if self._due is not None:
            now = self.clock.now()
            heap = self._heap
            while heap:
                at, _, key = heap[0]
                if self._due.get(key) != at or (at <= now and self._running(key)):
                    heapq.heappop(heap)  # superseded, or due while running: pushed at its end
                    continue
                wait = min(wait, (at - now).total_seconds())
                break
        return max(0.0, wait)

    async def drain(self) -> list[RunReport]:
        """Wait for every running step (after :meth:`stop`)."""
        reports: list[RunReport] = []
        for task in [t for t in self._tasks.values() if not t.done()]:
            with contextlib.suppress(asyncio.CancelledError):
                reports.append(await task)
        return reports

    async def _scheduled(self, key: Key, mode: Mode, due_at: datetime) -> RunReport:
        async with self._slots:
            started = self.clock.now()
            self.stats.started += 1
            self.stats.lag.setdefault(key[1], []).append(
                max(0.0, (started - due_at).total_seconds())
            )
            try:
                report = await self.runner.run(*key, mode)
            except FlowBusyError as exc:  # a `sync --once` of this process is running it
                report = RunReport(*key, error=str(exc))
                mode = "retry"  # not a run of the schedule: look again next tick
        streak = self._streaks.get(key, Streak())
        nxt = self.runner.after(key, report, streak)
        self._streaks[key] = nxt.streak
        assert self._due is not None
        if report.outcome == "failed":
            self._due[key] = self.clock.now() + timedelta(seconds=nxt.delay)
        elif mode == "run":
            # measured from the start, as the store's last run is: the schedule does not drift
            self._due[key] = started + timedelta(seconds=nxt.delay)
        self._push(key)
        if nxt.alert:
            await self.runner.alert(key, report, nxt.streak.failures)
        if self._wake is not None:
            self._wake.set()  # a nudge may have arrived meanwhile
        return report

    # --- waiting, signals, closing -------------------------------------------------------------
    async def _sleep_or_wake(self, seconds: float) -> None:
        assert self._wake is not None
        if self._wake.is_set() or seconds <= 0:
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
        await self.runner.aclose()

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
    "FlowRunner",
    "LastRun",
    "RunReport",
    "default_flows",
]
