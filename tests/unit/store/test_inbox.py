"""The webhook inbox: persisted before acknowledgement, de-duplicated by body, headers redacted."""

from __future__ import annotations

import hashlib

from mlconnector.clock import FakeClock
from mlconnector.store import Store

BODY = b'{"resource_url":"https://ssapi.shipstation.com/shipments?batchId=1","resource_type":"SHIP_NOTIFY"}'


async def test_receive_persists_and_redacts_headers(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    received = await store.receive_webhook(
        acme,
        BODY,
        {"Content-Type": "application/json", "Authorization": "Basic c2VjcmV0OnNlY3JldA=="},
    )
    item = received.item
    assert received.created is True
    assert item.body == BODY
    assert item.dedupe_key == hashlib.sha256(BODY).hexdigest()
    assert item.headers == {"Content-Type": "application/json", "Authorization": "***"}
    assert (item.received_at, item.processed_at, item.attempts) == (fake_clock.now(), None, 0)
    assert await store.get_webhook(item.id) == item


async def test_duplicate_body_is_not_stored_twice(store: Store, acme: str) -> None:
    first = await store.receive_webhook(acme, BODY, {})
    again = await store.receive_webhook(acme, BODY, {"X-Retry": "1"})
    assert again.created is False
    assert again.item == first.item
    await store.create_connection("other")
    elsewhere = await store.receive_webhook("other", BODY, {})
    assert elsewhere.created is True  # same body for another connection is another delivery
    assert [i.id for i in await store.pending_webhooks(connection=acme)] == [first.item.id]


async def test_processing_lifecycle(store: Store, acme: str, fake_clock: FakeClock) -> None:
    a = (await store.receive_webhook(acme, b"a", {})).item
    fake_clock.advance(1)
    b = (await store.receive_webhook(acme, b"b", {})).item
    assert [i.id for i in await store.pending_webhooks()] == [a.id, b.id]

    retried = await store.record_webhook_attempt(a.id, "fetch failed: HTTP 503")
    assert (retried.attempts, retried.outcome, retried.processed_at) == (
        1,
        "fetch failed: HTTP 503",
        None,
    )
    fake_clock.advance(5)
    done = await store.finish_webhook(a.id, "ok")
    assert (done.attempts, done.outcome, done.processed_at) == (2, "ok", fake_clock.now())
    assert [i.id for i in await store.pending_webhooks()] == [b.id]
    assert [i.id for i in await store.pending_webhooks(limit=0)] == []
    # A duplicate delivery of a processed body is still recognised.
    assert (await store.receive_webhook(acme, b"a", {})).created is False


async def test_list_webhooks_newest_first(store: Store, acme: str, fake_clock: FakeClock) -> None:
    a = (await store.receive_webhook(acme, b"a", {})).item
    fake_clock.advance(1)
    b = (await store.receive_webhook(acme, b"b", {})).item
    await store.finish_webhook(a.id, "ok")
    assert [i.id for i in await store.list_webhooks()] == [b.id, a.id]
    assert [i.id for i in await store.list_webhooks(connection=acme, limit=1)] == [b.id]
    assert await store.list_webhooks(connection="other") == []
