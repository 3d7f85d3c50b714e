"""One unreadable record never stops a pass: over loopback, through the CLI, with the store.

1 of 100 Plex orders has a release whose quantity Plex sends as text: the orders pass sends the
other 99, quarantines that one (visible in ``quarantine list``, ``audit`` and the store), retries
it on every later pass although the cursor moved on, and sends it once the data is corrected in
the Plex simulator (its operator surface).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlconnector.sandbox.plex import TenantSpec
from mlconnector.store import QuarantineState, Store
from tests.e2e.shipping_env import open_releases
from tests.unit.cli_ops.conftest import PCN, Ops, ops_env

_Q = QuarantineState


@pytest.fixture
def ops100(tmp_path: Path) -> Iterator[Ops]:
    spec = TenantSpec(pcn=PCN, code="mlauto", name="Midland", customers=4, parts=15, orders=100)
    with ops_env(tmp_path, spec) as env:
        # a pass of 100 orders makes a few hundred Plex reads; the simulator's minute does not
        # pass while a CLI run holds its own clock, so lift its per-minute cap
        env.plex.set_rate_limit(100_000)
        yield env


def _sent_orders(ops: Ops) -> set[str]:
    """Plex order ids that have a ShipStation order (customField3 carries the Plex id)."""
    return {
        str(o["advancedOptions"]["customField3"]).lower()
        for o in ops.ss.all_orders()
        if o.get("advancedOptions", {}).get("customField3")
    }


def test_one_unreadable_order_among_100_is_quarantined_then_sent_once_fixed(
    ops100: Ops,
) -> None:
    ops = ops100
    data = ops.plex.tenant(PCN)
    open_now = open_releases(ops.plex)
    expected = {data.order_of_release(data.releases[r]).id.lower() for r in open_now}
    assert len({o.id for o in data.orders.values()}) == 100
    bad_release = sorted(open_now)[0]
    bad_order = data.order_of_release(data.releases[bad_release]).id.lower()
    ops.plex.set_raw_field(bad_release, "quantity", "lots", tenant=PCN)

    first = ops("sync", "orders", "--once")
    assert "quarantined=1" in first.output, first.output
    sent = _sent_orders(ops)
    assert sent == expected - {bad_order}  # the other 99 (with open releases) went out
    assert len(sent) == len(expected) - 1

    listed = ops("quarantine", "list")
    assert listed.exit_code == 0, listed.output
    assert f"Plex Release {bad_release}" in listed.output
    assert "quantity = 'lots'" in listed.output
    assert "what to do" in listed.output

    async def rows(store: Store) -> list[tuple[str, str | None, int, str]]:
        return [
            (q.record_id, q.retry_key, q.attempts, q.state.value)
            for q in await store.list_quarantined(connection="acme", state=None)
        ]

    assert ops.with_store(rows) == [(bad_release, f"order:{bad_order}", 1, "open")]
    trail = ops("audit", "--plex-order", bad_order)
    assert "quarantine quarantine" in trail.output
    assert f"Plex Release {bad_release}" in trail.output

    # still bad: retried (the cursor moved past it), counted again, nothing else sent
    ops.step()
    second = ops("sync", "orders", "--once")
    assert "quarantined=1" in second.output, second.output
    assert ops.with_store(rows) == [(bad_release, f"order:{bad_order}", 2, "open")]
    assert _sent_orders(ops) == expected - {bad_order}

    # corrected in Plex (without touching its modifiedDate): the next pass sends it
    ops.plex.clear_raw_fields(bad_release, tenant=PCN)
    ops.step()
    third = ops("sync", "orders", "--once")
    assert "quarantined=" not in third.output, third.output
    assert "created=" in third.output
    assert _sent_orders(ops) == expected
    assert ops.with_store(rows) == [(bad_release, f"order:{bad_order}", 2, "resolved")]
    assert "0 open record(s)" in ops("quarantine", "list").output
    assert "quarantine resolve" in ops("audit", "--plex-order", bad_order).output
