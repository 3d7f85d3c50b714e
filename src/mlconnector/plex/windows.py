"""Bounded date windows and the check that a Plex filter really took effect.

Plex lists are unpaginated and silently ignore a filter they do not know, so a misspelled
parameter returns the whole table. Every windowed read therefore checks each record against the
window it asked for and refuses the batch (a :class:`FatalError`) instead of syncing everything.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timedelta

from mlconnector.errors import FatalError


class FilterIgnoredError(FatalError):
    """Plex returned records the filter should have excluded."""


def windows(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive ``[a, b]`` windows covering ``[start, end]`` (the last one may be shorter)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window bounds must be aware UTC datetimes")
    if size <= timedelta(0):
        raise ValueError("window size must be positive")
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        yield cursor, upper
        cursor = upper


def check_in_window(
    records: Iterable[tuple[str, datetime | None]],
    start: datetime,
    end: datetime,
    *,
    resource: str,
    filter_names: str,
) -> None:
    """Raise :class:`FilterIgnoredError` if any ``(id, date)`` lies outside ``[start, end]``."""
    outside = [
        (rid, when) for rid, when in records if when is not None and not start <= when <= end
    ]
    if outside:
        rid, when = outside[0]
        raise FilterIgnoredError(
            f"filter ignored: Plex returned records outside the window; refusing a silent "
            f"full-table sync ({resource}: {len(outside)} record(s) outside "
            f"{start.isoformat()} .. {end.isoformat()}, e.g. {rid} at {when})",
            record=rid,
            hint=f"check that Plex still supports the {filter_names} filter on {resource}",
        )


def check_ids(
    returned: Iterable[str | None], requested: Collection[str], *, resource: str, filter_name: str
) -> None:
    """Raise :class:`FilterIgnoredError` if Plex returned ids that were not asked for."""
    wanted = {r.lower() for r in requested}
    extra = [r for r in returned if r is None or r.lower() not in wanted]
    if extra:
        raise FilterIgnoredError(
            f"filter ignored: Plex returned {len(extra)} {resource} record(s) that were not "
            f"requested (e.g. {extra[0]}); refusing a silent full-table sync",
            record=str(extra[0]),
            hint=f"check that Plex still supports the {filter_name} filter on {resource}",
        )


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """``items`` in slices of at most ``size`` (keeps repeated-parameter URLs short)."""
    for index in range(0, len(items), size):
        yield items[index : index + size]
