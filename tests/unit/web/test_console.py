"""The operator console at volume: keyset pages, filters, error groups with bulk replay and
dismissal, audit trail links per record kind, the run history chart, cursor summaries."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx

from mlconnector.clock import FakeClock
from mlconnector.store import AuditEvent, AuditQuery, OperationState, Store
from mlconnector.sync.runs import RunReport, record_run
from mlconnector.web.console import cursor_summary, details_items, event_label

ORIGIN = {"origin": "http://testserver"}
_S = OperationState


def op_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="op-(\d+)">', html)]


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


async def _many(store: Store, n: int, kind: str = "ss.order.upsert") -> list[int]:
    ids = []
    for i in range(n):
        payload = {"order_key": f"plex-79870-{i}", "sku": f"SKU-{i}", "reference": f"ss-s-{i}"}
        enq = await store.enqueue("acme", "orders", kind, f"orders:acme:{kind}:{i}", payload)
        ids.append(enq.operation.id)
    return ids


async def _fail(store: Store, op_id: int, error: str, *, dead: bool) -> None:
    now = store.clock.now()
    await store.fail(op_id, error, next_attempt_at=now, max_attempts=1 if dead else 9)


async def test_operations_pages_forward_and_back(client: httpx.AsyncClient, store: Store) -> None:
    ids = await _many(store, 120)
    first = await client.get("/operations", params={"connection": "acme"})
    assert op_ids(first.text) == sorted(ids, reverse=True)[:50]
    assert link(first.text, "prev") is None
    seen = op_ids(first.text)
    url = link(first.text, "next")
    while url:
        assert "connection=acme" in url  # the filter is kept
        page = await client.get(url)
        seen += op_ids(page.text)
        last_page, url = page, link(page.text, "next")
    assert seen == sorted(ids, reverse=True)
    back = link(last_page.text, "prev")
    assert back is not None
    assert op_ids((await client.get(back)).text) == sorted(ids, reverse=True)[50:100]


async def test_operations_text_and_kind_filters(client: httpx.AsyncClient, store: Store) -> None:
    orders = await _many(store, 3)
    stock = await _many(store, 2, kind="ss.inventory.adjust")
    await _fail(store, orders[1], "ShipStation said 400: bad country 'XX'", dead=True)
    by_error = await client.get("/operations", params={"q": "bad country"})
    assert op_ids(by_error.text) == [orders[1]]
    by_kind = await client.get("/operations", params={"kind": "ss.inventory.adjust"})
    assert op_ids(by_kind.text) == sorted(stock, reverse=True)
    assert ">ShipStation inventory adjust</option>" in by_kind.text
    today = store.clock.now().date().isoformat()
    assert len(op_ids((await client.get("/operations", params={"from": today})).text)) == 5
    tomorrow = (store.clock.now() + timedelta(days=1)).date().isoformat()
    assert op_ids((await client.get("/operations", params={"from": tomorrow})).text) == []


async def test_each_operation_links_to_its_records_audit_trail(
    client: httpx.AsyncClient, store: Store
) -> None:
    (order,) = await _many(store, 1)
    (stock,) = await _many(store, 1, kind="ss.inventory.adjust")
    (ship,) = await _many(store, 1, kind="plex.shipment.write_back")
    (other,) = await _many(store, 1, kind="custom.kind")
    html = (await client.get("/operations")).text
    trails = {
        int(op): href.replace("&amp;", "&")
        for op, href in re.findall(
            r'<tr id="op-(\d+)">.*?<a class="trail" href="([^"]+)"', html, re.S
        )
    }
    assert trails[order].endswith("/audit?connection=acme&order_key=plex-79870-0")
    assert trails[stock].endswith("/audit?connection=acme&sku=SKU-0")
    assert trails[ship].endswith("/audit?connection=acme&shipment_id=ss-s-0")
    assert "idempotency_key=orders%3Aacme%3Acustom.kind%3A0" in trails[other]


async def test_replay_all_in_a_group_replays_only_that_cause(
    client: httpx.AsyncClient, store: Store
) -> None:
    ids = await _many(store, 6)
    for n in range(4):
        await _fail(store, ids[n], f"Plex 404: release {7000 + n} not found", dead=n < 2)
    await _fail(store, ids[4], "timeout after 30 s", dead=True)
    page = await client.get("/operations")
    assert "Plex 404: release # not found" in page.text
    assert "Replay all in this group (4)" in page.text

    response = await client.post(
        "/operations/replay-group",
        data={"cause": "Plex 404: release # not found", "back": "/operations"},
        headers=ORIGIN,
    )
    assert response.status_code == 303
    states = [(await store.get_operation(i)).state for i in ids]  # type: ignore[union-attr]
    assert states == [_S.PENDING] * 4 + [_S.DEAD, _S.PENDING]
    shown = await client.get("/operations")
    assert "Replayed 4 operation(s) failing with: Plex 404: release # not found" in shown.text
    (event,) = await store.search_audit(AuditQuery(connection="acme", flow="operator"))
    assert (event.action, event.details["count"], event.details["by"]) == ("replay_group", 4, "ops")
    assert event.details["operation_ids"] == ids[:4]


async def test_group_replay_keeps_to_the_pages_filter(
    client: httpx.AsyncClient, store: Store
) -> None:
    await store.create_connection("beta")
    (acme_op,) = await _many(store, 1)
    beta_op = (await store.enqueue("beta", "orders", "ss.order.upsert", "b1", {})).operation.id
    for op_id in (acme_op, beta_op):
        await _fail(store, op_id, "timeout after 30 s", dead=True)
    await client.post(
        "/operations/replay-group",
        data={"cause": "timeout after # s", "connection": "beta"},
        headers=ORIGIN,
    )
    assert (await store.get_operation(beta_op)).state is _S.PENDING  # type: ignore[union-attr]
    assert (await store.get_operation(acme_op)).state is _S.DEAD  # type: ignore[union-attr]


async def test_group_actions_need_the_same_origin(client: httpx.AsyncClient, store: Store) -> None:
    (op_id,) = await _many(store, 1)
    await _fail(store, op_id, "timeout", dead=True)
    for path in ("/operations/replay-group", "/operations/dismiss-group"):
        refused = await client.post(
            path,
            data={"cause": "timeout", "reason": "x"},
            headers={"origin": "http://evil.example"},
        )
        assert refused.status_code == 403
    assert (await store.get_operation(op_id)).state is _S.DEAD  # type: ignore[union-attr]


async def test_dismiss_a_dead_operation_with_a_reason(
    client: httpx.AsyncClient, store: Store
) -> None:
    dead, failed = await _many(store, 2)
    await _fail(store, dead, "order deleted in ShipStation", dead=True)
    await _fail(store, failed, "timeout", dead=False)
    page = await client.get("/operations")
    assert f'action="http://testserver/operations/{dead}/dismiss"' in page.text
    assert f'action="http://testserver/operations/{failed}/dismiss"' not in page.text

    no_reason = await client.post(
        f"/operations/{dead}/dismiss", data={"reason": " "}, headers=ORIGIN
    )
    assert no_reason.status_code == 303
    assert (await store.get_operation(dead)).state is _S.DEAD  # type: ignore[union-attr]
    await client.post(
        f"/operations/{dead}/dismiss", data={"reason": "cancelled by phone"}, headers=ORIGIN
    )
    await client.post(f"/operations/{failed}/dismiss", data={"reason": "x"}, headers=ORIGIN)
    assert (await store.get_operation(dead)).state is _S.DISMISSED  # type: ignore[union-attr]
    assert (await store.get_operation(failed)).state is _S.FAILED  # type: ignore[union-attr]
    (event,) = [
        e for e in await store.search_audit(AuditQuery(connection="acme")) if e.action == "dismiss"
    ]
    assert event.details["reason"] == "cancelled by phone"
    # a dismissed operation needs nobody: no error group, no dead count on the dashboard
    page = await client.get("/operations")
    assert "order deleted in ShipStation" not in page.text.split('<table class="ops">')[0]


async def test_dismiss_a_group_of_dead_operations(client: httpx.AsyncClient, store: Store) -> None:
    ids = await _many(store, 3)
    for n, op_id in enumerate(ids):
        await _fail(store, op_id, f"item {n} discontinued", dead=n < 2)
    await client.post(
        "/operations/dismiss-group",
        data={"cause": "item # discontinued", "reason": "discontinued parts"},
        headers=ORIGIN,
    )
    states = [(await store.get_operation(i)).state for i in ids]  # type: ignore[union-attr]
    assert states == [_S.DISMISSED, _S.DISMISSED, _S.FAILED]  # failed ones are kept


async def test_run_history_chart_and_table(
    client: httpx.AsyncClient, store: Store, fake_clock: FakeClock
) -> None:
    empty = await client.get("/runs")
    assert "No run recorded yet" in empty.text
    start = fake_clock.now()
    for n in range(60):
        report = RunReport(connection="acme", flow="orders", error="boom" if n % 10 == 0 else None)
        await record_run(
            store, report, at=start + timedelta(minutes=5 * n), seconds=1 + n % 7, owner="w1"
        )
    page = await client.get("/runs", params={"connection": "acme", "flow": "orders"})
    assert page.status_code == 200
    svg = page.text.split("<svg")[1].split("</svg>")[0]
    assert svg.count("<rect ") == 60
    assert svg.count('class="run run-failed"') == 6
    assert svg.count('class="run run-ok"') == 54
    assert len(re.findall(r'<tr id="run-\d+">', page.text)) == 50
    older = link(page.text, "next")
    assert older is not None
    assert len(re.findall(r'<tr id="run-\d+">', (await client.get(older)).text)) == 10
    # with no choice made, the first flow with runs is shown
    assert "<svg" in (await client.get("/runs")).text


async def test_dashboard_shows_a_cursor_summary_and_the_json_on_demand(
    client: httpx.AsyncClient, store: Store
) -> None:
    seen = [[f"{n}", "2026-01-15T10:00:00Z"] for n in range(300)]
    await store.set_cursor(
        "acme", "orders", json.dumps({"since": "2026-01-15T11:00:00Z", "seen": seen})
    )
    page = await client.get("/")
    assert '<span class="summary">since 2026-01-15T11:00:00Z, seen: 300 ids</span>' in page.text
    assert "<details><summary>full cursor</summary>" in page.text
    assert "&#34;299&#34;" in page.text.split("<details>")[1]  # every id, escaped


def test_cursor_summary_and_details_items() -> None:
    assert cursor_summary("2026-01-15T11:00:00Z") == "2026-01-15T11:00:00Z"
    assert cursor_summary('{"since": null, "seen": []}') == "since None, seen: 0 ids"
    assert details_items(
        {"error": {"status": 400, "message": "bad"}, "ids": [1, 2], "x": None}
    ) == [
        ("error.status", "400"),
        ("error.message", "bad"),
        ("ids", "1, 2"),
    ]


def test_event_labels_follow_the_operation_kind() -> None:
    def event(**kw: object) -> AuditEvent:
        base = {"connection": "a", "flow": "inventory", "direction": "plex->ss"}
        return AuditEvent(**{**base, **kw})  # type: ignore[arg-type]

    # a retried inventory adjust was filed as entity "order": the kind says what it is
    retried = event(
        entity="order", action="write", outcome="ok", details={"kind": "ss.inventory.adjust"}
    )
    assert event_label(retried) == "ShipStation inventory adjust"
    resolve = event(
        entity="order", action="resolve", outcome="ok", details={"kind": "plex.shipment.write_back"}
    )
    assert event_label(resolve) == "Plex shipment write-back: resolve"
    plain = event(entity="inventory", action="read", outcome="ok")
    assert event_label(plain) == "inventory read (Plex → ShipStation)"


async def test_audit_filters_by_flow_outcome_sku_and_date(
    client: httpx.AsyncClient, store: Store, fake_clock: FakeClock
) -> None:
    day1 = fake_clock.now()
    await store.append_audit(
        AuditEvent(
            connection="acme",
            flow="orders",
            direction="plex->ss",
            entity="order",
            action="write",
            outcome="ok",
        )
    )
    fake_clock.advance(86400)
    await store.append_audit(
        AuditEvent(
            connection="acme",
            flow="inventory",
            direction="plex->ss",
            entity="inventory",
            action="adjust",
            outcome="failed",
            details={"sku": "AB-1", "kind": "ss.inventory.adjust"},
        )
    )

    async def whats(**params: str) -> list[str]:
        page = await client.get("/audit", params=params)
        return [c.split("</td>")[0] for c in page.text.split('<td class="what">')[1:]]

    adjust = "ShipStation inventory adjust"
    assert await whats(flow="inventory") == [adjust]
    assert await whats(outcome="failed") == [adjust]
    assert await whats(sku="AB-1") == [adjust]
    assert await whats(**{"from": day1.date().isoformat(), "to": day1.date().isoformat()}) == [
        "order write (Plex → ShipStation)"
    ]
    assert await whats(outcome="ok", flow="inventory") == []


async def test_a_dismissed_operation_no_longer_degrades_health(
    client: httpx.AsyncClient, store: Store
) -> None:
    (op_id,) = await _many(store, 1)
    await _fail(store, op_id, "order deleted in ShipStation", dead=True)
    degraded = await client.get("/healthz")
    assert (degraded.status_code, degraded.json()["operations"]["dead"]) == (503, 1)
    await client.post(f"/operations/{op_id}/dismiss", data={"reason": "settled"}, headers=ORIGIN)
    healthy = await client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["operations"] == {"failed": 0, "dead": 0}
