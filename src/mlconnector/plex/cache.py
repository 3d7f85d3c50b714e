"""A small least-recently-used map: the Plex client's per-run caches (customers, addresses,
parts) keep at most ``limit`` entries each, so a pass over many orders of many customers holds
the most recently used ones, not one entry per customer or part ever seen."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class LRUCache(Generic[K, V]):
    """At most ``limit`` entries; reading or writing one makes it the most recent, and adding
    one past the limit evicts the least recently used."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an LRU cache needs a limit of at least 1")
        self.limit = limit
        self._data: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value (now the most recent), or ``default``."""
        found = self._data.get(key, _MISSING)
        if found is _MISSING:
            return default
        self._data.move_to_end(key)
        return found  # type: ignore[return-value]

    def __setitem__(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.limit:
            self._data.popitem(last=False)

    def setdefault(self, key: K, value: V) -> None:
        """Store ``value`` unless ``key`` is present (either way it becomes the most recent)."""
        if key in self._data:
            self._data.move_to_end(key)
        else:
            self[key] = value

    def clear(self) -> None:
        self._data.clear()
