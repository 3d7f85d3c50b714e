"""Exact partial quantities over real loopback HTTP: 5 pieces shipped from one 100-piece container.

With a container split configured (the simulator's ``Container_Split`` datasource) the write-back
splits 5 off into a new serial and ships exactly that; without one, the tracking reaches Plex at
once, the inventory move is one operator task, nothing is left open, and a replay after the
operator's split completes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mlconnector.sandbox.plex import CONTAINER_SPLIT_ID, DEFAULT_WS_PASSWORD, PlexSandbox
from mlconnector.sandbox.plex.model import Container
from mlconnector.store import AuditQuery, CredentialKind, OperationState
from mlconnector.sync import ConnectionRuntime, recover, replay, retry_due
from mlconnector.sync.alerts import Alert
from mlconnector.sync.orders import OrdersFlow
from mlconnector.sync.shipments import ShipmentsFlow, op_key
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import CONNECTION, PCN, ShipEnv, ship_env

SHIPPED = 5
STOCK = 100


class Alerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.sent.append(alert)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ShipEnv]:
    async with ship_env(tmp_path, FAKE_START) as e:
        yield e


def _one_big_container(env: ShipEnv, release_id: str) -> Container:
    """The release's part is stocked in exactly one 100-piece container."""
    data = env.plex.tenant(PCN)
    part = env.part_of(release_id)
    location = next(iter(data.containers.values())).location_id
    for container in data.containers.values():
        if container.part_id == part:
            container.quantity = 0
    return env.plex.add_container(part, location, STOCK, tenant=PCN)


async def _setup(
    env: ShipEnv, *, split: bool, write_back: str = "shipper"
) -> tuple[ConnectionRuntime, Alerts, str, Container, str]:
    """A release of 20 open, its stock one container of 100, linked; a label for 5 of it."""
    plex: dict[str, Any] = {}
    if split or write_back == "datasource":
        await env.store.set_credential(
            CONNECTION, CredentialKind.PLEX_WS_PASSWORD, DEFAULT_WS_PASSWORD
        )
        plex = {
            "datasource_base_url": env.plex_url,
            "web_service_user": PlexSandbox.ws_username(PCN),
        }
    if split:
        plex["container_split"] = {"datasource_id": CONTAINER_SPLIT_ID}
    rt = await env.runtime(plex=plex, write_back=write_back)
    alerts = Alerts()
    rt.alerts = alerts
    link = (await env.link_orders(rt))[0]
    release = env.plex.tenant(PCN).releases[sorted(link.release_ids)[0]]
    env.plex.edit_release(release.id, quantity=release.quantity_shipped + 20, tenant=PCN)
    env.step()
    assert (await OrdersFlow().run(rt)).failed == 0  # ShipStation's order now wants 20
    container = _one_big_container(env, release.id)
    env.step()
    label = env.ss.create_label(
        int(link.ss_order_id or 0), {release.id: SHIPPED}, tracking_number="1ZPART5"
    )
    env.step()
    return rt, alerts, release.id, container, f"ss-shipment-{label.shipment_id}"


def _open_shippers(env: ShipEnv) -> list[Any]:
    return [s for s in env.plex.shippers(tenant=PCN) if s.status != "Shipped"]


@pytest.mark.parametrize("write_back", ["shipper", "datasource"])
async def test_five_of_a_hundred_piece_container_are_split_off_and_shipped_exactly(
    env: ShipEnv, write_back: str
) -> None:
    rt, alerts, release_id, container, reference = await _setup(
        env, split=True, write_back=write_back
    )
    part = env.part_of(release_id)
    before = set(env.plex.tenant(PCN).containers)
    result = await ShipmentsFlow().run(rt)
    assert result.failed == 0, result.errors
    assert result.written_back == 1
    assert env.plex.on_hand(part, tenant=PCN) == STOCK - SHIPPED  # down by exactly 5
    remainder = env.plex.tenant(PCN).containers[container.serial_no]
    assert remainder.quantity == STOCK - SHIPPED  # the remainder keeps its serial: 95
    split_off = [c for s, c in env.plex.tenant(PCN).containers.items() if s not in before]
    assert [(c.part_id, c.quantity) for c in split_off] == [(part, 0)]  # a new serial: 5, shipped
    if write_back == "shipper":
        shippers = env.shippers_for(reference)
        assert len(shippers) == 1
        assert shippers[0].status == "Shipped"
        assert shippers[0].tracking_number == "1ZPART5"
        assert env.plex.quantity_shipped(release_id, tenant=PCN) == SHIPPED
    assert _open_shippers(env) == []
    assert await env.store.unwritten_quantities(CONNECTION) == {}
    assert alerts.sent == []


@pytest.mark.parametrize("write_back", ["shipper", "datasource"])
async def test_without_a_split_the_tracking_lands_and_one_task_is_raised_then_replay_completes(
    env: ShipEnv, write_back: str
) -> None:
    rt, alerts, release_id, container, reference = await _setup(
        env, split=False, write_back=write_back
    )
    part = env.part_of(release_id)
    flow = ShipmentsFlow()
    result = await flow.run(rt)
    assert result.written_back == 0
    assert result.failed == 1
    # tracking, carrier, service and ship date are in Plex at once (the release's note)
    note = env.plex.release(release_id, tenant=PCN).note or ""
    assert reference in note
    assert "tracking 1ZPART5" in note
    assert "shipped " in note
    # exactly one operator task, naming release, part, container, quantity and what to do
    op = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
    assert op is not None
    assert op.state is OperationState.DEAD
    tasks = await env.store.search_audit(AuditQuery(outcome="needs_operator"))
    assert len(tasks) == 1
    assert tasks[0].details["replay"] == f"mlconnector replay {op.id}"
    line = tasks[0].details["lines"][0]
    assert line["container"] == container.serial_no
    assert line["quantity"] == SHIPPED
    assert line["container_quantity"] == STOCK
    assert line["part"]
    assert line["release"]
    assert f"split {SHIPPED} off container {container.serial_no}" in str(tasks[0].details["hint"])
    assert len(alerts.sent) == 1
    # nothing left open in Plex, nothing moved
    assert _open_shippers(env) == []
    assert env.shippers_for(reference) == []
    assert env.plex.on_hand(part, tenant=PCN) == STOCK
    # never retried in a loop: later passes and retries leave it alone
    for _ in range(3):
        env.step(3600 * 2)
        await retry_due(rt, [flow])
        await flow.run(rt)
    assert len(alerts.sent) == 1
    assert len(await env.store.search_audit(AuditQuery(outcome="needs_operator"))) == 1
    # the inventory flow still holds the 5 back until Plex has moved them
    assert sum((await env.store.unwritten_quantities(CONNECTION)).values()) == SHIPPED
    # the operator splits the container in Plex, then replays the operation
    env.plex.split_container(container.serial_no, SHIPPED, tenant=PCN)
    await replay(env.store, [op.id])
    retried = await retry_due(rt, [flow])
    assert retried.retried == 1, retried.errors
    done = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
    assert done is not None
    assert done.state is OperationState.CONFIRMED
    if write_back == "shipper":
        shippers = env.shippers_for(reference)
        assert len(shippers) == 1
        assert (shippers[0].status, shippers[0].tracking_number) == ("Shipped", "1ZPART5")
        assert env.plex.quantity_shipped(release_id, tenant=PCN) == SHIPPED
    else:  # the inventory shipment coded with the reference staged the split-off container
        shipped = [
            s
            for s in env.plex.tenant(PCN).inventory_shipments.values()
            if s.external_code == reference
        ]
        assert [(s.status, len(s.containers)) for s in shipped] == [("Shipped", 1)]
    assert env.plex.on_hand(part, tenant=PCN) == STOCK - SHIPPED
    assert env.plex.tenant(PCN).containers[container.serial_no].quantity == STOCK - SHIPPED
    assert _open_shippers(env) == []
    assert await env.store.unwritten_quantities(CONNECTION) == {}
    assert len(alerts.sent) == 1
    assert (env.plex.release(release_id, tenant=PCN).note or "").count(reference) == 1


async def test_task_only_writes_nothing_to_plex_and_raises_one_task(env: ShipEnv) -> None:
    rt, alerts, release_id, _, reference = await _setup(env, split=False)
    rt.writer.without_split = "task_only"
    result = await ShipmentsFlow().run(rt)
    assert result.failed == 1
    assert reference not in (env.plex.release(release_id, tenant=PCN).note or "")
    assert env.shippers_for(reference) == []
    tasks = await env.store.search_audit(AuditQuery(outcome="needs_operator"))
    assert len(tasks) == 1
    assert tasks[0].details["tracking_recorded"] is None
    assert len(alerts.sent) == 1
    assert env.plex.on_hand(env.part_of(release_id), tenant=PCN) == STOCK


class Crash(Exception):
    """The process 'dies' (not part of the connector's error tree)."""


async def test_a_resumed_shipper_does_not_pick_again_a_container_already_loaded(
    env: ShipEnv,
) -> None:
    """10 of 20 from three 5-piece containers: the first attempt loads the oldest, then dies;
    the retry resumes the open shipper and loads the next one (Plex still lists the loaded
    container with its quantity until the shipper ships)."""
    rt = await env.runtime()
    link = (await env.link_orders(rt))[0]
    release = env.plex.tenant(PCN).releases[sorted(link.release_ids)[0]]
    env.plex.edit_release(release.id, quantity=release.quantity_shipped + 20, tenant=PCN)
    env.step()
    assert (await OrdersFlow().run(rt)).failed == 0
    oldest = _one_big_container(env, release.id)
    env.plex.adjust_container(oldest.serial_no, quantity=5, tenant=PCN)
    others = []
    for _ in range(2):
        env.step()
        others.append(env.plex.add_container(oldest.part_id, oldest.location_id, 5, tenant=PCN))
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0), {release.id: 10})
    reference = f"ss-shipment-{label.shipment_id}"
    env.step()
    writes = rt.writer.writes
    load = writes.load_container
    loaded: list[str] = []

    async def load_once_then_die(shipper_id: str, line_id: str, serial_no: str) -> None:
        if loaded:
            raise Crash
        await load(shipper_id, line_id, serial_no)
        loaded.append(serial_no)

    writes.load_container = load_once_then_die  # type: ignore[method-assign]
    flow = ShipmentsFlow()
    with pytest.raises(Crash):
        await flow.run(rt)
    assert loaded == [oldest.serial_no]
    assert [s.status for s in env.shippers_for(reference)] == ["Open"]
    writes.load_container = load  # type: ignore[method-assign]
    await recover(rt, [flow])  # not shipped in Plex: resent by the retry
    retried = await retry_due(rt, [flow])
    assert retried.retried == 1, retried.errors
    done = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
    assert done is not None
    assert done.state is OperationState.CONFIRMED, done.last_error
    shippers = env.shippers_for(reference)
    assert [s.status for s in shippers] == ["Shipped"]
    serials = [item.serial_no for line in shippers[0].lines for item in line.loaded]
    assert serials == [oldest.serial_no, others[0].serial_no]
    assert env.plex.quantity_shipped(release.id, tenant=PCN) == 10
    assert env.plex.on_hand(oldest.part_id, tenant=PCN) == 5
