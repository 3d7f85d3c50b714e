"""InventoryFlow against mocked HTTP: targets, only-changed pushes, repeat transitions, stale ops,
unmapped locations reported once, crash resolve. (The loopback run is in tests/e2e.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlconnector.clock import FakeClock
from mlconnector.config import Mappings
from mlconnector.errors import ConfigError
from mlconnector.store import CredentialKind, OperationState, Store
from mlconnector.sync import ConnectionRuntime, LogAlertSink, build_runtime, recover
from mlconnector.sync.base import StaleOperationError
from mlconnector.sync.inventory import KIND_ADJUST, InventoryFlow, Level, adjust_key, distribute
from tests.unit.sync.conftest import make_config, refusing_factory

MAPPING = {"FG-1": "se-1", "FG-2": "se-1", "FG-3": "se-2"}


@dataclass
class Fake:
    """Plex containers and the V2 inventory, served by one MockTransport handler."""

    containers: list[dict[str, Any]] = field(default_factory=list)
    levels: dict[tuple[str, str], int] = field(default_factory=dict)
    adjusts: list[dict[str, Any]] = field(default_factory=list)
    #: SKUs whose adjust V2 refuses (400)
    refused: set[str] = field(default_factory=set)

    def container(
        self, serial: str, part: str, location: str, qty: float, status: str = "OK"
    ) -> None:
        self.containers.append(
            {
                "serialNo": serial,
                "partId": part,
                "partNo": f"SKU-{part}",
                "containerStatus": status,
                "locationId": f"id-{location}",
                "location": location,
                "quantity": qty,
            }
        )

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/inventory-tracking/containers"):
            part = request.url.params.get("partId")
            rows = [c for c in self.containers if part is None or c["partId"] == part]
            return httpx.Response(200, json=rows)
        if path == "/v2/inventory" and request.method == "POST":
            body = json.loads(request.content)
            if body["sku"] in self.refused:
                return httpx.Response(400, json={"message": f"unknown sku {body['sku']}"})
            self.adjusts.append(body)
            self.levels[(body["sku"], body["inventory_location_id"])] = body["quantity"]
            return httpx.Response(204)
        if path == "/v2/inventory" and request.method == "GET":
            sku = request.url.params.get("sku")
            rows = [
                {"sku": s, "inventory_location_id": loc, "on_hand": q}
                for (s, loc), q in self.levels.items()
                if s == sku
            ]
            return httpx.Response(200, json={"inventory": rows, "links": {}})
        return httpx.Response(404, json={"message": f"unexpected {request.method} {path}"})


@pytest.fixture
async def fake_rt(
    tmp_path: Path, with_secrets: Store, fake_clock: FakeClock
) -> AsyncIterator[tuple[Fake, ConnectionRuntime]]:
    fake = Fake()

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))

    rt = await build_runtime(
        make_config(tmp_path, mappings=Mappings(inventory_locations=MAPPING)),
        "acme",
        with_secrets,
        fake_clock,
        factory,
        alerts=LogAlertSink(),
    )
    try:
        yield fake, rt
    finally:
        await rt.aclose()


def test_distribute_takes_from_the_largest_location_first() -> None:
    on_hand = {("A", "se-1"): 5, ("A", "se-2"): 20, ("B", "se-1"): 3}
    assert distribute(on_hand, {"A": 22, "B": 1, "C": 4}) == {
        ("A", "se-2"): 20,
        ("A", "se-1"): 2,
        ("B", "se-1"): 1,
    }


@given(
    st.dictionaries(
        st.tuples(st.sampled_from("ABC"), st.sampled_from(["l1", "l2", "l3"])),
        st.integers(min_value=0, max_value=50),
    ),
    st.dictionaries(st.sampled_from("ABCD"), st.integers(min_value=0, max_value=200)),
)
def test_distribute_never_takes_more_than_held_or_owed(
    on_hand: dict[tuple[str, str], int], unwritten: dict[str, int]
) -> None:
    taken = distribute(on_hand, unwritten)
    for key, qty in taken.items():
        assert 0 <= qty <= on_hand[key]
    for sku, owed in unwritten.items():
        held = sum(q for k, q in on_hand.items() if k[0] == sku)
        assert sum(q for k, q in taken.items() if k[0] == sku) == min(owed, held)


def test_adjust_key_names_the_transition() -> None:
    level = Level("SKU-1", "se-1", on_hand=12, unwritten=2, previous=None)
    assert level.target == 10
    assert adjust_key("acme", level, 1) == "inventory:acme:SKU-1@se-1:none->10#1"
    assert Level("S", "l", on_hand=1, unwritten=5, previous=3).target == 0  # never below zero


async def test_sums_mapped_locations_skips_unmapped_once_and_pushes_only_changes(
    fake_rt: tuple[Fake, ConnectionRuntime],
) -> None:
    fake, rt = fake_rt
    fake.container("c1", "p1", "FG-1", 4)
    fake.container("c2", "p1", "FG-2", 6)  # same ShipStation location as FG-1: 10 in all
    fake.container("c3", "p1", "FG-3", 2.5)  # a fraction of a unit is not sellable
    fake.container("c4", "p2", "FG-1", 7, status="Hold")  # not shippable: not on-hand
    fake.container("c5", "p2", "DOCK", 3)
    fake.container("c6", "p3", "DOCK", 1)
    flow = InventoryFlow()
    result = await flow.run(rt)
    assert fake.levels == {("SKU-p1", "se-1"): 10, ("SKU-p1", "se-2"): 2}
    assert result.adjusted == 2
    assert [i.key for i in result.plan if i.action == "skip"] == ["plex-location DOCK"]
    assert next(i for i in result.plan if i.action == "skip").details["parts"] == 2
    assert all(a["transaction_type"] == "adjust" for a in fake.adjusts)
    again = await flow.run(rt)
    assert (again.adjusted, len(fake.adjusts)) == (0, 2)


async def test_stock_that_disappears_goes_to_zero_and_a_repeat_transition_is_sent(
    fake_rt: tuple[Fake, ConnectionRuntime],
) -> None:
    fake, rt = fake_rt
    fake.container("c1", "p1", "FG-3", 5)
    flow = InventoryFlow()
    await flow.run(rt)
    fake.containers[0]["containerStatus"] = "Shipped"
    assert (await flow.run(rt)).adjusted == 1
    assert fake.levels[("SKU-p1", "se-2")] == 0
    fake.containers[0]["containerStatus"] = "OK"
    assert (await flow.run(rt)).adjusted == 1  # 0 -> 5
    fake.containers[0]["containerStatus"] = "Shipped"
    assert (await flow.run(rt)).adjusted == 1  # 5 -> 0 a second time: a new operation (#2)
    assert fake.levels[("SKU-p1", "se-2")] == 0
    keys = sorted(op.idempotency_key for op in await rt.store.list_operations(connection="acme"))
    assert "inventory:acme:SKU-p1@se-2:5->0#2" in keys


async def test_a_queued_adjust_overtaken_by_a_newer_push_is_never_sent(
    fake_rt: tuple[Fake, ConnectionRuntime],
) -> None:
    fake, rt = fake_rt
    old = await rt.store.enqueue(
        "acme",
        "inventory",
        KIND_ADJUST,
        "inventory:acme:SKU-p1@se-1:none->3#1",
        {"sku": "SKU-p1", "location": "se-1", "previous": None, "quantity": 3},
    )
    await rt.store.record_inventory_pushed("acme", {("SKU-p1", "se-1"): 8})
    with pytest.raises(StaleOperationError):
        await InventoryFlow().execute(rt, old.operation)
    assert fake.adjusts == []


async def test_resolve_reads_the_v2_level(fake_rt: tuple[Fake, ConnectionRuntime]) -> None:
    fake, rt = fake_rt
    payload = {"sku": "SKU-p1", "location": "se-1", "previous": None, "quantity": 4}
    op = (await rt.store.enqueue("acme", "inventory", KIND_ADJUST, "k1", payload)).operation
    await rt.store.mark_sent(op.id)  # the process "died" here
    fake.levels[("SKU-p1", "se-1")] = 4  # ...after ShipStation applied it
    result = await recover(rt, [InventoryFlow()])
    assert result.recovered == 1
    confirmed = await rt.store.get_operation(op.id)
    assert confirmed is not None
    assert confirmed.state is OperationState.CONFIRMED
    assert await rt.store.get_inventory_snapshot("acme") == {("SKU-p1", "se-1"): 4}
    other = (
        await rt.store.enqueue("acme", "inventory", KIND_ADJUST, "k2", {**payload, "quantity": 9})
    ).operation
    await rt.store.mark_sent(other.id)
    assert await InventoryFlow().resolve(rt, other) is False  # not there: send it again


async def test_dry_run_writes_nothing(fake_rt: tuple[Fake, ConnectionRuntime]) -> None:
    fake, rt = fake_rt
    fake.container("c1", "p1", "FG-1", 4)
    result = await InventoryFlow().run(rt, dry_run=True)
    assert [(i.action, i.key, i.details["to"]) for i in result.plan] == [
        ("adjust", "SKU-p1@se-1", 4)
    ]
    assert fake.adjusts == []
    assert await rt.store.list_operations(connection="acme") == []
    assert await rt.store.get_inventory_snapshot("acme") == {}


async def test_without_a_v2_key_the_run_names_the_missing_credential(
    tmp_path: Path, store: Store, fake_clock: FakeClock
) -> None:
    for kind in (
        CredentialKind.PLEX_API_KEY,
        CredentialKind.SS_V1_KEY,
        CredentialKind.SS_V1_SECRET,
    ):
        await store.set_credential("acme", kind, f"{kind}-0123456789")
    seen: list[str] = []
    rt = await build_runtime(
        make_config(tmp_path),
        "acme",
        store,
        fake_clock,
        refusing_factory(seen),
        alerts=LogAlertSink(),
    )
    try:
        with pytest.raises(ConfigError, match="ss_v2_key"):
            await InventoryFlow().run(rt)
    finally:
        await rt.aclose()
    assert seen == []  # nothing was read before saying so


async def test_a_pass_of_many_levels_costs_two_transactions_per_batch(
    fake_rt: tuple[Fake, ConnectionRuntime],
) -> None:
    from sqlalchemy import event

    fake, rt = fake_rt
    for n in range(250):
        fake.container(f"c{n}", f"p{n}", "FG-1", n + 1)
    commits = [0]

    def committed(*_: Any) -> None:
        commits[0] += 1

    event.listen(rt.store.engine.sync_engine, "commit", committed)
    result = await InventoryFlow().run(rt)
    assert result.adjusted == 250
    assert len(fake.adjusts) == 250
    # 3 batches × (enqueue + mark sent, confirm + audit + snapshot) + the run's own bookkeeping
    assert commits[0] <= 3 * 2 + 4
    ops = await rt.store.list_operations(connection="acme", flow="inventory", limit=1000)
    assert {op.state for op in ops} == {OperationState.CONFIRMED}
    snapshot = await rt.store.get_inventory_snapshot("acme")
    assert snapshot[("SKU-p7", "se-1")] == 8
    assert len(snapshot) == 250


async def test_what_landed_before_a_failure_in_a_batch_is_confirmed(
    fake_rt: tuple[Fake, ConnectionRuntime],
) -> None:
    fake, rt = fake_rt
    for n in range(5):
        fake.container(f"c{n}", f"p{n}", "FG-1", 10)
    fake.refused.add("SKU-p2")
    result = await InventoryFlow().run(rt)
    assert (result.adjusted, result.failed) == (4, 1)
    ops = {
        op.payload["sku"]: op.state
        for op in await rt.store.list_operations(connection="acme", flow="inventory")
    }
    assert ops.pop("SKU-p2") in (OperationState.FAILED, OperationState.DEAD)
    assert set(ops.values()) == {OperationState.CONFIRMED}
    assert ("SKU-p2", "se-1") not in await rt.store.get_inventory_snapshot("acme")
