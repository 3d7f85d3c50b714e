"""Shared rate budgets on PostgreSQL: one ``rate_budgets`` row per credential, stepped by every
process (:class:`mlconnector.http.ratelimit.SharedRateLimiter`).

A step is a compare-and-set on the row's ``version``, in autocommit: this process remembers the
last version and state it saw of each budget, applies the step to that state, and writes the
result only if the row still has that version — **one statement** when no other process stepped
the budget since (a step under a row lock is four: ``BEGIN``, ``SELECT … FOR UPDATE``,
``UPDATE``, ``COMMIT``). When another did, the same statement returns the row as it is now, and
the step is applied again to it. After :data:`CAS_TRIES` lost races the step takes the row lock
instead, which always goes through: a process that keeps losing still gets its turn.

Steps of one process on one budget take turns on an :class:`asyncio.Lock` (FIFO), so the
contenders for a row are the processes, not every request in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from mlconnector.http.ratelimit import BudgetState
from mlconnector.store.lane import Connects
from mlconnector.store.schema import rate_budgets

T = TypeVar("T")

#: compare-and-set attempts before a step takes the row lock
CAS_TRIES = 3

# built once: a statement built per call spends more CPU on its cache key than on its round trip
_KEY = rate_budgets.c.key == bindparam("k")
_STATE = bindparam("state", type_=rate_budgets.c.state.type)
_AT = bindparam("at", type_=rate_budgets.c.updated_at.type)
_READ = select(rate_budgets.c.version, rate_budgets.c.state).where(_KEY)
_CREATE = (
    pg_insert(rate_budgets)
    .values(key=bindparam("k"), state=_STATE, version=1, updated_at=_AT)
    .on_conflict_do_nothing(index_elements=["key"])
    .returning(rate_budgets.c.version)
)
_WRITTEN = (
    update(rate_budgets)
    .where(_KEY, rate_budgets.c.version == bindparam("v"))
    .values(state=_STATE, version=bindparam("next"), updated_at=_AT)
    .returning(rate_budgets.c.version)
    .cte("written")
)
#: the outer SELECT sees the row as of the statement's start: when the update did not apply,
#: that is the version another process wrote (or an older one, if it commits meanwhile: the
#: next try then fails too and reads it)
_COMPARE_AND_SET = select(
    select(_WRITTEN.c.version).scalar_subquery().label("applied"),
    rate_budgets.c.version,
    rate_budgets.c.state,
).where(_KEY)


@dataclass(frozen=True)
class _Seen:
    version: int
    state: dict[str, Any]


@dataclass
class BudgetStats:
    """How the steps went (for tests and benchmarks): compare-and-sets lost to another process,
    and steps that took the row lock after :data:`CAS_TRIES` of them."""

    steps: int = 0
    conflicts: int = 0
    locked: int = 0


class SharedBudgets:
    """The rate budgets of one store on PostgreSQL (see the module doc)."""

    def __init__(self, engine: AsyncEngine, autocommit: Connects, now: Callable[[], datetime]):
        self._engine = engine
        self._autocommit = autocommit
        self._now = now
        self._seen: dict[str, _Seen] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.stats = BudgetStats()

    async def step(self, key: str, initial: BudgetState, step: Callable[[BudgetState], T]) -> T:
        """Apply ``step`` to the budget ``key`` (created from ``initial`` when missing) and save
        it; concurrent steps of any process take turns, none is lost."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self.stats.steps += 1
            for _ in range(CAS_TRIES):
                seen = self._seen.get(key)
                if seen is None:
                    seen = await self._read(key)
                    if seen is None:
                        state = BudgetState.from_json(initial.to_json())
                        result = step(state)
                        if await self._create(key, state):
                            return result
                        continue  # another process created it first: read it
                state = BudgetState.from_json(seen.state)
                result = step(state)
                if await self._compare_and_set(key, seen.version, state):
                    return result
                self.stats.conflicts += 1
            return await self._locked(key, initial, step)

    async def _read(self, key: str) -> _Seen | None:
        async with self._autocommit.connect() as conn:
            row = (await conn.execute(_READ, {"k": key})).first()
        if row is None:
            return None
        seen = self._seen[key] = _Seen(row.version, row.state)
        return seen

    async def _create(self, key: str, state: BudgetState) -> bool:
        data = state.to_json()
        async with self._autocommit.connect() as conn:
            params = {"k": key, "state": data, "at": self._now()}
            created = (await conn.execute(_CREATE, params)).first()
        if created is not None:
            self._seen[key] = _Seen(1, data)
        return created is not None

    async def _compare_and_set(self, key: str, version: int, state: BudgetState) -> bool:
        """Write ``state`` as ``version + 1`` if the row is still at ``version``; else remember
        the row as this statement found it (the next try starts from there)."""
        data = state.to_json()
        params = {"k": key, "v": version, "next": version + 1, "state": data, "at": self._now()}
        async with self._autocommit.connect() as conn:
            row = (await conn.execute(_COMPARE_AND_SET, params)).first()
        if row is not None and row.applied is not None:
            self._seen[key] = _Seen(version + 1, data)
            return True
        if row is None:
            self._seen.pop(key, None)  # deleted meanwhile: create it again
        else:
            self._seen[key] = _Seen(row.version, row.state)
        return False

    async def _locked(self, key: str, initial: BudgetState, step: Callable[[BudgetState], T]) -> T:
        """The step under the row's lock (after lost races): it always goes through."""
        where = rate_budgets.c.key == key
        self.stats.locked += 1
        async with self._engine.begin() as conn:
            query = select(rate_budgets.c.version, rate_budgets.c.state).where(where)
            row = (await conn.execute(query.with_for_update())).first()
            if row is None:
                await conn.execute(
                    pg_insert(rate_budgets)
                    .values(key=key, state=initial.to_json(), version=0, updated_at=self._now())
                    .on_conflict_do_nothing(index_elements=["key"])
                )
                row = (await conn.execute(query.with_for_update())).one()
            state = BudgetState.from_json(row.state)
            result = step(state)
            data = state.to_json()
            await conn.execute(
                update(rate_budgets)
                .where(where)
                .values(state=data, version=row.version + 1, updated_at=self._now())
            )
        self._seen[key] = _Seen(row.version + 1, data)
        return result
