"""What the engine remembers about each run: :class:`RunReport` (one run) and :class:`LastRun`
(the last full run of a flow, stored for the UI, the CLI and the other workers).

The last run of flow ``F`` of connection ``C`` is stored as the cursor ``(C, "F.last_run")``: a
small JSON value (when, by whom, how long, ok or the error, the counters). The cursors table is
shared by every worker on the database, so each worker sees when any worker last ran a flow and
the interval holds across a scaled-out deployment; the operator UI lists it next to the flow's
own cursor. Every run is also one ``run`` event in the audit trail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlconnector.store import AuditEvent, Store
from mlconnector.sync.base import FlowResult

#: cursor name suffix of a flow's last run (``orders.last_run``)
LAST_RUN_SUFFIX = ".last_run"


def last_run_cursor(flow: str) -> str:
    """The cursor name holding the last run of ``flow``."""
    return flow + LAST_RUN_SUFFIX


@dataclass(frozen=True)
class LastRun:
    """The last full run of one flow of one connection."""

    flow: str
    at: datetime
    ok: bool
    seconds: float
    owner: str
    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "at": self.at.isoformat(),
                "ok": self.ok,
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
            return cls(
                flow=flow,
                at=datetime.fromisoformat(raw["at"]),
                ok=bool(raw["ok"]),
                seconds=float(raw.get("seconds", 0.0)),
                owner=str(raw.get("owner", "")),
                summary=str(raw.get("summary", "")),
                counts={str(k): int(v) for k, v in dict(raw.get("counts", {})).items()},
                error=raw.get("error"),
            )
        except (ValueError, KeyError, TypeError):
            return None


async def get_last_run(store: Store, connection: str, flow: str) -> LastRun | None:
    """The last full run of ``flow`` recorded by any worker, or ``None``."""
    cursor = await store.get_cursor(connection, last_run_cursor(flow))
    return LastRun.from_json(flow, cursor.value) if cursor else None


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

    @property
    def ok(self) -> bool:
        return self.error is None

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


async def record_run(
    store: Store, report: RunReport, *, at: datetime, seconds: float, owner: str
) -> LastRun:
    """Store the last run of a full (not dry) run (``at`` is when it started), add it to the run
    history and append its ``run`` audit event."""
    counts = report.result.counts() if report.result is not None else {}
    run = LastRun(
        flow=report.flow,
        at=at,
        ok=report.ok,
        seconds=seconds,
        owner=owner,
        summary=report.summary(),
        counts=counts,
        error=report.error,
    )
    await store.set_cursor(report.connection, last_run_cursor(report.flow), run.to_json())
    await store.add_run(
        report.connection,
        report.flow,
        started_at=at,
        finished_at=at + timedelta(seconds=max(0.0, seconds)),
        outcome=str(getattr(report, "outcome", None) or ("ok" if report.ok else "failed")),
        counts=counts,
        error=report.error,
        owner=owner,
    )
    await store.append_audit(
        AuditEvent(
            connection=report.connection,
            flow=report.flow,
            direction="internal",
            entity="flow",
            action="run",
            outcome="ok" if report.ok else "failed",
            details={
                "owner": owner,
                "seconds": round(seconds, 3),
                "counts": {k: v for k, v in counts.items() if v},
                "error": report.error,
                "recovered": report.recovered.recovered if report.recovered else 0,
                "retried": report.retried.retried if report.retried else 0,
            },
        )
    )
    return run
