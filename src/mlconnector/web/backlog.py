"""How many deliveries of a connection wait in the inbox, read from the store only when it matters.

The receiver refuses a delivery (``503`` + ``Retry-After``) while ``[web] inbox_max_pending``
deliveries of its connection wait. Counting them per delivery is a read (a scan of the pending
rows) for every request: at hundreds of deliveries a second, more than the rest of the request.

A count read from the store is kept for ``ttl`` seconds and raised by every delivery this process
stores meanwhile, so it is an upper bound as far as this process goes (the engine only ever
lowers the real count). While that estimate stays below ``headroom`` × the cap (by default half
of it), no read is needed: other receivers of the same database would have to store the other
half within ``ttl`` for the cap to be missed. At or above it, every delivery reads the count
again, exactly as without this cache: a full inbox refuses at once, and one the engine has worked
off accepts again with the next delivery. Concurrent deliveries that need a read share it, and
an estimate past ``refresh_after`` of its ttl is read again in the background while it is still
used, so under steady traffic far below the cap no delivery waits for the count (every
deliveries in flight waited 5-17 ms for it once per ttl).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlconnector.clock import Clock
from mlconnector.store import Store
from mlconnector.web.shared_reads import SharedReads

DEFAULT_TTL = 1.0
DEFAULT_HEADROOM = 0.5
#: the share of the ttl after which a used estimate is read again in the background
DEFAULT_REFRESH_AFTER = 0.5


@dataclass
class _Estimate:
    read_at: float
    pending: int


class PendingCount:
    """``pending(name)``: how many deliveries of ``name`` wait (an upper bound while far below
    the cap); :meth:`stored` after each new delivery."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        cap: int,
        *,
        ttl: float = DEFAULT_TTL,
        headroom: float = DEFAULT_HEADROOM,
        refresh_after: float = DEFAULT_REFRESH_AFTER,
    ) -> None:
        self.store = store
        self.clock = clock
        self.cap = cap
        self.ttl = ttl
        self.headroom = headroom
        self.refresh_after = refresh_after
        self._estimates: dict[str, _Estimate] = {}
        self._reads: SharedReads[int] = SharedReads(self._count)
        #: counts read from the store (for tests and benchmarks)
        self.reads = 0

    async def pending(self, name: str) -> int:
        """The connection's waiting deliveries: the cached estimate while it is fresh and below
        the headroom, else the store's count."""
        estimate = self._estimates.get(name)
        if estimate is not None and estimate.pending < self.cap * self.headroom:
            age = self.clock.monotonic() - estimate.read_at
            if age < self.ttl:
                if age >= self.ttl * self.refresh_after:
                    self._reads.start(name)  # the estimate holds meanwhile: within its ttl
                return estimate.pending
        return await self._reads.get(name)  # one read at a time per connection, shared

    def stored(self, name: str) -> None:
        """One new delivery of ``name`` was stored by this process."""
        estimate = self._estimates.get(name)
        if estimate is not None:
            estimate.pending += 1

    async def aclose(self) -> None:
        """Stop the reads in flight (the store is about to close)."""
        await self._reads.aclose()

    async def _count(self, name: str) -> int:
        read_at = self.clock.monotonic()
        self.reads += 1
        count = (await self.store.count_pending_webhooks(connection=name)).get(name, 0)
        # a delivery committed while the count was read may be missing from it: at most the few
        # the cap may already be passed by
        self._estimates[name] = _Estimate(read_at, count)
        return count
