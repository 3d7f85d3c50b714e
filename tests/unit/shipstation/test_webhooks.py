"""Webhook deliveries: parsing, the resource_url allow-list (SSRF), following, V2 signatures."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mlconnector.clock import FakeClock
from mlconnector.errors import ForeignURLError, SignatureError
from mlconnector.shipstation import (
    AllowList,
    MalformedDeliveryError,
    MissingSignatureError,
    SignatureVerifier,
    WebhookDelivery,
    keys_from_jwks,
    parse_delivery,
)
from mlconnector.shipstation.webhooks import PRODUCTION_V1_HOST
from tests.unit.shipstation.conftest import json_response

# --- parsing -----------------------------------------------------------------------------------


def test_parse_v1_delivery() -> None:
    raw = json.dumps(
        {
            "resource_url": "https://ssapi.shipstation.com/shipments?batchId=1&includeShipmentItems=False",
            "resource_type": "SHIP_NOTIFY",
        }
    ).encode()
    delivery = parse_delivery(raw)
    assert delivery.resource_type == "SHIP_NOTIFY"
    assert not delivery.is_v2


def test_parse_v2_delivery_keeps_data() -> None:
    raw = json.dumps(
        {
            "resource_url": "https://api.shipstation.com/v2/x",
            "resource_type": "TRACK_EVENT_V2",
            "data": {"a": 1},
        }
    ).encode()
    delivery = parse_delivery(raw)
    assert delivery.is_v2
    assert delivery.extra == {"data": {"a": 1}}


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"resource_type": "SHIP_NOTIFY"}',
        b'{"resource_url": "", "resource_type": "SHIP_NOTIFY"}',
        b'{"resource_url": "https://ssapi.shipstation.com/x", "resource_type": "DROP_TABLES"}',
        b'{"resource_url": "https://ssapi.shipstation.com/x", "resource_type": 5}',
    ],
)
def test_malformed_deliveries_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedDeliveryError):
        parse_delivery(raw)


def test_oversized_delivery_is_refused_before_parsing() -> None:
    raw = (
        b'{"resource_url": "https://ssapi.shipstation.com/x", '
        b'"resource_type": "SHIP_NOTIFY", "pad": "' + b"x" * 70_000 + b'"}'
    )
    with pytest.raises(SignatureError, match="exceeds"):
        parse_delivery(raw)


# --- allow-list --------------------------------------------------------------------------------

SANDBOX = AllowList.build(["http://127.0.0.1:8001/v1/"], production_host=None)
PRODUCTION = AllowList.build(["https://ssapi.shipstation.com/"], production_host=PRODUCTION_V1_HOST)


@pytest.mark.parametrize(
    ("allow", "url", "ok"),
    [
        (SANDBOX, "http://127.0.0.1:8001/v1/shipments?batchId=1", True),
        (SANDBOX, "http://127.0.0.1:8001/v1", True),
        (SANDBOX, "http://127.0.0.1:8002/v1/shipments", False),  # port
        (SANDBOX, "https://127.0.0.1:8001/v1/shipments", False),  # scheme
        (SANDBOX, "http://localhost:8001/v1/shipments", False),  # host
        (SANDBOX, "http://127.0.0.1:8001/v2/shipments", False),  # path prefix
        (SANDBOX, "http://127.0.0.1:8001/v1evil/shipments", False),  # prefix is per segment
        (SANDBOX, "http://127.0.0.1:8001/v1/%2e%2e/admin", False),  # dot segments
        (SANDBOX, "https://ssapi.shipstation.com/shipments", False),  # not production
        (PRODUCTION, "https://ssapi.shipstation.com/shipments?batchId=1", True),
        (PRODUCTION, "https://ssapi11.shipstation.com/shipments?batchId=1", True),
        (PRODUCTION, "http://ssapi11.shipstation.com/shipments", False),  # https only
        (PRODUCTION, "https://ssapi11.shipstation.com:8443/shipments", False),
        (PRODUCTION, "https://ssapi.shipstation.com.evil.com/shipments", False),
        (PRODUCTION, "https://evilssapi.shipstation.com/shipments", False),
        (PRODUCTION, "https://ssapi.shipstation.com@evil.com/shipments", False),
        (PRODUCTION, "https://user:pw@ssapi.shipstation.com/shipments", False),
        (PRODUCTION, "https://api.shipstation.com/v2/x", False),  # a V1 list does not allow V2
        (PRODUCTION, "file:///etc/passwd", False),
    ],
)
def test_allow_list(allow: AllowList, url: str, ok: bool) -> None:
    assert allow.allows(httpx.URL(url)) is ok
    if not ok:
        with pytest.raises(ForeignURLError):
            allow.check(url)


# --- following a V1 delivery -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/shipments?batchId=1",
        "http://ssapi.shipstation.com/shipments?batchId=1",
        "https://ssapi.shipstation.com.evil.example.com/shipments",
        "http://169.254.169.254/latest/meta-data",
    ],
)
async def test_follow_refuses_foreign_url_and_sends_nothing(make_v1: Any, url: str) -> None:
    async with make_v1(lambda r: json_response({})) as (client, rec):
        with pytest.raises(ForeignURLError):
            await client.follow(WebhookDelivery(resource_url=url, resource_type="SHIP_NOTIFY"))
    assert rec.requests == []


async def test_follow_refuses_other_configured_host_in_sandbox(make_v1: Any) -> None:
    async with make_v1(lambda r: json_response({}), base_url="http://127.0.0.1:8001") as (
        client,
        rec,
    ):
        with pytest.raises(ForeignURLError):
            await client.follow(
                WebhookDelivery(
                    resource_url="https://ssapi.shipstation.com/shipments?batchId=1",
                    resource_type="SHIP_NOTIFY",
                )
            )
    assert rec.requests == []


async def test_follow_ship_notify_rewrites_include_items_and_reads_all_pages(make_v1: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        items = (
            [{"lineItemKey": "r1", "quantity": 1}]
            if request.url.params["includeShipmentItems"] == "True"
            else None
        )
        shipments = [
            {
                "shipmentId": page,
                "batchNumber": "b",
                "shipmentItems": items,
                "shipDate": "2026-01-15",
            }
        ]
        return json_response({"shipments": shipments, "total": 2, "page": page, "pages": 2})

    url = "https://ssapi7.shipstation.com/shipments?batchId=144015674&includeShipmentItems=False"
    async with make_v1(handler) as (client, rec):
        batch = await client.follow(WebhookDelivery(resource_url=url, resource_type="SHIP_NOTIFY"))
    assert [s.shipment_id for s in batch.shipments] == [1, 2]
    assert all(
        s.shipment_items and s.shipment_items[0].line_item_key == "r1" for s in batch.shipments
    )
    for request in rec.requests:
        assert request.url.host == "ssapi7.shipstation.com"
        assert request.url.params.get_list("includeShipmentItems") == ["True"]
        assert request.url.params["batchId"] == "144015674"
        assert request.headers["Authorization"].startswith("Basic ")


async def test_follow_order_notify_returns_orders(make_v1: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(
            {"orders": [{"orderId": 5, "orderNumber": "A"}], "total": 1, "page": 1, "pages": 1}
        )

    url = "https://ssapi.shipstation.com/orders?storeID=1&importBatch=abc"
    async with make_v1(handler) as (client, rec):
        batch = await client.follow(WebhookDelivery(resource_url=url, resource_type="ORDER_NOTIFY"))
    assert [o.order_id for o in batch.orders] == [5]
    assert rec.requests[0].url.params["importBatch"] == "abc"


# --- V2 signatures -----------------------------------------------------------------------------


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": b64(numbers.n),
        "e": b64(numbers.e),
    }


def _sign(key: rsa.RSAPrivateKey, timestamp: str, body: bytes, kid: str = "k1") -> dict[str, str]:
    signature = key.sign(timestamp.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256())
    return {
        "x-shipengine-rsa-sha256-key-id": kid,
        "x-shipengine-rsa-sha256-signature": base64.b64encode(signature).decode(),
        "x-shipengine-timestamp": timestamp,
    }


BODY = b'{"resource_url":"https://api.shipstation.com/v2/batches/se-1","resource_type":"BATCH_PROCESSED_V2"}'


def _iso(clock: FakeClock, shift: float = 0.0) -> str:
    when = clock.now() + timedelta(seconds=shift)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@pytest.fixture
def verifier(rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock) -> SignatureVerifier:
    keys = keys_from_jwks({"keys": [_jwk(rsa_key, "k1")]})
    return SignatureVerifier(fake_clock, keys=keys)


async def test_valid_signature_is_accepted(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    await verifier.verify(_sign(rsa_key, _iso(fake_clock, -120), BODY), BODY)
    # clocks skew both ways: a timestamp a little in the future is fine too
    await verifier.verify(_sign(rsa_key, _iso(fake_clock, 120), BODY), BODY)


async def test_unix_seconds_timestamp_is_accepted(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    stamp = str(int(fake_clock.now().timestamp()))
    await verifier.verify(_sign(rsa_key, stamp, BODY), BODY)


async def test_tampered_body_is_rejected(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    headers = _sign(rsa_key, _iso(fake_clock), BODY)
    with pytest.raises(SignatureError, match="does not verify"):
        await verifier.verify(headers, BODY.replace(b"se-1", b"se-2"))


async def test_bad_signature_is_rejected(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SignatureError, match="does not verify"):
        await verifier.verify(_sign(other, _iso(fake_clock), BODY), BODY)
    headers = _sign(rsa_key, _iso(fake_clock), BODY)
    headers["x-shipengine-rsa-sha256-signature"] = "%%%not base64"
    with pytest.raises(SignatureError):
        await verifier.verify(headers, BODY)


async def test_stale_timestamp_is_rejected(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    headers = _sign(rsa_key, _iso(fake_clock), BODY)
    fake_clock.advance(301)
    with pytest.raises(SignatureError, match="tolerance"):
        await verifier.verify(headers, BODY)


async def test_far_future_timestamp_is_rejected(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        await verifier.verify(_sign(rsa_key, _iso(fake_clock, 400), BODY), BODY)


async def test_signed_timestamp_cannot_be_swapped(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    headers = _sign(rsa_key, _iso(fake_clock, -3600), BODY)
    headers["x-shipengine-timestamp"] = _iso(fake_clock)  # fresh stamp on an old signature
    with pytest.raises(SignatureError, match="does not verify"):
        await verifier.verify(headers, BODY)


async def test_unknown_key_id_is_rejected(
    verifier: SignatureVerifier, rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    with pytest.raises(SignatureError, match="unknown key id"):
        await verifier.verify(_sign(rsa_key, _iso(fake_clock), BODY, kid="k2"), BODY)


async def test_missing_headers_raise_missing_signature(verifier: SignatureVerifier) -> None:
    with pytest.raises(MissingSignatureError):
        await verifier.verify({"content-type": "application/json"}, BODY)


async def test_unknown_key_id_refreshes_keys_once(
    rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    fetches = []

    async def fetch() -> dict[str, rsa.RSAPublicKey]:
        fetches.append(1)
        return keys_from_jwks({"keys": [_jwk(rsa_key, "rotated")]})

    verifier = SignatureVerifier(fake_clock, fetch_keys=fetch)
    await verifier.verify(_sign(rsa_key, _iso(fake_clock), BODY, kid="rotated"), BODY)
    await verifier.verify(_sign(rsa_key, _iso(fake_clock), BODY, kid="rotated"), BODY)
    assert len(fetches) == 1


async def test_signed_layout_is_a_parameter(
    rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    keys = keys_from_jwks({"keys": [_jwk(rsa_key, "k1")]})
    stamp = _iso(fake_clock)
    signature = rsa_key.sign(BODY, padding.PKCS1v15(), hashes.SHA256())  # body only
    headers = {
        "x-shipengine-rsa-sha256-key-id": "k1",
        "x-shipengine-rsa-sha256-signature": base64.b64encode(signature).decode(),
        "x-shipengine-timestamp": stamp,
    }
    with pytest.raises(SignatureError):
        await SignatureVerifier(fake_clock, keys=keys).verify(headers, BODY)
    await SignatureVerifier(fake_clock, keys=keys, signed_layout="{body}").verify(headers, BODY)


async def test_key_refresh_is_rate_limited(
    rsa_key: rsa.RSAPrivateKey, fake_clock: FakeClock
) -> None:
    fetches = []

    async def fetch() -> dict[str, rsa.RSAPublicKey]:
        fetches.append(1)
        return keys_from_jwks({"keys": [_jwk(rsa_key, "k1")]})

    verifier = SignatureVerifier(fake_clock, fetch_keys=fetch, refresh_interval=60)
    for forged in ("x1", "x2", "x3"):
        with pytest.raises(SignatureError, match="unknown key id"):
            await verifier.verify(_sign(rsa_key, _iso(fake_clock), BODY, kid=forged), BODY)
    assert len(fetches) == 1
    fake_clock.advance(61)
    with pytest.raises(SignatureError, match="unknown key id"):
        await verifier.verify(_sign(rsa_key, _iso(fake_clock), BODY, kid="x4"), BODY)
    assert len(fetches) == 2


async def test_follow_refuses_pointer_to_another_resource(make_v1: Any) -> None:
    url = "https://ssapi.shipstation.com/accounts/listtags?x=1"
    async with make_v1(lambda r: json_response({})) as (client, rec):
        with pytest.raises(ForeignURLError, match="not at /shipments"):
            await client.follow(WebhookDelivery(resource_url=url, resource_type="SHIP_NOTIFY"))
    assert rec.requests == []
