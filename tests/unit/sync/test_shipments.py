"""ShipmentsFlow against mocked HTTP and a recording write strategy: the inbox outcomes, one write
per shipment whatever the sources, voids, crash resolve and dry run. (Loopback runs: tests/e2e.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.plex import ExistingWrite, ShipmentWrite, Shipper, WriteResult
from mlconnector.store import AuditQuery, Link, OperationState, StagedLine, StagedWrite, Store
from mlconnector.sync import ConnectionRuntime, LogAlertSink, build_runtime, recover
from mlconnector.sync.base import StaleOperationError
from mlconnector.sync.shipments import KIND_WRITE, ShipmentsFlow, op_key
from tests.unit.sync.conftest import make_config

SS = "https://ssapi.shipstation.com"
ORDER_KEY = "plex-79870-o1-g1"


def shipment(sid: int, items: list[tuple[str, int]], **extra: Any) -> dict[str, Any]:
    return {
        "shipmentId": sid,
        "orderId": 501,
        "orderKey": ORDER_KEY,
        "orderNumber": "1001-260115",
        "createDate": "2026-01-15T03:00:00.0000000",
        "shipDate": "2026-01-15",
        "trackingNumber": f"1Z{sid}",
        "carrierCode": "ups",
        "serviceCode": "ups_ground",
        "voided": False,
        "voidDate": None,
        "shipmentItems": [
            {"lineItemKey": key, "sku": f"SKU-{key}", "quantity": qty} for key, qty in items
        ],
        **extra,
    }


@dataclass
class Fake:
    """ShipStation V1 and the Plex reads of a write-back, served by a MockTransport handler."""

    shipments: list[dict[str, Any]] = field(default_factory=list)
    fail_batches: bool = False
    fail_polls: bool = False
    requests: list[str] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        path, params = request.url.path, request.url.params
        if path == "/shipments":
            if "batchId" in params and self.fail_batches:
                return httpx.Response(503, json={"message": "busy"})
            if "batchId" not in params and self.fail_polls:
                return httpx.Response(400, json={"message": "bad window"})
            rows = self.shipments
            if "voidDateStart" in params:
                rows = [s for s in rows if s["voided"]]
            return httpx.Response(200, json={"shipments": rows, "page": 1, "pages": 1})
        if path == "/fulfillments":
            return httpx.Response(200, json={"fulfillments": [], "page": 1, "pages": 1})
        if path.endswith("/sales/v1/releases") and params.get_list("orderLineIds") == ["line-1"]:
            return httpx.Response(
                200, json=[{"id": i, "orderLineId": "line-1"} for i in ("r1", "r2")]
            )
        if path.endswith("/sales/v1/orders/o1/lines"):
            return httpx.Response(200, json=[{"id": "line-1", "orderId": "o1", "partId": "p1"}])
        return httpx.Response(404, json={"message": f"unexpected {request.method} {path}"})


class Writer:
    """A write strategy that records what it was asked to write."""

    name = "fake"

    def __init__(self) -> None:
        self.writes: list[ShipmentWrite] = []
        self.first_attempts: list[bool] = []
        self.existing = ExistingWrite()

    async def write_shipment(
        self, write: ShipmentWrite, *, first_attempt: bool = False, releases: Any = None
    ) -> WriteResult:
        self.writes.append(write)
        self.first_attempts.append(first_attempt)
        return WriteResult(write.reference, self.name, shipper_id=f"shipper-{len(self.writes)}")

    async def find_existing(
        self, reference: str, *, tracking_number: str | None = None
    ) -> ExistingWrite:
        return self.existing


@pytest.fixture
async def env(
    tmp_path: Path, with_secrets: Store, fake_clock: FakeClock
) -> AsyncIterator[tuple[Fake, Writer, ConnectionRuntime]]:
    fake, writer = Fake(), Writer()

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))

    rt = await build_runtime(
        make_config(tmp_path), "acme", with_secrets, fake_clock, factory, alerts=LogAlertSink()
    )
    rt.writer = writer  # type: ignore[assignment]
    await rt.store.save_link(
        Link(
            connection="acme",
            order_key=ORDER_KEY,
            plex_order_id="o1",
            group_key="g1",
            ss_order_id="501",
            release_ids=["R1", "R2"],
        )
    )
    try:
        yield fake, writer, rt
    finally:
        await rt.aclose()


def delivery(batch: int, kind: str = "SHIP_NOTIFY", host: str = SS) -> bytes:
    url = f"{host}/shipments?batchId={batch}&includeShipmentItems=False"
    return json.dumps({"resource_url": url, "resource_type": kind}).encode()


async def test_webhooks_and_poll_of_one_shipment_write_once(
    env: tuple[Fake, Writer, ConnectionRuntime],
) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(7, [("r1", 3), ("x9", 1)])]
    await rt.store.receive_webhook("acme", delivery(1), {})
    await rt.store.receive_webhook("acme", delivery(2), {})  # a second pointer, same shipment
    result = await ShipmentsFlow().run(rt)
    assert len(writer.writes) == 1
    write = writer.writes[0]
    assert write.reference == "ss-shipment-7"
    assert write.order_id == "o1"
    assert [(ln.release_id, ln.part_id, ln.quantity) for ln in write.lines] == [("r1", "p1", 3.0)]
    assert write.tracking_number == "1Z7"
    assert write.ship_date.utcoffset() is not None
    assert writer.first_attempts == [True]  # its outbox row was created by this run
    assert "SKU-x9 (lineItemKey x9)" in result.plan[0].details["ignored_items"]
    assert result.written_back == 1
    lines = await rt.store.get_shipment_lines("acme", "ss-shipment-7")
    assert [(ln.line_key, ln.quantity, ln.written_back_at is not None) for ln in lines] == [
        ("r1", 3, True)
    ]
    assert await rt.store.pending_webhooks(connection="acme") == []
    assert (await ShipmentsFlow().run(rt)).written_back == 0
    assert len(writer.writes) == 1


async def test_inbox_outcomes(env: tuple[Fake, Writer, ConnectionRuntime]) -> None:
    fake, _writer, rt = env
    bad = await rt.store.receive_webhook("acme", b"not json", {})
    order = await rt.store.receive_webhook("acme", delivery(1, "ORDER_NOTIFY"), {})
    rejected_ff = await rt.store.receive_webhook("acme", delivery(4, "FULFILLMENT_REJECTED"), {})
    v2 = await rt.store.receive_webhook("acme", delivery(2, "LABEL_CREATED_V2"), {})
    foreign = await rt.store.receive_webhook("acme", delivery(3, host="https://evil.example"), {})
    await ShipmentsFlow().run(rt)
    outcomes = {}
    for received in (bad, order, v2, foreign, rejected_ff):
        item = await rt.store.get_webhook(received.item.id)
        assert item is not None
        assert item.processed_at is not None
        outcomes[received.item.id] = item.outcome or ""
    assert outcomes[bad.item.id].startswith("rejected")
    assert outcomes[order.item.id].startswith("ignored")
    assert outcomes[v2.item.id].startswith("ignored")
    assert outcomes[rejected_ff.item.id].startswith("ignored")
    assert outcomes[foreign.item.id].startswith("rejected: foreign")
    assert not any("evil.example" in url for url in fake.requests)
    assert not any("batchId" in url for url in fake.requests)  # nothing was followed
    rejected = await rt.store.search_audit(AuditQuery(flow="shipments", outcome="skipped"))
    assert len([e for e in rejected if e.entity == "webhook"]) == 2


async def test_a_delivery_that_cannot_be_followed_stays_pending(
    env: tuple[Fake, Writer, ConnectionRuntime],
) -> None:
    fake, _writer, rt = env
    fake.fail_batches = True
    received = await rt.store.receive_webhook("acme", delivery(1), {})
    result = await ShipmentsFlow().run(rt)
    item = await rt.store.get_webhook(received.item.id)
    assert item is not None
    assert item.processed_at is None
    assert item.attempts == 1
    assert (item.outcome or "").startswith("retry")
    assert result.errors


async def test_shipment_without_a_link_is_skipped(
    env: tuple[Fake, Writer, ConnectionRuntime],
) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(8, [("r1", 1)], orderKey="shopify-1", orderId=999)]
    result = await ShipmentsFlow().run(rt)
    assert writer.writes == []
    assert [(i.action, i.key) for i in result.plan] == [("skip", "ss-shipment-8")]
    assert "not ours" in result.plan[0].reason


async def test_void_before_write_back_blocks_the_queued_write(
    env: tuple[Fake, Writer, ConnectionRuntime],
) -> None:
    fake, writer, rt = env
    flow = ShipmentsFlow()
    # a write-back that failed earlier and waits for its retry
    payload = {"reference": "ss-shipment-9", "void_id": "ss-void-9", "lines": []}
    queued = await rt.store.enqueue(
        "acme", "shipments", KIND_WRITE, op_key("acme", "ss-shipment-9"), payload
    )
    await rt.store.record_shipment_line("acme", "ss-shipment-9", "r2", 4, sku="SKU-r2")
    fake.shipments = [shipment(9, [("r2", 4)], voided=True, voidDate="2026-01-15T03:10:00.0")]
    result = await flow.run(rt)
    assert writer.writes == []
    assert any(i.action == "record_void" for i in result.plan)
    retired = await rt.store.get_operation(queued.operation.id)
    assert retired is not None
    assert retired.state is OperationState.DEAD
    assert await rt.store.unwritten_quantities("acme") == {}  # no longer held back from stock
    # even a replayed write is refused: the label is void
    await rt.store.replay([queued.operation.id])
    op = await rt.store.get_operation(queued.operation.id)
    assert op is not None
    with pytest.raises(StaleOperationError, match="voided before it was written back"):
        await flow.execute(rt, op)


async def test_crash_after_the_plex_write_is_confirmed_by_looking(
    env: tuple[Fake, Writer, ConnectionRuntime],
) -> None:
    _fake, writer, rt = env
    payload = {
        "reference": "ss-shipment-11",
        "void_id": "ss-void-11",
        "tracking_number": "1Z11",
        "lines": [{"release_id": "r1", "sku": "SKU-r1", "quantity": 2}],
    }
    key = op_key("acme", "ss-shipment-11")
    op = (await rt.store.enqueue("acme", "shipments", KIND_WRITE, key, payload)).operation
    await rt.store.record_shipment_line("acme", "ss-shipment-11", "r1", 2, sku="SKU-r1")
    await rt.store.mark_sent(op.id)  # the process died after sending
    writer.existing = ExistingWrite(shipper=Shipper(id="shipper-x", status="Shipped"))
    result = await recover(rt, [ShipmentsFlow()])
    assert result.recovered == 1
    done = await rt.store.get_operation(op.id)
    assert done is not None
    assert (done.state, done.remote_ref) == (OperationState.CONFIRMED, "shipper-x")
    assert await rt.store.unwritten_quantities("acme") == {}
    assert writer.writes == []  # looked, did not write again
    # not found (or left half-done): resend, and the strategy resumes it
    writer.existing = ExistingWrite(shipper=Shipper(id="shipper-y", status="Open"))
    assert await ShipmentsFlow().resolve(rt, done) is False


async def test_dry_run_writes_nothing(env: tuple[Fake, Writer, ConnectionRuntime]) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(12, [("r2", 5)])]
    received = await rt.store.receive_webhook("acme", delivery(1), {})
    result = await ShipmentsFlow().run(rt, dry_run=True)
    assert [(i.action, i.key) for i in result.plan if i.action != "skip"] == [
        ("write_back", "ss-shipment-12")
    ]
    assert writer.writes == []
    assert await rt.store.list_operations(connection="acme") == []
    assert await rt.store.get_shipment_lines("acme", "ss-shipment-12") == []
    assert await rt.store.get_cursor("acme", "shipments") is None
    item = await rt.store.get_webhook(received.item.id)
    assert item is not None
    assert item.processed_at is None


async def test_the_inbox_is_read_page_by_page_up_to_the_limit(
    env: tuple[Fake, Writer, ConnectionRuntime],
) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(20, [("r1", 1)])]
    for batch in range(150):
        await rt.store.receive_webhook("acme", delivery(batch), {})
    dry = await ShipmentsFlow(inbox_limit=1000).run(rt, dry_run=True)
    assert len(await rt.store.pending_webhooks(connection="acme", limit=500)) == 150
    assert sum(1 for url in fake.requests if "batchId" in url) == 150  # each looked at once
    assert [i.key for i in dry.plan if i.action == "write_back"] == ["ss-shipment-20"]
    await ShipmentsFlow(inbox_limit=120).run(rt)
    assert len(await rt.store.pending_webhooks(connection="acme", limit=500)) == 30
    await ShipmentsFlow().run(rt)
    assert await rt.store.pending_webhooks(connection="acme", limit=500) == []
    assert len(writer.writes) == 1


async def test_an_operation_enqueued_earlier_is_written_looking_first(
    env: tuple[Fake, Writer, ConnectionRuntime],
) -> None:
    fake, writer, rt = env
    # enqueued by an earlier run that died before sending it: it may not be a first attempt
    payload = {
        "reference": "ss-shipment-13",
        "void_id": "ss-void-13",
        "plex_order_id": "o1",
        "ship_date": "2026-01-15T11:00:00Z",
        "lines": [{"release_id": "r1", "sku": "SKU-r1", "quantity": 2}],
    }
    await rt.store.enqueue(
        "acme", "shipments", KIND_WRITE, op_key("acme", "ss-shipment-13"), payload
    )
    fake.shipments = [shipment(13, [("r1", 2)])]
    result = await ShipmentsFlow().run(rt)
    assert result.written_back == 1
    assert writer.first_attempts == [False]


async def test_an_older_delivery_is_left_to_the_poll_and_a_fresh_one_followed(
    env: tuple[Fake, Writer, ConnectionRuntime], fake_clock: FakeClock
) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(30, [("r1", 1)]), shipment(31, [("r2", 1)])]
    old = await rt.store.receive_webhook("acme", delivery(1), {})
    fake_clock.advance(600)  # the poll window ends 2 min before now: the old one is inside
    fresh = await rt.store.receive_webhook("acme", delivery(2), {})
    result = await ShipmentsFlow().run(rt)
    followed = [url for url in fake.requests if "batchId" in url]
    assert len(followed) == 1
    assert "batchId=2" in followed[0]
    assert sorted(w.reference for w in writer.writes) == ["ss-shipment-30", "ss-shipment-31"]
    assert result.written_back == 2
    done_old = await rt.store.get_webhook(old.item.id)
    done_fresh = await rt.store.get_webhook(fresh.item.id)
    assert done_old is not None
    assert done_fresh is not None
    assert (done_old.outcome or "").startswith("ok: read by the created poll")
    assert (done_fresh.outcome or "").startswith("ok: 2 record(s)")
    assert await rt.store.pending_webhooks(connection="acme") == []


async def test_a_delivery_left_to_a_poll_that_fails_stays_pending(
    env: tuple[Fake, Writer, ConnectionRuntime], fake_clock: FakeClock
) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(32, [("r1", 1)])]
    received = await rt.store.receive_webhook("acme", delivery(1), {})
    fake_clock.advance(600)
    fake.fail_polls = True
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the poll's error, it stops
        await ShipmentsFlow().run(rt)
    item = await rt.store.get_webhook(received.item.id)
    assert item is not None
    assert item.processed_at is None  # not finished: nothing is lost
    fake.fail_polls = False
    await ShipmentsFlow().run(rt)
    assert [w.reference for w in writer.writes] == ["ss-shipment-32"]
    assert await rt.store.pending_webhooks(connection="acme") == []


async def test_a_write_back_the_store_refuses_fails_alone_and_is_read_again(
    env: tuple[Fake, Writer, ConnectionRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(7, [("r1", 1)]), shipment(8, [("r2", 1)]), shipment(9, [("r1", 2)])]
    stage = rt.store.stage_batch

    async def refusing(connection: str, flow: str, items: list[StagedWrite]) -> Any:
        # the database refuses ss-shipment-8's line (NOT NULL): the page's many-row statements
        # fail, and the store stages row by row
        bad = [StagedLine(line.source_id, line.line_key, None) for line in items[1].lines]  # type: ignore[arg-type]
        return await stage(
            connection, flow, [items[0], replace(items[1], lines=tuple(bad)), *items[2:]]
        )

    monkeypatch.setattr(rt.store, "stage_batch", refusing)
    result = await ShipmentsFlow().run(rt)
    assert sorted(w.reference for w in writer.writes) == ["ss-shipment-7", "ss-shipment-9"]
    assert (result.written_back, result.failed, result.quarantined) == (2, 1, 1)
    assert [e.split(":")[2] for e in result.errors] == ["ss-shipment-8"]
    assert await rt.store.get_operation_by_key(op_key("acme", "ss-shipment-8")) is None
    failed = await rt.store.search_audit(AuditQuery(shipment_id="ss-shipment-8"))
    assert ("write_back", "failed") in [(e.action, e.outcome) for e in failed]
    monkeypatch.undo()
    again = await ShipmentsFlow().run(rt)  # quarantined: re-read through its order's shipments
    assert [w.reference for w in writer.writes][2:] == ["ss-shipment-8"]
    assert again.written_back == 1


async def test_a_crash_mid_page_leaves_only_the_write_in_flight_sent(
    env: tuple[Fake, Writer, ConnectionRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, writer, rt = env
    fake.shipments = [shipment(sid, [("r1", 1)]) for sid in (21, 22, 23)]
    write = writer.write_shipment

    async def dies_on_the_second(w: ShipmentWrite, **kw: Any) -> WriteResult:
        if len(writer.writes) == 1:
            writer.writes.append(w)
            raise RuntimeError("the process died after the request left")
        return await write(w, **kw)

    monkeypatch.setattr(writer, "write_shipment", dies_on_the_second)
    with pytest.raises(RuntimeError):
        await ShipmentsFlow().run(rt)
    states = {}
    for sid in (21, 22, 23):
        op = await rt.store.get_operation_by_key(op_key("acme", f"ss-shipment-{sid}"))
        assert op is not None
        states[sid] = op.state
    # each write-back is claimed just before its request leaves: the third was never claimed
    assert states == {
        21: OperationState.CONFIRMED,
        22: OperationState.SENT,
        23: OperationState.PENDING,
    }
    monkeypatch.undo()
    writer.existing = ExistingWrite(shipper=Shipper(id="shipper-22", status="Shipped"))
    assert (await recover(rt, [ShipmentsFlow()])).recovered == 1  # 22 landed: looked up
    result = await ShipmentsFlow().run(rt)
    assert [w.reference for w in writer.writes] == [f"ss-shipment-{s}" for s in (21, 22, 23)]
    assert (result.written_back, result.unchanged) == (1, 2)
    assert writer.first_attempts[-1] is False  # 23 was created by the crashed run: look first
