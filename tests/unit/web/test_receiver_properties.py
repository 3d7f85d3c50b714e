"""Property: whatever body arrives with the right token, the receiver answers what the rules call
for (never a server error), and a delivery is stored exactly when it is a well-formed, unsigned-OK
(V1) pointer to an allowed address."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlconnector.clock import FakeClock
from mlconnector.errors import ForeignURLError
from mlconnector.shipstation import MalformedDeliveryError, parse_delivery
from mlconnector.store import CredentialKind, Vault, generate_key, open_store
from mlconnector.web import create_web_app
from mlconnector.web.receiver import allow_list_for
from tests.conftest import FAKE_START
from tests.unit.web.conftest import HOOK, SS_BASE, TOKEN, make_config

URLS = st.one_of(
    st.builds(lambda p: f"{SS_BASE}/{p}", st.text(max_size=30)),
    st.sampled_from(
        [
            "https://ssapi7.shipstation.com/shipments?batchId=1",
            "http://ssapi7.shipstation.com/shipments",
            "https://evil.example/x",
            "http://ss.test.evil.example/",
            "http://user@ss.test/",
            f"{SS_BASE}/../x",
            "ftp://ss.test/x",
            "",
        ]
    ),
    st.text(max_size=40),
)
TYPES = st.one_of(
    st.sampled_from(
        ["SHIP_NOTIFY", "ORDER_NOTIFY", "FULFILLMENT_SHIPPED", "LABEL_CREATED_V2", "NOPE", "x_V2"]
    ),
    st.text(max_size=20),
)
DELIVERIES = st.builds(
    lambda url, kind, extra: json.dumps({"resource_url": url, "resource_type": kind, **extra}),
    URLS,
    TYPES,
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3),
).map(str.encode)
BODIES = st.one_of(DELIVERIES, st.binary(max_size=200))


ALLOW = allow_list_for(make_config(Path("/unused")).connections["acme"].shipstation)


def expected_status(body: bytes) -> int:
    """The answer the rules call for (the body is sent without signature headers)."""
    try:
        delivery = parse_delivery(body)
        ALLOW.check(delivery.resource_url)
    except (MalformedDeliveryError, ForeignURLError):
        return 400
    return 404 if delivery.is_v2 else 200  # V2 without its signature headers: 404


def test_any_body_gets_the_answer_the_rules_call_for_and_is_stored_only_when_accepted(
    tmp_path: Path,
) -> None:
    with asyncio.Runner() as runner:
        clock = FakeClock(FAKE_START)
        store = runner.run(
            open_store(
                f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
                clock=clock,
                vault=Vault([generate_key()], source="a test key"),
            )
        )
        runner.run(store.create_connection("acme"))
        runner.run(store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, TOKEN))
        app = create_web_app(store=store, config=make_config(tmp_path), clock=clock)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(BODIES)
        def check(body: bytes) -> None:
            before = runner.run(store.list_webhooks(connection="acme", limit=1000))
            response = runner.run(client.post(HOOK, content=body))
            after = runner.run(store.list_webhooks(connection="acme", limit=1000))
            stored = {item.body for item in after}
            expected = expected_status(body)
            assert response.status_code == expected
            if expected == 200:
                assert body in stored
                assert len(after) - len(before) in (0, 1)  # 0: the same body came before
            else:
                assert len(after) == len(before)

        try:
            check()
        finally:
            runner.run(client.aclose())
            runner.run(store.close())
