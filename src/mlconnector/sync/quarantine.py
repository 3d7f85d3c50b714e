"""One pass's quarantine work for one flow: set unreadable records aside, retry them, resolve them.

A record that cannot be read or mapped never stops a pass (DESIGN §1 rule 9): the flow hands it
to :class:`QuarantineBook` and goes on. Each entry names a **retry key**, what the flow re-reads
on later passes (``order:<Plex order id>``, ``release:<id>``, ``shipment:<id>``, ``part:<id>``):
the cursor may move past the record, because the flow re-fetches every open retry key at the
start of each pass. When the re-read succeeds, the entries of that key not seen again this pass
are resolved (and the record is processed as usual); an operator can dismiss an entry instead.
In a dry run nothing is written: the plan and the ``quarantined`` count say what would be.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mlconnector.lenient import Unreadable, what_to_do
from mlconnector.store import Quarantined, QuarantineEntry
from mlconnector.sync.base import FlowResult, PlanItem
from mlconnector.sync.mapping import MappingSkip

if TYPE_CHECKING:
    from mlconnector.sync.runtime import ConnectionRuntime


#: the flows that quarantine records (each has a ``mlconnector_quarantined_records`` series)
QUARANTINE_FLOWS = ("orders", "shipments", "inventory", "order_status")


def entry_of(
    problem: Unreadable,
    retry_key: str | None,
    *,
    plex_order_id: str | None = None,
    shipment_id: str | None = None,
    sku: str | None = None,
) -> QuarantineEntry:
    """The quarantine entry of one unreadable record."""
    return QuarantineEntry(
        record_kind=problem.kind,
        record_id=problem.record_id,
        retry_key=retry_key,
        field=problem.field,
        value_excerpt=problem.value,
        error=f"{problem.error} (from {problem.where})" if problem.where else problem.error,
        what_to_do=what_to_do(problem),
        plex_order_id=plex_order_id,
        shipment_id=shipment_id,
        sku=sku,
    )


def unmappable_entry(skip: MappingSkip) -> QuarantineEntry:
    """The quarantine entry of a release group that cannot become a ShipStation order."""
    return QuarantineEntry(
        record_kind="Plex order group",
        record_id=skip.order_key,
        retry_key=f"order:{skip.plex_order_id}",
        field=skip.field,
        value_excerpt=skip.value,
        error=skip.reason,
        what_to_do=(
            f"correct {skip.field} of Plex order {skip.plex_order_id} in Plex; the connector "
            "retries it on every pass (or dismiss it with 'mlconnector quarantine dismiss')"
        ),
        plex_order_id=skip.plex_order_id,
    )


class QuarantineBook:
    """The quarantine as one flow's pass sees it (see the module doc)."""

    def __init__(self, rt: ConnectionRuntime, flow: str, result: FlowResult, dry_run: bool):
        self.rt = rt
        self.flow = flow
        self.result = result
        self.dry_run = dry_run
        self._open: list[Quarantined] = []
        #: (kind, record id) put this pass, per retry key
        self._seen: dict[str | None, set[tuple[str, str]]] = {}

    async def load(self) -> list[Quarantined]:
        """The flow's open entries: what this pass retries."""
        self._open = await self.rt.store.open_quarantined(self.rt.name, self.flow)
        return self._open

    def retry_ids(self, prefix: str) -> list[str]:
        """The ids of the open retry keys ``<prefix>:<id>`` (sorted, distinct), except keys
        already quarantined again this pass (read, still unreadable)."""
        head = prefix + ":"
        return sorted(
            {
                key[len(head) :]
                for q in self._open
                if (key := q.retry_key or "").startswith(head) and key not in self._seen
            }
        )

    def open_records(self, retry_key: str) -> set[str]:
        """The record ids of the open entries retried through ``retry_key``."""
        return {q.record_id for q in self._open if q.retry_key == retry_key}

    def is_open(self, retry_key: str) -> bool:
        """Whether an open entry is retried through ``retry_key``."""
        return any(q.retry_key == retry_key for q in self._open)

    def seen(self, entry: QuarantineEntry) -> bool:
        """Whether this record was already set aside this pass (under any retry key)."""
        pair = (entry.record_kind, entry.record_id)
        return any(pair in pairs for pairs in self._seen.values())

    async def put(self, entry: QuarantineEntry) -> None:
        """Set one record aside (counted ``quarantined``, in the plan, in the store unless dry
        run; the store audits a newly opened entry)."""
        self._seen.setdefault(entry.retry_key, set()).add((entry.record_kind, entry.record_id))
        self.result.add(
            PlanItem(
                "quarantine",
                entry.record_kind,
                entry.record_id,
                f"field {entry.field} = {entry.value_excerpt}: {entry.error}; {entry.what_to_do}",
                {"retry_key": entry.retry_key, "field": entry.field},
            ),
            "quarantined",
        )
        if not self.dry_run:
            await self.rt.store.quarantine(self.rt.name, self.flow, entry)

    async def put_all(self, entries: Iterable[QuarantineEntry]) -> None:
        """:meth:`put` each entry not already set aside this pass."""
        for entry in entries:
            if not self.seen(entry):
                await self.put(entry)

    async def resolve_unseen(self) -> None:
        """Resolve every open entry not put this pass (for a flow that reads everything on
        every pass, as inventory does: a record not unreadable any more has been corrected)."""
        if self.dry_run or not self._open:
            return
        seen = {pair for pairs in self._seen.values() for pair in pairs}
        await self.rt.store.resolve_quarantined(
            self.rt.name,
            self.flow,
            records=[(q.record_kind, q.record_id) for q in self._open],
            keep=seen,
        )

    async def read_ok(self, retry_key: str, **refs: str | None) -> None:
        """``retry_key`` read this pass: resolve its open entries not put again this pass
        (``refs``: the audit columns naming the record, e.g. ``plex_order_id``)."""
        if self.dry_run or not self.is_open(retry_key):
            return
        await self.rt.store.resolve_quarantined(
            self.rt.name,
            self.flow,
            retry_keys=[retry_key],
            keep=self._seen.get(retry_key, set()),
            refs=refs,
        )
