"""Webhook deliveries: queued by state changes, POSTed by an httpx client on demand.

**V1** deliveries are thin and unsigned: ``{"resource_url": ..., "resource_type": EVENT}``, where
``resource_url`` points back at the simulator (``{public_url}/orders?importBatch=…``,
``{public_url}/shipments?batchId=…&includeShipmentItems=False``,
``{public_url}/fulfillments?batchId=…``) so that following it returns exactly that batch.
ITEM_ORDER_NOTIFY / ITEM_SHIP_NOTIFY use the same URLs as their parents (the real query string
is unverified); FULFILLMENT_SHIPPED points at ``/fulfillments?batchId=`` (a filter the simulator
adds: the real URL is unverified) and FULFILLMENT_REJECTED at the order's new ``importBatch``.

**V2** (environment webhooks) deliveries are signed with RSA-SHA256 (PKCS#1 v1.5), like the real
service (docs.shipstation.com "Webhook Validation"):

* ``x-shipengine-rsa-sha256-key-id``: the ``kid`` of the signing key in the JWKS;
* ``x-shipengine-timestamp``: ISO-8601 UTC, milliseconds, ``Z`` (``2026-01-15T12:00:00.000Z``);
* ``x-shipengine-rsa-sha256-signature``: base64 of the signature over the UTF-8 bytes of
  ``f"{timestamp}.{raw_body}"`` — the timestamp header value, a full stop, then the raw request
  body exactly as sent. The vendor page does not spell the string out; this layout is what public
  verifiers written against the live service use (several independent code samples), so treat it
  as *probable*, not confirmed.

The public key(s) are served as a JWKS (``{"keys": [{kty, kid, use, alg, n, e}]}``) at
:data:`JWKS_PATH` (``/jwks``, the path public verifiers fetch from ``api.shipengine.com``); the
endpoint needs no API key.

Deliveries stay queued until :meth:`WebhookDispatcher.deliver` (an explicit pump for tests) or the
optional background task runs. The fault flags ``duplicate_webhooks`` / ``reorder_webhooks`` of the
sandbox's :class:`~mlconnector.sandbox.faults.FaultConfig` apply at delivery time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mlconnector.clock import Clock
from mlconnector.sandbox.faults import FaultConfig

JWKS_PATH = "/jwks"
SIGNATURE_HEADER = "x-shipengine-rsa-sha256-signature"
KEY_ID_HEADER = "x-shipengine-rsa-sha256-key-id"
TIMESTAMP_HEADER = "x-shipengine-timestamp"


@dataclass
class PendingDelivery:
    """One POST waiting to be sent."""

    url: str
    body: bytes
    resource_type: str
    signed: bool
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class DeliveryResult:
    """What happened to one POST: ``status`` is None when the connection failed."""

    url: str
    resource_type: str
    resource_url: str
    status: int | None
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class WebhookSigner:
    """The simulator's RSA key pair for V2 deliveries."""

    def __init__(self, key_id: str = "sandbox-webhook-key-1") -> None:
        self.key_id = key_id
        self._key: rsa.RSAPrivateKey | None = None

    @property
    def _private(self) -> rsa.RSAPrivateKey:
        # 2048 bits like the real service; made per sandbox (no private key in the repository)
        # and only on first use, because generating one costs ~0.1 s
        if self._key is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._key

    def signed_headers(self, body: bytes, when: datetime) -> dict[str, str]:
        """The three signature headers for ``body`` sent at ``when``."""
        timestamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{when.microsecond // 1000:03d}Z"
        )
        message = timestamp.encode() + b"." + body
        signature = self._private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            KEY_ID_HEADER: self.key_id,
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: timestamp,
        }

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public key set, as served at :data:`JWKS_PATH`."""
        numbers = self._private.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": self.key_id,
                    "use": "sig",
                    "alg": "RS256",
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            ]
        }


class WebhookDispatcher:
    """Queues deliveries and sends them with an httpx client over an injectable transport."""

    def __init__(
        self,
        clock: Clock,
        signer: WebhookSigner,
        faults: Callable[[], FaultConfig],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.clock = clock
        self.signer = signer
        self._faults = faults
        self.transport = transport
        self.pending: list[PendingDelivery] = []
        self.delivered: list[DeliveryResult] = []
        self._task: asyncio.Task[None] | None = None
        self._rng: random.Random | None = None

    def enqueue_v1(self, url: str, resource_type: str, resource_url: str) -> None:
        """Queue a thin V1 delivery."""
        body = json.dumps({"resource_url": resource_url, "resource_type": resource_type})
        self.pending.append(PendingDelivery(url, body.encode(), resource_type, signed=False))

    def enqueue_v2(
        self,
        url: str,
        resource_type: str,
        resource_url: str,
        *,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue a signed V2 delivery (custom ``headers`` from the webhook registration)."""
        payload: dict[str, object] = {"resource_url": resource_url, "resource_type": resource_type}
        if data is not None:
            payload["data"] = data
        body = json.dumps(payload).encode()
        self.pending.append(
            PendingDelivery(url, body, resource_type, signed=True, extra_headers=headers or {})
        )

    def clear(self) -> None:
        """Drop every queued delivery and the delivery log."""
        self.pending.clear()
        self.delivered.clear()

    async def deliver(self) -> list[DeliveryResult]:
        """POST every queued delivery now (with the webhook fault flags); returns the results."""
        batch, self.pending = self.pending, []
        cfg = self._faults()
        if cfg.duplicate_webhooks:
            batch = [d for delivery in batch for d in (delivery, delivery)]
        if cfg.reorder_webhooks:
            if self._rng is None:
                self._rng = random.Random(cfg.seed)
            self._rng.shuffle(batch)
        results: list[DeliveryResult] = []
        if not batch:
            return results
        async with httpx.AsyncClient(transport=self.transport, timeout=10.0) as client:
            for delivery in batch:
                results.append(await self._post(client, delivery))
        self.delivered.extend(results)
        return results

    async def _post(self, client: httpx.AsyncClient, delivery: PendingDelivery) -> DeliveryResult:
        headers = {"content-type": "application/json", "user-agent": "ShipStation-Sandbox"}
        headers.update(delivery.extra_headers)
        if delivery.signed:
            # signed at send time, like the real service: a re-sent duplicate gets a new timestamp
            headers.update(self.signer.signed_headers(delivery.body, self.clock.now()))
        resource_url = str(json.loads(delivery.body)["resource_url"])
        try:
            response = await client.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            return DeliveryResult(
                delivery.url,
                delivery.resource_type,
                resource_url,
                None,
                error=f"{type(exc).__name__}: {exc}",
                headers=headers,
                body=delivery.body,
            )
        return DeliveryResult(
            delivery.url,
            delivery.resource_type,
            resource_url,
            response.status_code,
            headers=headers,
            body=delivery.body,
        )

    def start(self, interval: float = 5.0) -> None:
        """Deliver in the background every ``interval`` seconds of the injected clock."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(interval))

    async def stop(self) -> None:
        """Stop the background delivery task (queued deliveries stay queued)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, interval: float) -> None:
        while True:
            await self.clock.sleep(interval)
            await self.deliver()
