"""The operator UI: pages render the store's data, escape HTML, and Replay works (same-origin)."""

from __future__ import annotations

import html

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.store import AuditQuery, OperationState, Store
from mlconnector.web import create_web_app
from tests.unit.web.conftest import ORIGIN as ORIGIN_URL
from tests.unit.web.conftest import log_in
from tests.unit.web.seed import XSS, Seeded, seed

ORIGIN = {"origin": "http://testserver"}
CREATE = "order create (Plex → ShipStation)"
WRITE_BACK = "shipment write back (ShipStation → Plex)"


@pytest.fixture
async def seeded(store: Store) -> Seeded:
    return await seed(store)


async def test_dashboard_shows_flows_counts_and_backlog(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    html = page.text
    assert 'href="http://testserver/connections/acme"' in html
    assert "2026-01-15T11:00:00Z" in html  # the orders cursor
    assert "worker-1@host" in html  # its last run's owner
    # last runs recorded by the engine, not listed as flows of their own
    assert "orders.last_run" not in html
    assert "orders@acme: created=2" in html
    assert "(1.2 s, worker-1@host)" in html
    shipments = html.split("<td>shipments</td>")[1].split("</tr>")[0]
    assert '<span class="outcome-failed">failed</span>' in shipments
    assert "Plex refused &lt;script&gt;" in shipments
    # one operation in each of pending, failed, dead, confirmed; sent and dismissed 0; one
    # pending webhook
    row = html.split('<table class="counts">')[1].split("</table>")[0]
    cells = [c.split("</a>")[0].rsplit(">", 1)[-1] for c in row.split('<td class="state-')[1:]]
    assert cells == ["1", "0", "1", "1", "1", "0"]  # dismissed: none
    assert "<td>1 <small>(oldest 2026-01-15 12:00:00 UTC)</small></td>" in html


async def test_dashboard_without_connections_says_how_to_add_one(
    client: httpx.AsyncClient, store: Store
) -> None:
    await store.delete_connection("acme")
    page = await client.get("/")
    assert "mlconnector connections add" in page.text


async def test_operations_list_filters_and_escapes_the_last_error(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    everything = await client.get("/operations")
    dead = await client.get("/operations", params={"connection": "acme", "state": "dead"})

    for op_id in (seeded.dead_id, seeded.failed_id, seeded.confirmed_id, seeded.pending_id):
        assert f'id="op-{op_id}"' in everything.text
    assert f'id="op-{seeded.dead_id}"' in dead.text
    assert f'id="op-{seeded.failed_id}"' not in dead.text
    assert XSS not in dead.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in dead.text
    # Replay buttons only on failed/dead rows
    assert everything.text.count(">Replay</button>") == 2


async def test_unknown_state_filter_is_ignored(client: httpx.AsyncClient, seeded: Seeded) -> None:
    page = await client.get("/operations", params={"state": "<bogus>"})
    assert page.status_code == 200
    assert f'id="op-{seeded.confirmed_id}"' in page.text
    assert "<bogus>" not in page.text


async def test_replay_moves_a_dead_operation_back_to_pending_with_a_flash(
    client: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    back = "/operations?connection=acme&state=dead"
    response = await client.post(
        f"/operations/{seeded.dead_id}/replay", data={"back": back}, headers=ORIGIN
    )

    assert response.status_code == 303
    assert response.headers["location"] == back
    op = await store.get_operation(seeded.dead_id)
    assert op is not None
    assert (op.state, op.attempts) == (OperationState.PENDING, 0)
    replays = [
        e for e in await store.search_audit(AuditQuery(connection="acme")) if e.action == "replay"
    ]
    assert [e.details["operation_id"] for e in replays] == [seeded.dead_id]

    shown = await client.get(back)
    assert f"Operation {seeded.dead_id} replayed: it is pending again." in shown.text
    assert f'id="op-{seeded.dead_id}"' not in shown.text  # no longer dead
    again = await client.get(back)
    assert "replayed: it is pending again" not in again.text  # the flash is shown once


async def test_replay_of_a_confirmed_operation_changes_nothing(
    client: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    response = await client.post(
        f"/operations/{seeded.confirmed_id}/replay", headers=ORIGIN, follow_redirects=True
    )
    assert "was not replayed" in response.text
    op = await store.get_operation(seeded.confirmed_id)
    assert op is not None
    assert op.state is OperationState.CONFIRMED


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"referer": "http://evil.example/operations"},
        {"origin": "http://testserver.evil.example"},
    ],
    ids=["none", "foreign-origin", "null-origin", "foreign-referer", "suffix-origin"],
)
async def test_replay_from_another_origin_is_refused(
    client: httpx.AsyncClient, store: Store, seeded: Seeded, headers: dict[str, str]
) -> None:
    response = await client.post(f"/operations/{seeded.dead_id}/replay", headers=headers)
    assert response.status_code == 403
    op = await store.get_operation(seeded.dead_id)
    assert op is not None
    assert op.state is OperationState.DEAD


async def test_same_origin_referer_is_enough_without_origin(
    client: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    headers = {"referer": "http://testserver/operations"}
    response = await client.post(f"/operations/{seeded.dead_id}/replay", headers=headers)
    assert response.status_code == 303
    op = await store.get_operation(seeded.dead_id)
    assert op is not None
    assert op.state is OperationState.PENDING


async def test_replay_redirect_stays_on_this_site(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    for back in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = await client.post(
            f"/operations/{seeded.dead_id}/replay", data={"back": back}, headers=ORIGIN
        )
        assert response.headers["location"] == "/operations"


async def test_replay_all_dead_of_one_connection_or_all(
    client: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    await store.create_connection("beta")
    beta = await seed(store, "beta")

    page = await client.get("/operations?connection=acme")
    assert "Replay all dead of acme</button>" in page.text
    assert "(1 dead)" in page.text
    one = await client.post(
        "/operations/replay", data={"connection": "acme", "state": "dead"}, headers=ORIGIN
    )
    assert one.status_code == 303
    assert (await store.get_operation(seeded.dead_id)).state is OperationState.PENDING  # type: ignore[union-attr]
    assert (await store.get_operation(beta.dead_id)).state is OperationState.DEAD  # type: ignore[union-attr]
    assert (await store.get_operation(seeded.failed_id)).state is OperationState.FAILED  # type: ignore[union-attr]

    everyone = await client.post(
        "/operations/replay",
        data={"connection": "", "state": "dead"},
        headers=ORIGIN,
        follow_redirects=True,
    )
    assert "Replayed 1 dead operation(s)." in everyone.text
    # nothing dead is left: the page offers no "Replay all dead" (it would replay nothing)
    assert "Replay all dead" not in everyone.text
    assert (await store.get_operation(beta.dead_id)).state is OperationState.PENDING  # type: ignore[union-attr]
    assert (await store.get_operation(beta.failed_id)).state is OperationState.FAILED  # type: ignore[union-attr]


async def test_replay_all_refuses_other_states(
    client: httpx.AsyncClient, store: Store, seeded: Seeded
) -> None:
    response = await client.post(
        "/operations/replay", data={"state": "confirmed"}, headers=ORIGIN, follow_redirects=True
    )
    assert "Only failed or dead operations can be replayed." in response.text
    counts = await store.count_operations()
    assert counts[OperationState.CONFIRMED] == 1
    assert counts[OperationState.DEAD] == 1


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("plex_order_id", "PO-1001", [CREATE]),
        ("order_key", "plex-79870-1001-2026-01-15", [CREATE]),
        ("ss_order_number", "SO-5001", [CREATE]),
        ("shipment_id", "77001", [WRITE_BACK]),
        ("connection", "acme", [WRITE_BACK, CREATE]),  # newest first
        ("plex_order_id", "PO-nope", []),
    ],
)
async def test_audit_search_by_each_reference(
    client: httpx.AsyncClient,
    seeded: Seeded,
    field: str,
    value: str,
    expected: list[str],
) -> None:
    page = await client.get("/audit", params={field: value})
    assert page.status_code == 200
    actions = [cell.split("</td>")[0] for cell in page.text.split('<td class="what">')[1:]]
    assert actions == expected
    if not expected:
        assert "No audit event matches." in page.text


async def test_audit_details_are_escaped(client: httpx.AsyncClient, seeded: Seeded) -> None:
    page = await client.get("/audit", params={"plex_order_id": "PO-1001"})
    assert XSS not in page.text
    assert "<script>" not in page.text
    # the text is there, readable and inert, as a key/value line
    expected = "<dt>note</dt><dd>" + html.escape(XSS).replace("&quot;", "&#34;") + "</dd>"
    assert expected in page.text


async def test_connection_page_masks_credentials_and_lists_links(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    page = await client.get("/connections/acme")
    assert page.status_code == 200
    assert "abcdefghijklmnop-v1key" not in page.text
    assert "tok-3f9a0c1d2e4b5a69788" not in page.text  # the webhook token
    assert "ss_v1_key" in page.text
    assert "webhook_token" in page.text
    assert "plex-79870-1001-2026-01-15" in page.text
    # a link's audit search stays within its connection (two connections may share a PCN)
    assert "?connection=acme&amp;order_key=plex-79870-1001-2026-01-15" in page.text
    assert "https://connector.example/webhooks/shipstation/acme/" in page.text
    assert "http://ss.test" in page.text  # configured V1/V2 base
    webhooks = page.text.split('<table class="webhooks">')[1].split("</table>")[0]
    assert "SHIP_NOTIFY" in webhooks
    assert "http://ss.test/shipments?batchId=1" in webhooks
    assert "<td>pending</td>" in webhooks


async def test_unknown_connection_page_is_404(client: httpx.AsyncClient) -> None:
    page = await client.get("/connections/%3Cb%3Enobody")
    assert page.status_code == 404
    assert "<b>nobody" not in page.text
    assert "&lt;b&gt;nobody" in page.text


async def test_dashboard_shows_the_engines_job_state_per_flow(
    store: Store, seeded: Seeded, config: Config, fake_clock: FakeClock
) -> None:
    asked: list[str] = []

    async def flow_states(connection: str) -> dict[str, str]:
        asked.append(connection)
        return {"orders": "doing", "inventory": "queued"} if connection == "acme" else {}

    app = create_web_app(store=store, config=config, clock=fake_clock, flow_states=flow_states)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN_URL) as client,
    ):
        await log_in(client, store)
        page = (await client.get("/")).text
    assert "acme" in asked
    orders = page.split("<td>orders</td>")[1].split("</tr>")[0]
    assert '<td class="job">doing</td>' in orders
    # a flow known only from the engine (queued, never ran) is listed too
    inventory = page.split("<td>inventory</td>")[1].split("</tr>")[0]
    assert '<td class="job">queued</td>' in inventory
    shipments = page.split("<td>shipments</td>")[1].split("</tr>")[0]
    assert '<td class="job">—</td>' in shipments
