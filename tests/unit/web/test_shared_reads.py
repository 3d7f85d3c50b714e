"""One read per name at a time (web/shared_reads.py), as the receiver's caches use it."""

from __future__ import annotations

import asyncio

import pytest

from mlconnector.web.shared_reads import SharedReads


async def turns() -> None:
    """Let the tasks started so far run up to their first wait."""
    for _ in range(5):
        await asyncio.sleep(0)


class Loads:
    """A load whose reads finish when the test says so."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, name: str) -> str:
        self.started.append(name)
        number = len(self.started)
        await self.release.wait()
        return f"{name}#{number}"


async def test_concurrent_callers_share_one_read_per_name() -> None:
    loads = Loads()
    reads = SharedReads(loads)
    waiters = [asyncio.create_task(reads.get(n)) for n in ("a", "a", "a", "b")]
    await turns()
    loads.release.set()
    assert await asyncio.gather(*waiters) == ["a#1", "a#1", "a#1", "b#2"]
    assert loads.started == ["a", "b"]
    assert reads.in_flight() == []
    assert await reads.get("a") == "a#3"  # finished: the next caller reads again


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    loads = Loads()
    reads = SharedReads(loads)
    gone, staying = asyncio.create_task(reads.get("a")), asyncio.create_task(reads.get("a"))
    await turns()
    gone.cancel()
    await turns()
    loads.release.set()
    assert await staying == "a#1"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert loads.started == ["a"]


async def test_a_discarded_read_finishes_for_its_callers_and_the_next_starts_anew() -> None:
    gates: list[asyncio.Event] = []

    async def load(name: str) -> str:
        gates.append(asyncio.Event())
        number = len(gates)
        await gates[-1].wait()
        return f"{name}#{number}"

    reads = SharedReads(load)
    old = asyncio.create_task(reads.get("a"))
    await turns()
    reads.discard("a")
    new = asyncio.create_task(reads.get("a"))
    await turns()
    assert len(gates) == 2
    gates[0].set()
    assert await old == "a#1"
    # the old read's end leaves the new one in the table: a third caller shares it
    assert len(reads.in_flight()) == 1
    third = asyncio.create_task(reads.get("a"))
    await turns()
    assert len(gates) == 2
    gates[1].set()
    assert await new == "a#2"
    assert await third == "a#2"
    assert reads.in_flight() == []


async def test_an_unwaited_failing_read_is_retrieved_and_aclose_stops_the_rest() -> None:
    async def failing(name: str) -> str:
        raise RuntimeError(f"store down for {name}")

    reads: SharedReads[str] = SharedReads(failing)
    task = reads.start("a")  # a background refresh nobody waits for
    await asyncio.gather(task, return_exceptions=True)
    assert isinstance(task.exception(), RuntimeError)
    with pytest.raises(RuntimeError, match="store down for b"):
        await reads.get("b")

    loads = Loads()
    slow = SharedReads(loads)
    running = slow.start("c")
    await turns()
    await slow.aclose()
    assert running.cancelled()
