"""V1 client behaviour against a recording MockTransport."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.errors import (
    AuthenticationError,
    FrozenRecordError,
    RemoteValidationError,
    RetryBudgetExhaustedError,
)
from mlconnector.http import RateLimiterRegistry, RetryPolicy
from mlconnector.shipstation import Order, RepeatedPageError
from tests.unit.shipstation.conftest import V1_KEY, V1_SECRET, json_response


def _order(n: int, **extra: Any) -> Order:
    return Order(
        order_number=f"N-{n}", order_key=f"key-{n}", order_status="awaiting_shipment", **extra
    )


async def test_basic_auth_header_is_key_colon_secret(make_v1: Any) -> None:
    async with make_v1(lambda r: json_response([])) as (client, rec):
        await client.list_warehouses()
    expected = base64.b64encode(f"{V1_KEY}:{V1_SECRET}".encode()).decode()
    assert rec.requests[0].headers["Authorization"] == f"Basic {expected}"
    assert "API-Key" not in rec.requests[0].headers


async def test_doc_example_credentials_give_the_doc_header(fake_clock: FakeClock) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return json_response([])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        from mlconnector.shipstation import ShipStationV1Client

        client = ShipStationV1Client(
            http, api_key="ShipStation", api_secret="Rocks", clock=fake_clock
        )
        await client.list_stores()
    assert seen == ["Basic U2hpcFN0YXRpb246Um9ja3M="]


async def test_date_filters_are_sent_in_pacific(make_v1: Any) -> None:
    page = {"orders": [], "total": 0, "page": 1, "pages": 0}
    async with make_v1(lambda r: json_response(page)) as (client, rec):
        _ = [
            o
            async for o in client.iter_orders(
                modify_date_start=datetime(2026, 7, 1, 17, 0, tzinfo=UTC),
                modify_date_end=datetime(2026, 1, 15, 12, 0, 0, 500, tzinfo=UTC),
                order_status="awaiting_shipment",
            )
        ]
    params = rec.requests[0].url.params
    assert params["modifyDateStart"] == "2026-07-01 10:00:00"
    # an end bound is rounded up to the second so it stays inclusive
    assert params["modifyDateEnd"] == "2026-01-15 04:00:01"
    assert params["orderStatus"] == "awaiting_shipment"
    assert params["pageSize"] == "500"
    assert params["page"] == "1"


def _batch_handler(fail_keys: set[str], reverse: bool = False) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        orders = json.loads(request.content)
        results = [
            {
                "orderId": 1000 + int(o["orderKey"].split("-")[1]),
                "orderKey": o["orderKey"],
                "orderNumber": o["orderNumber"],
                "success": o["orderKey"] not in fail_keys,
                "errorMessage": "The order has been shipped and cannot be updated"
                if o["orderKey"] in fail_keys
                else None,
            }
            for o in orders
        ]
        if reverse:
            results.reverse()
        return json_response({"hasErrors": bool(fail_keys), "results": results})

    return handler


async def test_create_orders_chunks_250_into_100_100_50_with_outcomes_in_input_order(
    make_v1: Any,
) -> None:
    orders = [_order(i) for i in range(250)]
    async with make_v1(_batch_handler({"key-7", "key-180"}, reverse=True)) as (client, rec):
        outcomes = await client.create_orders(orders)
    assert [len(b) for b in rec.bodies()] == [100, 100, 50]
    assert all(r.url.path == "/orders/createorders" for r in rec.requests)
    assert [o.order_key for o in outcomes] == [f"key-{i}" for i in range(250)]
    assert [o.order_id for o in outcomes] == [1000 + i for i in range(250)]
    failed = [o for o in outcomes if not o.success]
    assert [o.order_key for o in failed] == ["key-7", "key-180"]
    assert all(o.frozen for o in failed)
    assert failed[0].error_message == "The order has been shipped and cannot be updated"


async def test_create_orders_whole_batch_rejected_marks_each_order_failed(make_v1: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if len(json.loads(request.content)) == 100:
            return json_response(_batch_handler(set())(request).json())
        return json_response({"Message": "The request is invalid.", "ExceptionMessage": "bad"}, 400)

    async with make_v1(handler) as (client, _):
        outcomes = await client.create_orders([_order(i) for i in range(130)])
    assert [o.success for o in outcomes] == [True] * 100 + [False] * 30
    assert "bad" in (outcomes[-1].error_message or "")


async def test_createorder_on_shipped_order_raises_frozen(make_v1: Any) -> None:
    body = {"message": "Order is in shipped status and cannot be modified via the API"}
    async with make_v1(lambda r: json_response(body, 400)) as (client, rec):
        with pytest.raises(FrozenRecordError) as info:
            await client.create_or_update_order(_order(1))
    assert len(rec.requests) == 1  # a 400 is never retried
    assert "shipped" in str(info.value)
    assert info.value.record == "order key-1"


async def test_createorder_other_400_is_remote_validation(make_v1: Any) -> None:
    async with make_v1(lambda r: json_response({"message": "orderNumber is required"}, 400)) as (
        client,
        _,
    ):
        with pytest.raises(RemoteValidationError) as info:
            await client.create_or_update_order(_order(1))
    assert not isinstance(info.value, FrozenRecordError)
    assert "orderNumber is required" in str(info.value)


async def test_createorder_sends_whole_order_and_parses_reply(make_v1: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        return json_response({**sent, "orderId": 55, "createDate": "2026-01-15T04:00:00.0000000"})

    order = Order.model_validate({"orderNumber": "A", "orderKey": "k", "unknownThing": 1})
    async with make_v1(handler) as (client, rec):
        saved = await client.create_or_update_order(order)
    assert rec.bodies()[0] == {"orderNumber": "A", "orderKey": "k", "unknownThing": 1}
    assert saved.order_id == 55
    assert saved.create_date == datetime(2026, 1, 15, 12, tzinfo=UTC)


def _pages(total_pages: int, per_page: int = 2) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        orders = [
            {"orderId": page * 100 + i, "orderNumber": f"{page}-{i}"} for i in range(per_page)
        ]
        return json_response(
            {"orders": orders, "total": total_pages * per_page, "page": page, "pages": total_pages}
        )

    return handler


async def test_iter_orders_reads_every_page_and_stops_at_pages(make_v1: Any) -> None:
    async with make_v1(_pages(3)) as (client, rec):
        ids = [o.order_id async for o in client.iter_orders()]
    assert ids == [100, 101, 200, 201, 300, 301]
    assert [r.url.params["page"] for r in rec.requests] == ["1", "2", "3"]


async def test_iter_orders_max_pages_stops_early(make_v1: Any) -> None:
    async with make_v1(_pages(5)) as (client, rec):
        ids = [o.order_id async for o in client.iter_orders(max_pages=2)]
    assert ids == [100, 101, 200, 201]
    assert len(rec.requests) == 2


async def test_iter_orders_stops_on_empty_page(make_v1: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        orders = [{"orderId": 1}] if page == 1 else []
        return json_response({"orders": orders, "total": 1, "page": page, "pages": 9})

    async with make_v1(handler) as (client, rec):
        ids = [o.order_id async for o in client.iter_orders()]
    assert ids == [1]
    assert len(rec.requests) == 2


async def test_repeated_page_is_refused(make_v1: Any) -> None:
    # A server that ignores ``page`` would otherwise be read forever.
    body = {"orders": [{"orderId": 1}], "total": 50, "page": 1, "pages": 50}
    async with make_v1(lambda r: json_response(body)) as (client, rec):
        with pytest.raises(RepeatedPageError):
            _ = [o async for o in client.iter_orders()]
    assert len(rec.requests) == 2


async def test_order_number_filter_is_prefix_but_find_is_exact(make_v1: Any) -> None:
    orders = [{"orderId": 1, "orderNumber": "1001"}, {"orderId": 2, "orderNumber": "10010"}]

    def handler(request: httpx.Request) -> httpx.Response:
        prefix = request.url.params["orderNumber"]
        hits = [o for o in orders if str(o["orderNumber"]).startswith(prefix)]
        return json_response({"orders": hits, "total": len(hits), "page": 1, "pages": 1})

    async with make_v1(handler) as (client, _):
        prefix_hits = [o.order_id async for o in client.iter_orders(order_number="1001")]
        exact = await client.find_orders_by_number("1001")
    assert prefix_hits == [1, 2]
    assert [o.order_id for o in exact] == [1]


async def test_401_names_v1_key_connection_and_host_without_secrets(make_v1: Any) -> None:
    body = {"message": f"Unauthorized for {V1_SECRET}"}
    async with make_v1(lambda r: json_response(body, 401), connection="acme") as (client, rec):
        with pytest.raises(AuthenticationError) as info:
            await client.list_stores()
    text = str(info.value) + (info.value.body_excerpt or "")
    assert "V1" in text
    assert "key/secret" in text
    assert "'acme'" in text
    assert "ssapi.shipstation.com" in text
    assert V1_SECRET not in text
    assert V1_KEY not in text
    assert len(rec.requests) == 1


async def test_429_is_waited_out_with_reset_seconds(make_v1: Any, fake_clock: FakeClock) -> None:
    answers = [
        json_response(
            {"message": "Too Many Requests"},
            429,
            **{
                "X-Rate-Limit-Limit": "40",
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Reset": "30",
            },
        ),
        json_response(
            [],
            **{
                "X-Rate-Limit-Limit": "40",
                "X-Rate-Limit-Remaining": "39",
                "X-Rate-Limit-Reset": "60",
            },
        ),
    ]
    async with make_v1(lambda r: answers.pop(0)) as (client, rec):
        start = fake_clock.monotonic()
        assert await client.list_warehouses() == []
    assert len(rec.requests) == 2
    assert fake_clock.monotonic() - start >= 30


async def test_429_surfaces_only_when_budget_exhausted(make_v1: Any) -> None:
    storm = json_response({"message": "Too Many Requests"}, 429, **{"Retry-After": "5"})
    policy = RetryPolicy(max_rate_limit_waits=3)
    async with make_v1(lambda r: storm, retry=policy) as (client, rec):
        with pytest.raises(RetryBudgetExhaustedError):
            await client.list_warehouses()
    assert len(rec.requests) == 4


async def test_5xx_is_retried_with_backoff(make_v1: Any, fake_clock: FakeClock) -> None:
    answers = [
        json_response({"message": "oops"}, 500),
        json_response({"message": "oops"}, 502),
        json_response([]),
    ]
    async with make_v1(lambda r: answers.pop(0)) as (client, rec):
        assert await client.list_warehouses() == []
    assert len(rec.requests) == 3
    assert fake_clock.monotonic() >= 1.0 + 2.0  # base 1s, doubled


async def test_timeouts_are_retried(make_v1: Any) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return json_response([])

    async with make_v1(handler) as (client, _):
        assert await client.list_stores() == []
    assert calls["n"] == 2


async def test_one_limiter_per_credential_shared_between_clients(fake_clock: FakeClock) -> None:
    registry = RateLimiterRegistry(fake_clock)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: json_response([]))
    ) as http:
        from mlconnector.shipstation import ShipStationV1Client

        a = ShipStationV1Client(
            http, api_key=V1_KEY, api_secret=V1_SECRET, clock=fake_clock, limiters=registry
        )
        b = ShipStationV1Client(
            http, api_key=V1_KEY, api_secret=V1_SECRET, clock=fake_clock, limiters=registry
        )
        c = ShipStationV1Client(
            http, api_key=V1_KEY, api_secret="other-secret", clock=fake_clock, limiters=registry
        )
    assert a.limiter is b.limiter
    assert a.limiter is not c.limiter
    assert a.limiter is not None
    assert a.limiter.limit == 40


async def test_mark_as_shipped_sends_pacific_date(make_v1: Any) -> None:
    async with make_v1(lambda r: json_response({"orderId": 9, "orderNumber": "N"})) as (
        client,
        rec,
    ):
        result = await client.mark_as_shipped(
            9,
            carrier_code="ups",
            ship_date=datetime(2026, 1, 16, 3, 0, tzinfo=UTC),  # still the 15th in Pacific
            tracking_number="1Z",
        )
    assert rec.bodies()[0] == {
        "orderId": 9,
        "carrierCode": "ups",
        "shipDate": "2026-01-15",
        "trackingNumber": "1Z",
        "notifyCustomer": False,
        "notifySalesChannel": False,
    }
    assert result.order_number == "N"


async def test_webhook_management(make_v1: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return json_response(
                {"webhooks": [{"WebHookID": 4, "HookType": "SHIP_NOTIFY", "Url": "u"}]}
            )
        if request.method == "POST":
            return json_response({"id": 12})
        return httpx.Response(200)

    async with make_v1(handler) as (client, rec):
        hooks = await client.list_webhooks()
        new_id = await client.subscribe_webhook(
            target_url="https://me/h", event="SHIP_NOTIFY", store_id=3
        )
        await client.unsubscribe_webhook(12)
    assert hooks[0].webhook_id == 4
    assert new_id == 12
    assert rec.bodies()[1] == {"target_url": "https://me/h", "event": "SHIP_NOTIFY", "store_id": 3}
    assert (rec.requests[2].method, rec.requests[2].url.path) == ("DELETE", "/webhooks/12")


async def test_stores_and_warehouses(make_v1: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/stores":
            return json_response(
                [
                    {
                        "storeId": 1,
                        "storeName": "Manual",
                        "marketplaceId": 0,
                        "createDate": "2014-12-03T11:46:11.283",
                    }
                ]
            )
        return json_response(
            [
                {
                    "warehouseId": 2,
                    "warehouseName": "Main",
                    "isDefault": True,
                    "originAddress": {"city": "X"},
                }
            ]
        )

    async with make_v1(handler) as (client, _):
        stores = await client.list_stores()
        warehouses = await client.list_warehouses()
    assert stores[0].create_date == datetime(2014, 12, 3, 19, 46, 11, 283000, tzinfo=UTC)
    assert warehouses[0].origin_address is not None
    assert warehouses[0].origin_address.city == "X"


async def test_base_url_path_prefix_is_kept(make_v1: Any) -> None:
    async with make_v1(
        lambda r: json_response({"orderId": 3}), base_url="http://127.0.0.1:9/v1"
    ) as (
        client,
        rec,
    ):
        await client.get_order(3)
        await client.delete_order(3)
    assert [str(r.url) for r in rec.requests] == ["http://127.0.0.1:9/v1/orders/3"] * 2


@pytest.mark.parametrize(
    ("message", "frozen"),
    [
        ("Order 1 (orderKey k) is shipped and can no longer be updated", True),
        ("The order has been cancelled and cannot be modified", True),
        ("Only open orders can be updated; this order is shipped", True),
        ("orderStatus must be one of awaiting_shipment, shipped, cancelled", False),
        ("Invalid orderNumber", False),
    ],
)
def test_frozen_message_detection(message: str, frozen: bool) -> None:
    from mlconnector.shipstation import says_frozen

    assert says_frozen(message) is frozen


async def test_whole_batch_frozen_marks_only_the_named_order_frozen(make_v1: Any) -> None:
    body = {"message": "Order N-1 is cancelled and can no longer be updated"}
    async with make_v1(lambda r: json_response(body, 400)) as (client, rec):
        outcomes = await client.create_orders([_order(1), _order(2), _order(10)])
    assert len(rec.requests) == 1
    assert [(o.order_key, o.success, o.frozen) for o in outcomes] == [
        ("key-1", False, True),
        ("key-2", False, False),
        ("key-10", False, False),
    ]
