"""What the engine remembers about each run: :class:`RunReport` (one run) and :class:`LastRun`
(the last full run of a flow, stored for the UI, the CLI and the other workers).

**One outcome per run, derived here only** (:func:`outcome_of`): ``ok``; ``partial`` when the
run finished but some records did not make it (a counter named in :data:`PARTIAL_COUNTERS` is
non-zero: failed, dead, quarantined, needs-operator); ``failed`` when the run itself errored (a
connection-level failure: credentials, a missing grant, an unreachable host, a bug). The CLI exit
status, the tables, the dashboard, ``/healthz``, ``/metrics`` and the run's log line all read it.

The last run of flow ``F`` of connection ``C`` is stored as the cursor ``(C, "F.last_run")``: a
small JSON value (when, by whom, how long, the outcome and the error, the counters). The cursors
table is shared by every worker on the database, so each worker sees when any worker last ran a
flow and the interval holds across a scaled-out deployment; the operator UI lists it next to the
flow's own cursor. Every run is also one ``run`` event in the audit trail.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, cast

from mlconnector.observe import NULL_OBSERVER, Observer
from mlconnector.store import AuditEvent, Store
from mlconnector.sync.base import FlowResult

log = logging.getLogger("mlconnector.runs")

Outcome = Literal["ok", "partial", "failed"]
#: every outcome, best first
OUTCOMES: tuple[Outcome, ...] = ("ok", "partial", "failed")
#: FlowResult counters that make a finished run ``partial`` (``-`` and ``_`` are the same)
PARTIAL_COUNTERS = frozenset({"failed", "dead", "quarantined", "needs_operator"})


def partial_count(counts: dict[str, int]) -> int:
    """How many records of ``counts`` did not make it (the sum of :data:`PARTIAL_COUNTERS`)."""
    return sum(v for k, v in counts.items() if k.replace("-", "_") in PARTIAL_COUNTERS)


def worst(outcomes: list[Outcome] | tuple[Outcome, ...]) -> Outcome:
    """The worst of several outcomes (``ok`` for none): what a command of many runs reports."""
    return max(outcomes, key=OUTCOMES.index, default="ok")


#: the level of a run's summary line: every run logs one, at INFO or above
RUN_LOG_LEVEL = {"ok": logging.INFO, "partial": logging.WARNING, "failed": logging.ERROR}

#: cursor name suffix of a flow's last run (``orders.last_run``)
LAST_RUN_SUFFIX = ".last_run"


def last_run_cursor(flow: str) -> str:
    """The cursor name holding the last run of ``flow``."""
    return flow + LAST_RUN_SUFFIX


@dataclass(frozen=True)
class LastRun:
    """The last full run of one flow of one connection.

    ``outcome`` is the truth; ``ok`` is ``outcome == "ok"``. Built from an ``ok`` alone (values
    stored before outcomes existed), the outcome is ``ok`` or ``failed``."""

    flow: str
    at: datetime
    ok: bool
    seconds: float
    owner: str
    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    outcome: Outcome | None = None

    def __post_init__(self) -> None:
        if self.outcome is None:
            object.__setattr__(self, "outcome", "ok" if self.ok else "failed")
        object.__setattr__(self, "ok", self.outcome == "ok")

    @property
    def result(self) -> Outcome:
        """The outcome (never ``None`` once built)."""
        return self.outcome or ("ok" if self.ok else "failed")

    def to_json(self) -> str:
        return json.dumps(
            {
                "at": self.at.isoformat(),
                "ok": self.ok,
                "outcome": self.result,
                "seconds": round(self.seconds, 3),
                "owner": self.owner,
                "summary": self.summary,
                "counts": {k: v for k, v in self.counts.items() if v},
                "error": self.error,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, flow: str, text: str) -> LastRun | None:
        """Parse a stored value; ``None`` for anything unreadable (treated as never run)."""
        try:
            raw = json.loads(text)
            outcome = raw.get("outcome")
            if outcome not in OUTCOMES:
                outcome = None  # stored before outcomes existed: derived from ``ok``
            return cls(
                flow=flow,
                at=datetime.fromisoformat(raw["at"]),
                ok=bool(raw["ok"]),
                seconds=float(raw.get("seconds", 0.0)),
                owner=str(raw.get("owner", "")),
                summary=str(raw.get("summary", "")),
                counts={str(k): int(v) for k, v in dict(raw.get("counts", {})).items()},
                error=raw.get("error"),
                outcome=cast("Outcome | None", outcome),
            )
        except (ValueError, KeyError, TypeError):
            return None


async def get_last_run(store: Store, connection: str, flow: str) -> LastRun | None:
    """The last full run of ``flow`` recorded by any worker, or ``None``."""
    cursor = await store.get_cursor(connection, last_run_cursor(flow))
    return LastRun.from_json(flow, cursor.value) if cursor else None


async def all_last_runs(store: Store) -> dict[tuple[str, str], LastRun]:
    """The last run of every (connection, flow), in one store statement."""
    found: dict[tuple[str, str], LastRun] = {}
    for cursor in await store.cursors_named(LAST_RUN_SUFFIX):
        flow = cursor.flow.removesuffix(LAST_RUN_SUFFIX)
        run = LastRun.from_json(flow, cursor.value)
        if run is not None:
            found[(cursor.connection, flow)] = run
    return found


async def last_runs(store: Store, connection: str) -> dict[str, LastRun]:
    """The last run of every flow of ``connection`` that ever ran, by flow name."""
    found: dict[str, LastRun] = {}
    for cursor in await store.list_cursors(connection):
        if cursor.flow.endswith(LAST_RUN_SUFFIX):
            flow = cursor.flow.removesuffix(LAST_RUN_SUFFIX)
            run = LastRun.from_json(flow, cursor.value)
            if run is not None:
                found[flow] = run
    return found


@dataclass
class RunReport:
    """One engine run of one flow: crash recovery, due retries, the pass itself."""

    connection: str
    flow: str
    dry_run: bool = False
    recovered: FlowResult | None = None
    retried: FlowResult | None = None
    result: FlowResult | None = None
    error: str | None = None
    #: the error was fatal (configuration, credentials, permissions): a person must act
    fatal: bool = False
    #: the run ended on an unexpected exception (a bug or an untranslated library error)
    crashed: bool = False
    #: names the run in the logs (``run_id``), its audit event and ``sync --json``
    run_id: str = ""

    @property
    def outcome(self) -> Outcome:
        """``ok``, ``partial`` or ``failed`` (see the module doc)."""
        return outcome_of(self)

    @property
    def ok(self) -> bool:
        """The outcome is ``ok`` (neither partial nor failed)."""
        return self.outcome == "ok"

    def counts(self) -> dict[str, int]:
        """The counters of the whole run: the pass, plus failures of recovery and retries."""
        counts = dict(self.result.counts()) if self.result is not None else {}
        for step in (self.recovered, self.retried):
            if step is not None:
                for name, value in step.counts().items():
                    if name.replace("-", "_") in PARTIAL_COUNTERS and value:
                        counts[name] = counts.get(name, 0) + value
        return counts

    def errors(self) -> list[str]:
        """The run's error, then every record error of its steps."""
        found = [self.error] if self.error else []
        for step in (self.recovered, self.retried, self.result):
            if step is not None:
                found.extend(step.errors)
        return found

    def to_dict(self) -> dict[str, object]:
        """The run as JSON-ready data (``sync --json``)."""
        plan = self.result.plan if self.result is not None else []
        return {
            "connection": self.connection,
            "flow": self.flow,
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "outcome": self.outcome,
            "summary": self.summary(),
            "counts": {k: v for k, v in self.counts().items() if v},
            "error": self.error,
            "fatal": self.fatal,
            "errors": self.errors(),
            "plan_total": self.result.plan_total if self.result is not None else 0,
            "plan": [
                {
                    "action": item.action,
                    "entity": item.entity,
                    "key": item.key,
                    "reason": item.reason,
                    "result": item.result(dry_run=self.dry_run),
                }
                for item in plan
            ],
        }

    def summary(self) -> str:
        """One line for logs and the CLI."""
        parts = []
        if self.recovered is not None and (self.recovered.recovered or self.recovered.retried):
            parts.append(f"recovered={self.recovered.recovered} resend={self.recovered.retried}")
        if self.retried is not None and self.retried.plan:
            parts.append(f"retried={self.retried.retried} failed={self.retried.failed}")
        if self.result is not None and any(self.result.counts().values()):
            mode = "(dry run) " if self.result.dry_run else ""
            parts.append(mode + self.result.counts_text())
        if self.error:
            parts.append(f"error: {self.error}")
        return f"{self.flow}@{self.connection}: " + ("; ".join(parts) or "nothing to do")


def outcome_of(report: RunReport) -> Outcome:
    """The one place a run's outcome is decided: ``failed`` when the run errored, ``partial``
    when some record failed, went dead, was quarantined or needs an operator, else ``ok``."""
    if report.error is not None:
        return "failed"
    return "partial" if partial_count(report.counts()) else "ok"


async def record_run(
    store: Store,
    report: RunReport,
    *,
    at: datetime,
    seconds: float,
    owner: str,
    observer: Observer = NULL_OBSERVER,
) -> LastRun:
    """Finish a full (not dry) run (``at`` is when it started): store it as the flow's last run,
    add it to the run history, append its ``run`` audit event, log its one summary line and tell
    the observer (metrics)."""
    counts = report.counts()
    nonzero = {k: v for k, v in counts.items() if v}
    summary = report.summary()
    outcome = report.outcome  # derived once (each read recounts the run)
    run = LastRun(
        flow=report.flow,
        at=at,
        ok=outcome == "ok",
        outcome=outcome,
        seconds=seconds,
        owner=owner,
        summary=summary,
        counts=counts,
        error=report.error,
    )
    details = {
        "owner": owner,
        "run_id": report.run_id,
        "seconds": round(seconds, 3),
        "counts": nonzero,
        "error": report.error,
        "recovered": report.recovered.recovered if report.recovered else 0,
        "retried": report.retried.retried if report.retried else 0,
    }
    # the last run, the history row and the audit event: one write transaction
    await store.finish_run(
        report.connection,
        report.flow,
        last_run=(last_run_cursor(report.flow), run.to_json()),
        started_at=at,
        finished_at=at + timedelta(seconds=max(0.0, seconds)),
        outcome=outcome,
        counts=counts,
        error=report.error,
        owner=owner,
        event=AuditEvent(
            connection=report.connection,
            flow=report.flow,
            direction="internal",
            entity="flow",
            action="run",
            outcome=outcome,
            details=details,
        ),
    )
    observer.run_finished(report.connection, report.flow, outcome, seconds)
    log.log(
        RUN_LOG_LEVEL[outcome],
        "run %s in %.1fs: %s",
        outcome,
        seconds,
        summary,
        extra={"outcome": outcome, "counts": nonzero},
    )
    return run
