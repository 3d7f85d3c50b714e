"""Group commit of webhook deliveries: many deliveries per transaction, each answered 200 only
after the transaction holding it committed; a failed commit answers 503 and claims nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.store import CredentialKind, Received, Store, StoreError
from mlconnector.web import ReceiverOptions, create_web_app
from mlconnector.web.group_commit import GroupCommit
from tests.unit.web.conftest import HOOK, SS_BASE


def body(i: int | str) -> bytes:
    url = f"{SS_BASE}/shipments?batchId={i}"
    return json.dumps({"resource_url": url, "resource_type": "SHIP_NOTIFY"}).encode()


async def inbox(store: Store) -> list[bytes]:
    return sorted(item.body for item in await store.list_webhooks(connection="acme"))


def count_commits(store: Store) -> list[int]:
    commits = [0]

    def committed(*_: Any) -> None:
        commits[0] += 1

    event.listen(store.engine.sync_engine, "commit", committed)
    return commits


async def test_concurrent_deliveries_share_one_transaction(
    store: Store, fake_clock: FakeClock
) -> None:
    group = GroupCommit(store, fake_clock, window=0.01)
    commits = count_commits(store)
    bodies = [body(i) for i in range(30)] + [body(3)]  # one body twice in the same batch
    results = await asyncio.gather(*(group.receive("acme", b, {}) for b in bodies))
    assert commits[0] == 1
    assert (group.batches, group.stored) == (1, 31)
    assert [r.created for r in results[:30]] == [True] * 30
    assert results[30].created is False
    assert results[30].item.id == results[3].item.id
    assert await inbox(store) == sorted(bodies[:30])


async def test_a_batch_never_holds_more_than_max_batch(store: Store, fake_clock: FakeClock) -> None:
    group = GroupCommit(store, fake_clock, window=0.01, max_batch=8)
    await asyncio.gather(*(group.receive("acme", body(i), {}) for i in range(20)))
    assert group.batches == 3
    assert len(await inbox(store)) == 20


async def test_the_200_is_sent_only_after_the_commit(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    real = store.receive_webhooks
    entered = asyncio.Event()

    async def slow_commit(deliveries: Sequence[tuple[str, bytes, Mapping[str, str]]]) -> Any:
        entered.set()
        await gate.wait()  # the transaction has not committed yet
        return await real(deliveries)

    monkeypatch.setattr(store, "receive_webhooks", slow_commit)
    answer = asyncio.create_task(client.post(HOOK, content=body(1)))
    await asyncio.wait_for(entered.wait(), 10)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not answer.done()  # nothing answered while the delivery is not durable
    assert await inbox(store) == []
    gate.set()
    response = await asyncio.wait_for(answer, 10)
    assert response.status_code == 200
    assert await inbox(store) == [body(1)]


async def test_a_failed_commit_answers_503_and_claims_nothing(
    store: Store, config: Config, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    nudged: list[str] = []
    app = create_web_app(store=store, config=config, clock=fake_clock, on_webhook=nudged.append)

    async def broken(deliveries: Sequence[tuple[str, bytes, Mapping[str, str]]]) -> Any:
        raise StoreError("the database refused the write: disk I/O error")

    real = store.receive_webhooks
    monkeypatch.setattr(store, "receive_webhooks", broken)
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        answers = await asyncio.gather(*(client.post(HOOK, content=body(i)) for i in range(5)))
        assert [a.status_code for a in answers] == [503] * 5
        assert all(a.headers["retry-after"] == "5" for a in answers)
        assert await inbox(store) == []
        assert nudged == []  # nothing claimed: no 200, no nudge
        monkeypatch.setattr(store, "receive_webhooks", real)
        again = await client.post(HOOK, content=body(0))  # ShipStation delivers it again
        assert again.status_code == 200
        assert again.json()["duplicate"] is False
        assert nudged == ["acme"]
    assert await inbox(store) == [body(0)]


async def test_one_bad_delivery_does_not_fail_the_others_of_its_batch(
    store: Store, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.receive_webhooks

    async def refuses_poison(deliveries: Sequence[tuple[str, bytes, Mapping[str, str]]]) -> Any:
        if any(b"poison" in b for _, b, _ in deliveries):
            raise StoreError("the database refused the write")
        return await real(deliveries)

    monkeypatch.setattr(store, "receive_webhooks", refuses_poison)
    group = GroupCommit(store, fake_clock, window=0.01)
    outcomes = await asyncio.gather(
        *(group.receive("acme", b, {}) for b in (body(1), body("poison"), body(2))),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], Received)
    assert isinstance(outcomes[1], StoreError)
    assert isinstance(outcomes[2], Received)
    assert await inbox(store) == sorted([body(1), body(2)])


@pytest.mark.parametrize("options", [ReceiverOptions(token_ttl=5.0)])
async def test_a_changed_token_applies_within_the_token_ttl(
    client: httpx.AsyncClient, store: Store, fake_clock: FakeClock
) -> None:
    assert (await client.post(HOOK, content=body(1))).status_code == 200
    await store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, "tok-new-0123456789abcdef")
    fake_clock.advance(6)
    old = await client.post(HOOK, content=body(2))
    new = await client.post("/webhooks/shipstation/acme/tok-new-0123456789abcdef", content=body(3))
    assert (old.status_code, new.status_code) == (404, 200)
    assert await inbox(store) == sorted([body(1), body(3)])


async def test_an_idle_receiver_commits_a_delivery_at_once(
    store: Store, fake_clock: FakeClock
) -> None:
    group = GroupCommit(store, fake_clock, window=0.5)
    started = fake_clock.monotonic()
    for i in range(3):
        received = await group.receive("acme", body(i), {})
        assert received.created
    assert fake_clock.monotonic() == started  # no window waited for (the clock would show it)
    assert (group.batches, group.stored) == (3, 3)


async def test_deliveries_arriving_during_a_commit_go_together_after_the_window(
    store: Store, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.receive_webhooks
    sizes: list[int] = []
    entered, gate = asyncio.Event(), asyncio.Event()

    async def gated(deliveries: Sequence[tuple[str, bytes, Mapping[str, str]]]) -> Any:
        sizes.append(len(deliveries))
        if len(sizes) == 1:
            entered.set()
            await gate.wait()  # the first commit is in flight
        return await real(deliveries)

    monkeypatch.setattr(store, "receive_webhooks", gated)
    group = GroupCommit(store, fake_clock, window=0.5)
    first = asyncio.create_task(group.receive("acme", body(0), {}))
    await asyncio.wait_for(entered.wait(), 10)
    later = [asyncio.create_task(group.receive("acme", body(i), {})) for i in range(1, 6)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert sizes == [1]  # they wait for the commit in flight
    assert not any(t.done() for t in [first, *later])
    started = fake_clock.monotonic()
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 10)
    assert sizes == [1, 5]
    assert fake_clock.monotonic() - started >= 0.5  # while busy, the window gathered them
    assert await inbox(store) == sorted(body(i) for i in range(6))
