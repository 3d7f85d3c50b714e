"""The receiver's token cache: concurrent misses share one read, and an answer in use is read
again before it expires, never used past its ttl."""

from __future__ import annotations

import asyncio

import pytest

from mlconnector.clock import FakeClock
from mlconnector.store import CredentialKind, Store
from mlconnector.web.tokens import TokenCache
from tests.unit.web.conftest import TOKEN


def count_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = store.get_credential

    async def counted(connection: str, kind: str) -> str | None:
        reads.append(connection)
        return await real(connection, kind)

    monkeypatch.setattr(store, "get_credential", counted)
    return reads


async def test_concurrent_misses_share_one_read(
    store: Store, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_reads(store, monkeypatch)
    cache = TokenCache(store, fake_clock, ttl=5.0)
    answers = await asyncio.gather(*(cache.expected("acme") for _ in range(16)))
    assert answers == [TOKEN] * 16
    assert reads == ["acme"]
    fake_clock.advance(5.0)  # expired: the next deliveries share the next read
    answers = await asyncio.gather(*(cache.expected(n) for n in ["acme"] * 8 + ["nobody"] * 8))
    assert answers == [TOKEN] * 8 + [None] * 8
    assert sorted(reads) == ["acme", "acme", "nobody"]


async def test_an_answer_in_use_is_read_again_before_it_expires(
    store: Store, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_reads(store, monkeypatch)
    cache = TokenCache(store, fake_clock, ttl=5.0, refresh_after=0.8)
    assert await cache.expected("acme") == TOKEN
    fake_clock.advance(3.9)
    assert await cache.expected("acme") == TOKEN
    assert reads == ["acme"]  # young: no read
    await store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, "tok-new-0123456789abcdef")
    fake_clock.advance(0.2)  # 4.1 s: past 80 % of the ttl
    assert await cache.expected("acme") == TOKEN  # served at once, still within its ttl
    await asyncio.wait_for(asyncio.gather(*cache._reads.in_flight()), 10)  # the background read
    assert reads == ["acme", "acme"]
    fake_clock.advance(1.0)  # 5.1 s after the first read: the refreshed answer, no wait
    assert await cache.expected("acme") == "tok-new-0123456789abcdef"
    assert reads == ["acme", "acme"]


async def test_an_expired_answer_is_never_served(
    store: Store, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_reads(store, monkeypatch)
    cache = TokenCache(store, fake_clock, ttl=5.0)
    assert await cache.expected("acme") == TOKEN
    await store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, "tok-new-0123456789abcdef")
    fake_clock.advance(5.0)  # never used in its last 20 %: nothing refreshed it
    assert await cache.expected("acme") == "tok-new-0123456789abcdef"
    assert reads == ["acme", "acme"]


async def test_a_forgotten_answer_is_read_again(store: Store, fake_clock: FakeClock) -> None:
    cache = TokenCache(store, fake_clock, ttl=5.0)
    assert await cache.expected("acme") == TOKEN
    await store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, "tok-new-0123456789abcdef")
    cache.forget("acme")
    assert await cache.expected("acme") == "tok-new-0123456789abcdef"
