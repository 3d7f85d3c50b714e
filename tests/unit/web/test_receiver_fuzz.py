"""10,000 generated hostile webhook bodies (seeded): deep nesting, huge, bad V2 timestamps, wrong
types, junk bytes. Behind the valid token, none may give a 5xx (or an exception out of the app)."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mlconnector.clock import FakeClock
from mlconnector.store import Store
from mlconnector.web import ReceiverOptions, create_web_app
from tests.unit.web.conftest import HOOK, SS_BASE, make_config

BODIES = 10_000
SEED = 20261202
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()

URL = f"{SS_BASE}/shipments?batchId=1"
BAD_TIMESTAMPS = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0000-00-00T00:00:00Z",
    "2026-01-15T12:00:00",
    "2026-02-30T12:00:00Z",
    "99999999999999999999",
    "1" * 13,
    "1700000000.123456789123",
    "-1",
    "nan",
    "1e400",
    "2026-01-15T12:00:00+99:00",
    "",
    " ",
    "2026-01-15T12:00:00Z" * 10,
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic digits
]
WRONG_VALUES: list[object] = [
    None,
    True,
    0,
    -1,
    1e308,
    10**30,
    [],
    {},
    [URL],
    {"url": URL},
    "",
    " " * 3000,
    "http://[::1",
    "http://a b/",
    "http://xn--/",
    "http://\udcff/",
    "http://ss.test:99999/",
    "http://ss.test/\x00",
    f"{SS_BASE}/" + "a" * 5000,
]


def nested(rng: random.Random) -> bytes:
    depth = rng.choice([17, 50, 1000, 5000, 20000, 30000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    inner = opener * depth + "1" + closer * depth
    if rng.random() < 0.5:  # inside a delivery that is otherwise well-formed
        return f'{{"resource_url": "{URL}", "resource_type": "SHIP_NOTIFY", "x": {inner}}}'.encode()
    return inner.encode()


def huge(rng: random.Random) -> bytes:
    size = rng.choice([60_000, 65_536, 65_537, 70_000])
    padding = "x" * max(0, size - 80)
    return json.dumps(
        {"resource_url": URL, "resource_type": "SHIP_NOTIFY", "pad": padding}
    ).encode()[:size]


def wrong_types(rng: random.Random) -> bytes:
    body: dict[str, object] = {
        "resource_url": rng.choice([*WRONG_VALUES, URL]),
        "resource_type": rng.choice([*WRONG_VALUES, "SHIP_NOTIFY", "LABEL_CREATED_V2"]),
    }
    if rng.random() < 0.3:
        body["data"] = rng.choice(WRONG_VALUES)
    top: object = body if rng.random() < 0.9 else rng.choice([[body], "x", 1, None])
    return json.dumps(top).encode()


def junk(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 1:
        return ("1" * rng.choice([4301, 10_000])).encode()  # beyond int's digit limit
    if kind == 2:
        return (
            b'{"resource_url": "' + URL.encode() + b'", "resource_type": "SHIP_NOTIFY", "n": NaN}'
        )
    if kind == 3:
        return b'{"resource_url": "\\ud800", "resource_type": "SHIP_NOTIFY"}'
    return b'{"resource_url": "' + URL.encode() + b'", "resource_type": "SHIP_NOTIFY"' * 3


def valid(rng: random.Random) -> bytes:
    return json.dumps(
        {"resource_url": f"{URL}&n={rng.random()}", "resource_type": "SHIP_NOTIFY"}
    ).encode()


def v2_headers(rng: random.Random) -> dict[str, str]:
    headers = {
        "x-shipengine-rsa-sha256-key-id": rng.choice(["k1", "unknown", "x" * 300]),
        "x-shipengine-rsa-sha256-signature": rng.choice(
            [base64.b64encode(rng.randbytes(256)).decode(), "not base64!", ""]
        ),
        "x-shipengine-timestamp": rng.choice([*BAD_TIMESTAMPS, "2026-01-15T12:00:00Z"]),
    }
    if rng.random() < 0.1:
        headers.pop(rng.choice(list(headers)))
    return headers


def v2(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"resource_url": URL, "resource_type": "LABEL_CREATED_V2"}).encode()
    return body, v2_headers(rng)


GENERATORS: dict[str, Callable[[random.Random], bytes]] = {
    "nested": nested,
    "huge": huge,
    "wrong_types": wrong_types,
    "junk": junk,
    "valid": valid,
}


def generate(rng: random.Random) -> tuple[str, bytes, dict[str, str]]:
    family = rng.choice([*GENERATORS, "v2", "v2"])
    if family == "v2":
        body, headers = v2(rng)
        return family, body, headers
    headers = v2_headers(rng) if rng.random() < 0.2 else {}
    return family, GENERATORS[family](rng), headers


async def test_ten_thousand_hostile_bodies_never_give_a_server_error(
    store: Store, tmp_path: Path, fake_clock: FakeClock
) -> None:
    if store.dialect != "sqlite":
        pytest.skip("the receiver's parsing is the same on every backend: fuzzed once, on SQLite")

    async def keys(_connection: str) -> Mapping[str, rsa.RSAPublicKey]:
        return {"k1": KEY}

    app = create_web_app(
        store=store,
        config=make_config(tmp_path),
        clock=fake_clock,
        receiver_options=ReceiverOptions(key_source=keys),
    )
    rng = random.Random(SEED)
    seen: Counter[tuple[str, int]] = Counter()
    transport = httpx.ASGITransport(app)  # an exception inside the app fails the test
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        for number in range(BODIES):
            family, body, headers = generate(rng)
            raw = {k: v.encode() for k, v in headers.items()}  # non-ASCII digits as UTF-8 bytes
            response = await client.post(HOOK, content=body, headers=raw)
            assert response.status_code < 500, (number, family, body[:200], headers)
            seen[(family, response.status_code)] += 1
    statuses = {status for _, status in seen}
    assert statuses <= {200, 400, 404, 413}
    # the run exercised every family and every refusal, not one path 10,000 times
    assert {family for family, _ in seen} == {*GENERATORS, "v2"}
    assert seen[("valid", 200)] > 500
    assert seen[("nested", 400)] > 500
    assert seen[("huge", 413)] > 100
    assert seen[("v2", 400)] > 1000
    assert sum(seen.values()) == BODIES
