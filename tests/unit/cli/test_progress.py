"""The live progress line of long commands: on a terminal only, fed by the run's events."""

from __future__ import annotations

import io

import httpx
from rich.console import Console

from mlconnector.commands.progress import Activity
from mlconnector.http.client import RequestEvent


def event(path: str, status: int) -> RequestEvent:
    return RequestEvent(
        service="ShipStation V1",
        method="GET",
        url=f"http://ss.test{path}",
        status=status,
        request_id=None,
        attempt=1,
        elapsed=0.01,
        endpoint=path.replace("123", "{id}"),
    )


def test_on_a_terminal_the_line_shows_the_step_requests_writes_and_last_request() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with Activity(console) as activity:
        activity.step("orders@acme")
        activity.http_exchange(event("/orders", 200))
        activity.http_exchange(event("/orders/123", 404))
        activity.operation_changed("acme", "orders", "sent")
        activity.operation_changed("acme", "orders", "confirmed")
        line = activity.line()
    assert line == (
        "orders@acme · 2 request(s), 1 write(s) confirmed · last GET /orders/{id} → 404"
    )
    assert "orders@acme" in out.getvalue()


def test_off_a_terminal_nothing_is_written() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120)  # a file, not a terminal
    with Activity(console) as activity:
        activity.step("orders@acme")
        activity.http_exchange(event("/orders", 200))
    assert not activity.enabled
    assert out.getvalue() == ""


async def test_a_watched_client_counts_its_responses() -> None:
    console = Console(file=io.StringIO(), width=120)
    activity = Activity(console)
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    async with activity.watch(httpx.AsyncClient(transport=transport)) as http:
        await http.get("http://plex.test/mdm/v1/parts/42")
        await http.get("http://plex.test/mdm/v1/parts")
    assert activity.requests == 2
    assert activity.last == "GET /mdm/v1/parts → 204"
