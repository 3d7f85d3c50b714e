"""The scale-out engine: procrastinate jobs on PostgreSQL (``mlconnector worker``).

Each flow run of a connection is one job of the task ``mlconnector.run_flow`` with args
``connection``, ``flow``, ``mode`` (``run`` / ``retry``), ``reason`` and the failing streak. Its
**lock** is ``"{connection}:{flow}"``: procrastinate never runs two jobs with one lock at once,
on any worker. Its **queueing lock** keeps at most one job of each kind waiting:

==============  ================================  ========  =====================================
reason          queueing lock                     priority  deferred by
==============  ================================  ========  =====================================
``schedule``    ``{connection}:{flow}``           0         the job itself at its end (the next
                                                            run, ``schedule_at`` = start +
                                                            interval, or the backoff after a
                                                            failure), and :data:`SCHEDULE`
``nudge``       ``{connection}:{flow}:nudge``     10        a stored webhook (``shipments``)
``retry``       ``{connection}:{flow}:retry``     10        :data:`SCHEDULE`, for due operations
==============  ================================  ========  =====================================

Nudges and retries have a higher priority because procrastinate does not start a job while an
earlier job of the same lock waits with the same or a higher priority, even one scheduled later:
a waiting next run must not hold a nudge back.

Two periodic tasks (procrastinate's cron, six fields for seconds) run on whichever worker takes
them: :data:`SCHEDULE` (every 30 s) defers the scheduled job of every (connection, flow) that
has none waiting or running — a new connection, or a chain lost — at its last run plus its
interval, and a ``retry`` job for flows with due operations (two listings of the queue and one
store statement per pass); :data:`RETRY_STALLED` (every 15 s) hands the jobs of workers whose
heartbeat stopped (a killed process) back to the queue with ``retry_job``; the job runs again on
another worker, whose :class:`~mlconnector.sync.flowrun.FlowRunner` resolves the operations the
dead worker left ``sent`` before anything is re-sent, so the outbox keeps writes exactly once.

The schema is procrastinate's own, applied by :func:`ensure_schema` (``apply_schema`` under an
advisory lock) when a worker or web node starts and ``procrastinate_jobs`` does not exist yet.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate import exceptions as pexc
from procrastinate.jobs import Status

from mlconnector.store import Store
from mlconnector.store.lane import PING_IDLE_AFTER
from mlconnector.sync.flowrun import FlowRunner, Streak
from mlconnector.sync.runs import all_last_runs
from mlconnector.sync.scheduler import INBOX_FLOW, FlowBusyError, Key, Mode

log = logging.getLogger("mlconnector.engine")

RUN_FLOW = "mlconnector.run_flow"
SCHEDULE = "mlconnector.schedule"
RETRY_STALLED = "mlconnector.retry_stalled"
#: seconds between two passes of :data:`SCHEDULE` and of :data:`RETRY_STALLED`
SCHEDULE_EVERY = 30
RETRY_STALLED_EVERY = 15
#: a nudge or retry overtakes the waiting scheduled run of its lock
URGENT = 10
#: seconds without heartbeat after which a worker's jobs are handed to another
STALLED_AFTER = 30.0
#: PostgreSQL advisory lock id held while applying procrastinate's schema ("mlcproc")
SCHEMA_LOCK = 0x6D6C6370726F63


def flow_lock(connection: str, flow: str) -> str:
    """The procrastinate lock of a (connection, flow): never two runs at once."""
    return f"{connection}:{flow}"


def conninfo(url: str) -> str:
    """A libpq URL from the store's SQLAlchemy URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass(frozen=True)
class JobArgs:
    """The args of a ``run_flow`` job."""

    connection: str
    flow: str
    mode: Mode = "run"
    reason: str = "schedule"
    failures: int = 0
    alerted: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "flow": self.flow,
            "mode": self.mode,
            "reason": self.reason,
            "failures": self.failures,
            "alerted": self.alerted,
        }


class JobQueue:
    """Deferring and inspecting ``run_flow`` jobs (workers, web nodes and the CLI)."""

    def __init__(self, app: procrastinate.App) -> None:
        self.app = app

    async def defer(self, args: JobArgs, *, at: datetime | None = None) -> int | None:
        """Defer one job; ``None`` when one of its kind is already waiting (queueing lock)."""
        key = flow_lock(args.connection, args.flow)
        queueing = key if args.reason == "schedule" else f"{key}:{args.reason}"
        try:
            return await self.app.configure_task(
                RUN_FLOW,
                lock=key,
                queueing_lock=queueing,
                priority=0 if args.reason == "schedule" else URGENT,
                schedule_at=at,
            ).defer_async(**args.as_kwargs())
        except pexc.AlreadyEnqueued:
            return None

    async def nudge(self, connection: str) -> None:
        """A webhook was stored for ``connection``: process its inbox now (receiver hook)."""
        await self.defer(JobArgs(connection, INBOX_FLOW, reason="nudge"))

    async def states(self, connection: str | None = None) -> dict[Key, str]:
        """``doing`` / ``queued`` (due now) / ``scheduled`` (waiting for its time) per
        (connection, flow) with a job waiting or running."""
        found: dict[Key, str] = {}
        now = datetime.now(UTC)
        for status in (Status.TODO, Status.DOING):
            jobs = await self.app.job_manager.list_jobs_async(task=RUN_FLOW, status=status.value)
            for job in jobs:
                conn, flow = job.task_kwargs.get("connection"), job.task_kwargs.get("flow")
                if not isinstance(conn, str) or not isinstance(flow, str):
                    continue
                if connection is not None and conn != connection:
                    continue
                if status == Status.DOING:
                    found[(conn, flow)] = "doing"
                elif found.get((conn, flow)) != "doing":
                    due = job.scheduled_at is None or job.scheduled_at <= now
                    if due or found.get((conn, flow)) != "queued":
                        found[(conn, flow)] = "queued" if due else "scheduled"
        return found


async def _autocommit(conn: psycopg.AsyncConnection[Any]) -> None:
    """Each of procrastinate's queries is one statement (a function call, atomic by itself):
    in autocommit it needs no ``BEGIN`` and ``COMMIT`` around it."""
    await conn.set_autocommit(True)


def pool_factory(
    *, ping_idle_after: float = PING_IDLE_AFTER
) -> Callable[..., psycopg_pool.AsyncConnectionPool[Any]]:
    """procrastinate's psycopg pool, with its connection check (an empty query at every
    checkout) made only when the connection was last checked out ``ping_idle_after`` seconds
    ago or more (procrastinate's queries hold a connection for one statement, so the last
    checkout is its last use): a dropped or restarted server is still noticed before use."""
    last_checkout: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
        weakref.WeakKeyDictionary()
    )

    async def check(conn: psycopg.AsyncConnection[Any]) -> None:
        now = time.monotonic()
        previous = last_checkout.get(conn)
        if previous is None or now - previous >= ping_idle_after:
            await psycopg_pool.AsyncConnectionPool.check_connection(conn)
        last_checkout[conn] = now

    def factory(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool[Any]:
        kwargs["check"] = check
        return psycopg_pool.AsyncConnectionPool(**kwargs)

    return factory


def build_app(
    url: str,
    *,
    runner: FlowRunner | None = None,
    pool_size: int = 4,
    stalled_after: float = STALLED_AFTER,
    ping_idle_after: float = PING_IDLE_AFTER,
) -> procrastinate.App:
    """The procrastinate app on the database at ``url`` (the store's). With a ``runner`` its
    tasks can run here (a worker); without, it only defers and lists jobs (web, CLI).

    Its pool's connections are in autocommit (``configure``, also applied to the LISTEN
    connection) and checked only after ``ping_idle_after`` seconds unused: one statement per
    procrastinate query instead of four (``BEGIN``, the query, ``COMMIT`` and the check)."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(url),
        min_size=1,
        max_size=pool_size,
        configure=_autocommit,
        pool_factory=pool_factory(ping_idle_after=ping_idle_after),
    )
    app = procrastinate.App(connector=connector)
    queue = JobQueue(app)

    def need_runner() -> FlowRunner:
        if runner is None:
            raise RuntimeError("this process defers jobs only; run them with `mlconnector worker`")
        return runner

    @app.task(name=RUN_FLOW)
    async def run_flow(
        connection: str,
        flow: str,
        mode: Mode = "run",
        reason: str = "schedule",
        failures: int = 0,
        alerted: bool = False,
    ) -> None:
        await _run_flow_job(
            need_runner(), queue, JobArgs(connection, flow, mode, reason, failures, alerted)
        )

    # croniter's sixth field is the seconds: "*/30 * * * * *" would be every second of minutes
    # :00 and :30 (60 passes in a burst, then none for 29 minutes)
    @app.periodic(cron=f"* * * * * */{SCHEDULE_EVERY}")
    @app.task(name=SCHEDULE, queueing_lock=SCHEDULE)
    async def schedule(timestamp: int) -> None:
        await ensure_scheduled(need_runner(), queue)

    @app.periodic(cron=f"* * * * * */{RETRY_STALLED_EVERY}")
    @app.task(name=RETRY_STALLED, queueing_lock=RETRY_STALLED)
    async def retry_stalled(timestamp: int) -> None:
        await retry_stalled_jobs(app, after=stalled_after)

    return app


async def _run_flow_job(runner: FlowRunner, queue: JobQueue, args: JobArgs) -> None:
    """One job: the flow-run function, then the next scheduled run (or the backoff)."""
    key = (args.connection, args.flow)
    if args.connection not in runner.connections() or args.flow not in runner.flows:
        log.warning("%s/%s: not an enabled connection and flow here; job dropped", *key)
        return
    started = runner.clock.now()
    try:
        report = await runner.run(args.connection, args.flow, args.mode, as_job=True)
    except FlowBusyError:  # a `sync --once` or a backfill holds it: try again soon
        if args.reason == "schedule":
            await queue.defer(args, at=started + timedelta(seconds=30))
        return
    nxt = runner.after(key, report, Streak(args.failures, args.alerted))
    if nxt.alert:
        await runner.alert(key, report, nxt.streak.failures)
    failed = report.outcome == "failed"
    if failed or args.reason == "schedule":
        base = runner.clock.now() if failed else started
        await queue.defer(
            JobArgs(*key, failures=nxt.streak.failures, alerted=nxt.streak.alerted),
            at=base + timedelta(seconds=nxt.delay),
        )


async def ensure_scheduled(runner: FlowRunner, queue: JobQueue) -> tuple[int, int]:
    """Defer the scheduled job of every (connection, flow) that has none waiting or running,
    and a retry job for flows with due operations. Returns (scheduled, retries) deferred."""
    present = await queue.states()
    keys = [k for k in runner.pairs() if k not in present]
    scheduled = retries = 0
    if keys:
        last = await all_last_runs(runner.store)
        now = runner.clock.now()
        for key in keys:
            run = last.get(key)
            at = run.at + timedelta(seconds=runner.interval(*key)) if run else now
            if await queue.defer(JobArgs(*key), at=max(at, now)) is not None:
                scheduled += 1
    if any(f.kinds for f in runner.flows.values()):
        for key in await runner.store.due_flows():
            if present.get(key) == "doing" or key not in runner.pairs():
                continue
            if await queue.defer(JobArgs(*key, mode="retry", reason="retry")) is not None:
                retries += 1
    return scheduled, retries


async def retry_stalled_jobs(app: procrastinate.App, *, after: float = STALLED_AFTER) -> int:
    """Hand the ``run_flow`` jobs of workers without a heartbeat for ``after`` seconds back to
    the queue (procrastinate's stalled-job recovery). Returns how many were retried."""
    retried = 0
    stalled: Iterable[Any] = await app.job_manager.get_stalled_jobs(
        task_name=RUN_FLOW, seconds_since_heartbeat=after
    )
    for job in stalled:
        try:
            await app.job_manager.retry_job(job)
            retried += 1
            log.warning("job %s of a stopped worker handed back to the queue", job.call_string)
        except pexc.ProcrastinateException:
            # another job of its kind is already waiting (queueing lock): that one will run
            assert job.id is not None
            await app.job_manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
            log.warning("job %s of a stopped worker dropped: another is waiting", job.call_string)
    return retried


async def ensure_schema(store: Store, app: procrastinate.App) -> None:
    """Apply procrastinate's schema once, when ``procrastinate_jobs`` does not exist yet."""
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
        try:
            exists = (await conn.execute(text("SELECT to_regclass('procrastinate_jobs')"))).scalar()
            if exists is None:
                await app.schema_manager.apply_schema_async()
                log.info("procrastinate schema applied")
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK})
            await conn.commit()


@contextlib.asynccontextmanager
async def opened_app(
    store: Store,
    url: str,
    *,
    runner: FlowRunner | None = None,
    stalled_after: float = STALLED_AFTER,
) -> AsyncIterator[procrastinate.App]:
    """The app, open (its pool connected), with the schema in place."""
    app = build_app(url, runner=runner, stalled_after=stalled_after)
    async with app.open_async():
        await ensure_schema(store, app)
        yield app
