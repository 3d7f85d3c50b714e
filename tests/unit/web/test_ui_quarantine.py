"""The /quarantine page: filters, escaping, and the dismiss form (same-origin, audited)."""

from __future__ import annotations

import html

import httpx

from mlconnector.store import AuditQuery, QuarantineEntry, QuarantineState, Store

ORIGIN = {"origin": "http://testserver"}
XSS = "<script>alert(1)</script>"


def _entry(record_id: str, value: str = "'lots'") -> QuarantineEntry:
    return QuarantineEntry(
        record_kind="Plex Release",
        record_id=record_id,
        retry_key="order:o-1",
        field="quantity",
        value_excerpt=value,
        error="Input should be a valid number",
        what_to_do="correct quantity of Plex Release in Plex",
    )


async def test_page_lists_open_records_escaped_and_is_in_the_nav(
    client: httpx.AsyncClient, store: Store
) -> None:
    await store.quarantine("acme", "orders", _entry("r-1", XSS))
    await store.quarantine("acme", "shipments", _entry("s-9"))
    done = await store.quarantine("acme", "orders", _entry("r-2"))
    await store.resolve_quarantined("acme", "orders", records=[(done.record_kind, "r-2")])
    page = await client.get("/quarantine")
    assert page.status_code == 200
    assert '/quarantine">Quarantine</a>' in page.text  # in the nav
    assert "r-1" in page.text
    assert "s-9" in page.text
    assert "r-2" not in page.text  # resolved: not open
    assert XSS not in page.text
    assert html.escape(XSS, quote=False) in page.text or "&lt;script&gt;" in page.text
    only = await client.get("/quarantine?flow=shipments")
    assert "s-9" in only.text
    assert "r-1" not in only.text
    resolved = await client.get("/quarantine?state=resolved")
    assert "r-2" in resolved.text
    assert "r-1" not in resolved.text
    assert "r-2" in (await client.get("/quarantine?state=all")).text


async def test_dismiss_needs_a_reason_same_origin_and_is_audited(
    client: httpx.AsyncClient, store: Store
) -> None:
    row = await store.quarantine("acme", "orders", _entry("r-1"))
    url = f"/quarantine/{row.id}/dismiss"
    refused = await client.post(
        url, data={"reason": "stale"}, headers={"origin": "https://x.example"}
    )
    assert refused.status_code == 403
    no_reason = await client.post(url, data={"reason": " "}, headers=ORIGIN, follow_redirects=True)
    assert "give a reason" in no_reason.text
    assert (await store.get_quarantined(row.id)).state is QuarantineState.OPEN  # type: ignore[union-attr]
    done = await client.post(
        url, data={"reason": "test order", "back": "/quarantine"}, headers=ORIGIN
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/quarantine"
    after = await client.get("/quarantine")
    assert f"Quarantined record {row.id} dismissed" in after.text
    assert 'id="quarantine-' not in after.text  # nothing open left
    dismissed = await store.get_quarantined(row.id)
    assert dismissed is not None
    assert (dismissed.state, dismissed.dismissed_reason) == (
        QuarantineState.DISMISSED,
        "test order",
    )
    events = await store.search_audit(AuditQuery(connection="acme"))
    assert [
        e.details.get("reason")
        for e in events
        if e.entity == "quarantine" and e.action == "dismiss"
    ] == ["test order"]
    again = await client.post(url, data={"reason": "x"}, headers=ORIGIN, follow_redirects=True)
    assert "is dismissed: unchanged" in again.text
    missing = await client.post(
        "/quarantine/999/dismiss", data={"reason": "x"}, headers=ORIGIN, follow_redirects=True
    )
    assert "There is no quarantined record 999" in missing.text
