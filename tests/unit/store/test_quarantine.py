"""The quarantine: one row per unreadable record, attempts counted, resolved or dismissed,
every opening, resolution and dismissal audited (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlconnector.clock import FakeClock
from mlconnector.store import AuditEvent, AuditQuery, QuarantineEntry, QuarantineState, Store

_Q = QuarantineState


def _line(record_id: str = "L-2", order: str = "O-1", value: str = "'x'") -> QuarantineEntry:
    return QuarantineEntry(
        record_kind="Plex OrderLine",
        record_id=record_id,
        retry_key=order,
        field="id",
        value_excerpt=value,
        error="String should match pattern",
        what_to_do="correct id of Plex OrderLine in Plex",
        plex_order_id=order,
    )


async def _events(store: Store, connection: str, flow: str | None = None) -> list[AuditEvent]:
    found = await store.search_audit(AuditQuery(connection=connection, flow=flow))
    return [e for e in found if e.entity == "quarantine"]


async def test_a_record_seen_again_counts_attempts_and_is_audited_once(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    first = await store.quarantine(acme, "orders", _line())
    assert (first.state, first.attempts, first.record_id) == (_Q.OPEN, 1, "L-2")
    await fake_clock.sleep(60)
    again = await store.quarantine(acme, "orders", _line(value="'y'"))
    assert again.id == first.id
    assert (again.attempts, again.value_excerpt) == (2, "'y'")
    assert again.last_seen == first.first_seen + timedelta(seconds=60)
    assert again.first_seen == first.first_seen
    events = await _events(store, acme)
    assert [(e.action, e.outcome) for e in events] == [("quarantine", "quarantined")]
    assert events[0].plex_order_id == "O-1"
    assert events[0].details["record"] == "Plex OrderLine L-2"
    assert events[0].details["field"] == "id"
    assert events[0].details["what_to_do"].startswith("correct id")
    assert await store.count_open_quarantined() == {(acme, "orders"): 1}


async def test_resolve_by_retry_key_or_record_then_a_new_failure_reopens(
    store: Store, acme: str
) -> None:
    await store.quarantine(acme, "orders", _line("L-2", "O-1"))
    await store.quarantine(acme, "orders", _line("L-3", "O-2"))
    other = await store.quarantine(acme, "shipments", _line("L-2", "O-1"))
    resolved = await store.resolve_quarantined(acme, "orders", retry_keys=["O-1"])
    assert [r.record_id for r in resolved] == ["L-2"]
    assert resolved[0].resolved_at is not None
    assert [r.record_id for r in await store.open_quarantined(acme, "orders")] == ["L-3"]
    # another flow's record with the same key is not touched
    assert (await store.get_quarantined(other.id)).state == _Q.OPEN  # type: ignore[union-attr]
    by_record = await store.resolve_quarantined(acme, "orders", records=[("Plex OrderLine", "L-3")])
    assert [r.record_id for r in by_record] == ["L-3"]
    assert await store.resolve_quarantined(acme, "orders", retry_keys=["O-1"]) == []
    reopened = await store.quarantine(acme, "orders", _line("L-2", "O-1"))
    assert (reopened.state, reopened.attempts, reopened.resolved_at) == (_Q.OPEN, 2, None)
    actions = [e.action for e in await _events(store, acme, "orders")]
    assert sorted(actions) == ["quarantine", "quarantine", "quarantine", "resolve", "resolve"]


async def test_dismiss_needs_a_reason_is_audited_and_stays_dismissed(
    store: Store, acme: str
) -> None:
    row = await store.quarantine(acme, "orders", _line())
    with pytest.raises(ValueError, match="reason"):
        await store.dismiss_quarantined(row.id, reason="  ", actor="cli")
    dismissed = await store.dismiss_quarantined(row.id, reason="test order", actor="cli")
    assert dismissed is not None
    assert (dismissed.state, dismissed.dismissed_by, dismissed.dismissed_reason) == (
        _Q.DISMISSED,
        "cli",
        "test order",
    )
    # seen again: counted, but not reopened, not retried, not counted as open
    again = await store.quarantine(acme, "orders", _line())
    assert (again.state, again.attempts) == (_Q.DISMISSED, 2)
    assert await store.open_quarantined(acme, "orders") == []
    assert await store.count_open_quarantined() == {}
    # dismissing again changes nothing; an unknown id is None
    assert (await store.dismiss_quarantined(row.id, reason="x", actor="cli")).state == _Q.DISMISSED  # type: ignore[union-attr]
    assert await store.dismiss_quarantined(9999, reason="x", actor="cli") is None
    [event] = [e for e in await _events(store, acme) if e.action == "dismiss"]
    assert event.details["reason"] == "test order"
    assert event.details["by"] == "cli"


async def test_list_filters_by_connection_flow_and_state(store: Store, acme: str) -> None:
    await store.create_connection("beta")
    await store.quarantine(acme, "orders", _line("L-1"))
    await store.quarantine(acme, "shipments", _line("S-1"))
    await store.quarantine("beta", "orders", _line("L-9"))
    done = await store.quarantine(acme, "orders", _line("L-2"))
    await store.resolve_quarantined(acme, "orders", records=[(done.record_kind, done.record_id)])
    ids = lambda rows: sorted(r.record_id for r in rows)  # noqa: E731
    assert ids(await store.list_quarantined()) == ["L-1", "L-2", "L-9", "S-1"]
    assert ids(await store.list_quarantined(connection=acme, flow="orders")) == ["L-1", "L-2"]
    assert ids(await store.list_quarantined(state=_Q.RESOLVED)) == ["L-2"]
    assert await store.count_open_quarantined(connection="beta") == {("beta", "orders"): 1}
