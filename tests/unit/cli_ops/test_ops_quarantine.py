"""``quarantine list`` and ``quarantine dismiss``, in-process against the simulators."""

from __future__ import annotations

from mlconnector.store import AuditQuery, QuarantineState, Store
from tests.e2e.shipping_env import open_releases
from tests.unit.cli_ops.conftest import PCN, Ops


def _quarantine_one(ops: Ops) -> str:
    """Make one release unreadable and run the orders pass; the release id."""
    release = sorted(open_releases(ops.plex))[0]
    ops.plex.set_raw_field(release, "id", {"not": "an id"}, tenant=PCN)
    ops.plex.set_raw_field(release, "note", {"odd": 1}, tenant=PCN)  # lenient: read as None
    result = ops("sync", "orders", "--once")
    assert "quarantined=1" in result.output, result.output
    return release


def test_list_filters_and_dismiss_is_audited_and_stops_the_retries(ops: Ops) -> None:
    _quarantine_one(ops)
    listed = ops("quarantine", "list", "--connection", "acme", "--flow", "orders")
    assert listed.exit_code == 0, listed.output
    assert "1 open record(s)" in listed.output
    assert "Plex Release" in listed.output
    assert "id = {'not': 'an id'}" in listed.output
    assert "0 open record(s)" in ops("quarantine", "list", "--flow", "shipments").output
    assert "0 open record(s)" in ops("quarantine", "list", "--connection", "other").output

    async def first(store: Store) -> int:
        [row] = await store.list_quarantined(connection="acme")
        return row.id

    qid = ops.with_store(first)
    refused = ops("quarantine", "dismiss", str(qid), "--reason", "  ")
    assert refused.exit_code == 1
    assert "--reason" in refused.output
    unknown = ops("quarantine", "dismiss", "9999", "--reason", "x")
    assert unknown.exit_code == 1
    assert "no quarantined record 9999" in unknown.output
    done = ops("quarantine", "dismiss", str(qid), "--reason", "test data, deleted in Plex")
    assert done.exit_code == 0, done.output
    assert f"dismissed {qid}" in done.output
    again = ops("quarantine", "dismiss", str(qid), "--reason", "again")
    assert again.exit_code == 1
    assert "is dismissed" in again.output
    assert "1 dismissed record(s)" in ops("quarantine", "list", "--state", "dismissed").output
    assert "--state must be one of" in ops("quarantine", "list", "--state", "gone").output

    async def dismissal(store: Store) -> list[tuple[str, object, object]]:
        events = await store.search_audit(AuditQuery(connection="acme", flow="orders"))
        return [
            (e.action, e.details.get("reason"), e.details.get("by"))
            for e in events
            if e.entity == "quarantine" and e.action == "dismiss"
        ]

    assert ops.with_store(dismissal) == [("dismiss", "test data, deleted in Plex", "cli")]
    # a dismissed record is no longer retried nor counted as open
    ops.step()
    later = ops("sync", "orders", "--once")
    assert "quarantined=" not in later.output, later.output

    async def state(store: Store) -> QuarantineState:
        [row] = await store.list_quarantined(connection="acme", state=None)
        return row.state

    assert ops.with_store(state) == QuarantineState.DISMISSED
