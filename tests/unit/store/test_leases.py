"""Leases: exclusive per (connection, flow), taken over after expiry, claimable by workers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mlconnector.clock import FakeClock
from mlconnector.store import Lease, Store

TTL = timedelta(seconds=60)


async def test_exclusive_between_two_owners(store: Store, acme: str, fake_clock: FakeClock) -> None:
    lease = await store.try_acquire_lease(acme, "orders", "w1", TTL)
    assert lease == Lease(acme, "orders", "w1", fake_clock.now() + TTL)
    assert await store.try_acquire_lease(acme, "orders", "w2", TTL) is None
    # Another flow of the same connection is independent.
    assert await store.try_acquire_lease(acme, "inventory", "w2", TTL) is not None
    # The holder may re-acquire (extends its lease).
    fake_clock.advance(10)
    again = await store.try_acquire_lease(acme, "orders", "w1", TTL)
    assert again is not None
    assert again.expires_at == fake_clock.now() + TTL
    assert await store.get_lease(acme, "orders") == again


async def test_expired_lease_is_taken_over(store: Store, acme: str, fake_clock: FakeClock) -> None:
    await store.try_acquire_lease(acme, "orders", "w1", TTL)
    fake_clock.advance(59)
    assert await store.try_acquire_lease(acme, "orders", "w2", TTL) is None
    fake_clock.advance(1)  # expires_at <= now: expired
    taken = await store.try_acquire_lease(acme, "orders", "w2", TTL)
    assert taken is not None
    assert taken.owner == "w2"
    # The old owner learns it lost the lease and cannot release the new owner's.
    assert await store.renew_lease(acme, "orders", "w1", TTL) is None
    assert await store.release_lease(acme, "orders", "w1") is False
    assert (await store.get_lease(acme, "orders")).owner == "w2"  # type: ignore[union-attr]


async def test_renew_and_release(store: Store, acme: str, fake_clock: FakeClock) -> None:
    await store.try_acquire_lease(acme, "orders", "w1", TTL)
    fake_clock.advance(50)
    renewed = await store.renew_lease(acme, "orders", "w1", TTL)
    assert renewed is not None
    assert renewed.expires_at == fake_clock.now() + TTL
    fake_clock.advance(50)  # past the original expiry, within the renewed one
    assert await store.try_acquire_lease(acme, "orders", "w2", TTL) is None
    assert await store.release_lease(acme, "orders", "w1") is True
    assert await store.get_lease(acme, "orders") is None
    assert await store.try_acquire_lease(acme, "orders", "w2", TTL) is not None


async def test_concurrent_acquire_has_one_winner(store: Store, acme: str) -> None:
    results = await asyncio.gather(
        *(store.try_acquire_lease(acme, "orders", f"w{i}", TTL) for i in range(6))
    )
    winners = [lease for lease in results if lease is not None]
    assert len(winners) == 1
    assert (await store.get_lease(acme, "orders")) == winners[0]


async def test_claim_any_lease(store: Store, acme: str, fake_clock: FakeClock) -> None:
    await store.create_connection("beta")
    await store.create_connection("off", enabled=False)
    flows = ["orders", "inventory"]
    claimed = []
    while (lease := await store.claim_any_lease("worker", flows, TTL)) is not None:
        claimed.append((lease.connection, lease.flow))
        assert len(claimed) <= 4
    assert sorted(claimed) == [
        ("acme", "inventory"),
        ("acme", "orders"),
        ("beta", "inventory"),
        ("beta", "orders"),
    ]
    assert await store.claim_any_lease("other", flows, TTL) is None
    fake_clock.advance(TTL.total_seconds())
    taken = await store.claim_any_lease("other", flows, TTL)
    assert taken is not None
    assert taken.owner == "other"
    assert await store.claim_any_lease("x", [], TTL) is None


async def test_claim_any_respects_try_acquire(store: Store, acme: str) -> None:
    await store.try_acquire_lease(acme, "orders", "w1", TTL)
    lease = await store.claim_any_lease("w2", ["orders", "shipments"], TTL)
    assert lease is not None
    assert (lease.flow, lease.owner) == ("shipments", "w2")
    assert await store.claim_any_lease("w2", ["orders", "shipments"], TTL) is None


async def test_concurrent_claims_never_share(store: Store) -> None:
    for name in ("a", "b", "c"):
        await store.create_connection(name)
    flows = ["orders", "inventory", "shipments"]
    results = await asyncio.gather(*(store.claim_any_lease(f"w{i}", flows, TTL) for i in range(12)))
    pairs = [(r.connection, r.flow) for r in results if r is not None]
    assert len(pairs) == 9
    assert len(set(pairs)) == 9


async def test_list_leases(store: Store, acme: str) -> None:
    await store.create_connection("beta")
    await store.try_acquire_lease("beta", "orders", "w1", TTL)
    await store.try_acquire_lease(acme, "orders", "w2", TTL)
    await store.try_acquire_lease(acme, "inventory", "w2", TTL)
    await store.release_lease(acme, "inventory", "w2")
    listed = [(lease.connection, lease.flow, lease.owner) for lease in await store.list_leases()]
    assert listed == [(acme, "orders", "w2"), ("beta", "orders", "w1")]
    assert [lease.connection for lease in await store.list_leases(connection="beta")] == ["beta"]
