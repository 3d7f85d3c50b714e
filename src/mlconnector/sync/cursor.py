"""Cursor rules (DESIGN §1 rule 2), pure and shared by every polling flow.

* The position comes from **record timestamps**, never from the wall clock.
* The read window is ``[since − overlap, run_start − safety_lag]``, inclusive at both ends. The
  overlap (default 2 h) covers late-committed records and the repeated Pacific fall-back hour
  (ShipStation V1 filters in Pacific wall time, which goes back one hour once a year).
* Records re-read in the overlap are de-duplicated on ``(id, modified)``.
* The cursor advances only after the batch is committed: compute the next state with
  :func:`advance`, store it with ``store.set_cursor`` at the very end of the run.
* A source that stays quiet would otherwise keep the cursor at its last record for ever (a
  tenant without orders re-read the whole 60-day initial lookback every run): a run that read
  its **whole** window without error passes ``read_through`` (:func:`read_bound`: the window
  end, or the server's own clock minus the safety lag when that is earlier), and ``since``
  moves to ``read_through − overlap`` once that is at least one overlap ahead of it. The next
  window then starts two overlaps before what was read, so late-committed records and a clock
  up to ``2 × overlap + safety lag`` ahead of the server's are still read (and de-duplicated);
  the step of one overlap keeps a quiet connection at one cursor write per overlap, not per run.

The stored value is JSON: ``{"since": "...Z", "seen": [[id, modified], ...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlconnector.timezones import format_utc_z, parse_utc_z

DEFAULT_OVERLAP = timedelta(hours=2)
DEFAULT_SAFETY_LAG = timedelta(minutes=2)
DEFAULT_INITIAL_LOOKBACK = timedelta(days=60)


@dataclass(frozen=True)
class CursorState:
    """Where a flow is: the newest committed record timestamp, and the records seen near it."""

    since: datetime | None = None
    seen: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def to_json(self) -> str:
        return json.dumps(
            {
                "since": format_utc_z(self.since) if self.since else None,
                "seen": sorted([list(pair) for pair in self.seen]),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> CursorState:
        """Parse a stored cursor; ``None``/empty is the state before the first run. A bare
        timestamp (an older format) is accepted as ``since``."""
        if not text:
            return cls()
        stripped = text.strip()
        if not stripped.startswith("{"):
            return cls(since=parse_utc_z(stripped))
        raw = json.loads(stripped)
        since = parse_utc_z(raw["since"]) if raw.get("since") else None
        seen = frozenset((str(i), str(m)) for i, m in raw.get("seen") or [])
        return cls(since=since, seen=seen)

    def is_new(self, record_id: str, modified: datetime | None) -> bool:
        """False when exactly this version of the record was committed by an earlier run."""
        if modified is None:
            return True
        return (record_id, format_utc_z(modified)) not in self.seen


def read_window(
    state: CursorState,
    run_start: datetime,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    safety_lag: timedelta = DEFAULT_SAFETY_LAG,
    initial_lookback: timedelta = DEFAULT_INITIAL_LOOKBACK,
) -> tuple[datetime, datetime]:
    """The inclusive ``[start, end]`` to read this run."""
    if run_start.tzinfo is None:
        raise ValueError("run_start must be an aware UTC datetime")
    end = run_start - safety_lag
    start = state.since - overlap if state.since is not None else run_start - initial_lookback
    return min(start, end), end


def read_bound(
    window_end: datetime,
    server_time: datetime | None,
    *,
    safety_lag: timedelta = DEFAULT_SAFETY_LAG,
) -> datetime:
    """How far a completed read of ``[start, window_end]`` really reached: the window end, or
    the server's clock at the read minus the safety lag when that is earlier (our clock ahead
    of the server's: what lies beyond did not exist there yet)."""
    if server_time is None:
        return window_end
    return min(window_end, server_time - safety_lag)


def advance(
    state: CursorState,
    records: Iterable[tuple[str, datetime | None]],
    window_end: datetime,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    read_through: datetime | None = None,
) -> CursorState:
    """The state after committing ``records`` (``(id, modified)`` pairs read this run).

    ``since`` becomes the newest record timestamp (never past ``window_end``, never backwards);
    ``seen`` keeps the pairs inside the next overlap so they are not processed twice.

    ``read_through`` (only for a read of the whole window that raised nothing and left out no
    record it cannot read again): ``since`` also moves to ``read_through − overlap`` (never
    past ``window_end − overlap``) when that is at least one overlap ahead of it, so a quiet
    source's window stays a few overlaps wide instead of growing from its last record.
    """
    pairs = [(rid, m) for rid, m in records if m is not None and m <= window_end]
    newest = max((m for _, m in pairs), default=None)
    since = state.since
    if newest is not None and (since is None or newest > since):
        since = newest
    if read_through is not None:
        target = min(read_through, window_end) - overlap
        if since is None or target >= since + overlap:
            since = target
    if since is None:
        return state
    floor = since - overlap
    seen = {(rid, format_utc_z(m)) for rid, m in pairs if m >= floor}
    seen |= {(rid, m) for rid, m in state.seen if parse_utc_z(m) >= floor}
    return CursorState(since=since, seen=frozenset(seen))


class ReadPairs:
    """The ``(id, modified)`` pairs a run reads, kept only as far as :func:`advance` needs them.

    :func:`advance` uses the newest timestamp and the pairs within ``overlap`` of the new
    ``since`` (which is at least that newest timestamp); a pair older than ``newest − overlap``
    can never be kept, so it is dropped as the reads go on. A long pass therefore holds the
    pairs of its last ``overlap``, not one per record read: ``advance(state, pairs, end)``
    gives the same state as with every pair.
    """

    def __init__(self, window_end: datetime, *, overlap: timedelta = DEFAULT_OVERLAP) -> None:
        self.window_end = window_end
        self.overlap = overlap
        self.newest: datetime | None = None
        self._pairs: list[tuple[str, datetime]] = []
        self._prune_at = 1024

    def add(self, record_id: str, modified: datetime | None) -> None:
        """One record read (``modified`` ``None`` or past the window end: not counted)."""
        if modified is None or modified > self.window_end:
            return
        if self.newest is None or modified > self.newest:
            self.newest = modified
        elif modified < self.newest - self.overlap:
            return
        self._pairs.append((record_id, modified))
        if len(self._pairs) >= self._prune_at:
            floor = self.newest - self.overlap
            self._pairs = [(i, m) for i, m in self._pairs if m >= floor]
            self._prune_at = max(1024, 2 * len(self._pairs))

    def __iter__(self) -> Iterator[tuple[str, datetime | None]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)
