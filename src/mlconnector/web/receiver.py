"""The ShipStation webhook receiver: ``POST /webhooks/shipstation/{connection}/{token}``.

A delivery goes through these steps, in this order, and stops at the first that fails:

1. the connection must exist in the store → else **404**;
2. the path token must equal the connection's ``webhook_token`` credential, compared in constant
   time (:func:`hmac.compare_digest`) → else **404**, the same answer as step 1, so a caller cannot
   tell a wrong token from a wrong connection (and both cost one read and one decryption);
2b. more than ``[web] inbox_max_pending`` deliveries of the connection wait in the inbox →
   **503** with ``Retry-After: [web] inbox_retry_after_seconds``, before the body is read:
   ShipStation delivers again later, and nothing already accepted is dropped (the count is read
   from the store only near the cap or every ``backlog_ttl`` seconds, :mod:`.backlog`);
3. the body is read incrementally and refused past ``max_body_bytes`` → **413** (a declared
   ``Content-Length`` above the cap is refused before anything is read);
4. :func:`~mlconnector.shipstation.parse_delivery` → **400** for anything malformed;
5. ``resource_url`` must be allowed for the connection (its configured V1/V2 base URLs, and https
   hosts matching ``allowed_webhook_hosts``) → a foreign URL is audited as ``rejected`` and
   answered **400**; nothing is fetched, here or later. This runs before the signature check so a
   forged pointer never causes any outbound request, not even a key fetch;
6. V2 deliveries (``*_V2`` resource types): the ``x-shipengine-*`` signature and timestamp are
   verified with :class:`~mlconnector.shipstation.SignatureVerifier` → missing headers **404**
   (ShipStation's advice), bad signature or stale timestamp **400**;
7. the delivery is persisted to the inbox (de-duplicated on the body) and only then answered
   **200**; ``on_webhook(connection)`` nudges the engine to process the inbox soon. Concurrent
   deliveries share one transaction (:mod:`.group_commit`); a delivery that could not be stored
   is answered **503** with ``Retry-After`` (ShipStation delivers it again) and nudges nothing.

The token of step 2 is read through a short-lived cache (:mod:`.tokens`, ``token_ttl``, 5 s).

The token is part of the URL path: never log the path, and run uvicorn with ``access_log=False``.
Only the headers in :data:`KEPT_HEADERS` are stored, so a custom header carrying a secret (V2
webhook registrations may add any header) never reaches the database.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from mlconnector.clock import Clock
from mlconnector.config import Config, ShipStationSettings
from mlconnector.errors import ConfigError, ConnectorError, ForeignURLError, SignatureError
from mlconnector.http import RetryPolicy
from mlconnector.shipstation import (
    DEFAULT_SIGNED_LAYOUT,
    AllowList,
    MalformedDeliveryError,
    MissingSignatureError,
    ShipStationV2Client,
    SignatureVerifier,
    WebhookDelivery,
    parse_delivery,
)
from mlconnector.store import AuditEvent, CredentialKind, Store
from mlconnector.web.backlog import DEFAULT_TTL as BACKLOG_TTL
from mlconnector.web.backlog import PendingCount
from mlconnector.web.group_commit import DEFAULT_MAX_BATCH, DEFAULT_WINDOW, GroupCommit
from mlconnector.web.tokens import DEFAULT_TTL, TokenCache

log = logging.getLogger("mlconnector.web.receiver")

DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: a key fetch happens while ShipStation waits for an answer: one quick retry, then 503 (it
#: re-delivers an unacknowledged webhook later)
KEY_FETCH_RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_rate_limit_waits=1)

#: the only request headers persisted with a delivery (lower case)
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "user-agent",
        "x-shipengine-rsa-sha256-key-id",
        "x-shipengine-rsa-sha256-signature",
        "x-shipengine-timestamp",
    }
)

#: ``key_source(connection)`` → the RSA keys signing that connection's V2 deliveries, by key id
KeySource = Callable[[str], Awaitable[Mapping[str, rsa.RSAPublicKey]]]
#: ``http_factory(service, base_url)``, as in :mod:`mlconnector.sync.runtime`
HttpFactory = Callable[[str, str], httpx.AsyncClient]
#: called with the connection name after a new delivery is stored; may return an awaitable
OnWebhook = Callable[[str], object]


@dataclass(frozen=True)
class ReceiverOptions:
    """Tunables of the receiver (defaults suit production)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: seconds a V2 timestamp may be from the clock, either side
    signature_tolerance: float = 300.0
    #: the V2 signed-string layout (unconfirmed upstream, hence a setting)
    signed_layout: str = DEFAULT_SIGNED_LAYOUT
    #: minimum seconds between two key refreshes caused by unknown key ids
    key_refresh_interval: float = 60.0
    #: where V2 signing keys come from; ``None`` fetches them through the V2 client of the
    #: connection (its ``ss_v2_key`` credential and configured ``v2_base_url``)
    key_source: KeySource | None = None
    #: seconds a connection's webhook token is remembered (a changed token applies within it)
    token_ttl: float = DEFAULT_TTL
    #: group commit: seconds the next batch waits for more deliveries while busy (a delivery
    #: arriving while none is committing waits for nothing), and how many deliveries one
    #: transaction holds at most
    group_commit_window: float = DEFAULT_WINDOW
    group_commit_max: int = DEFAULT_MAX_BATCH
    #: seconds a connection's inbox count is trusted while well below ``inbox_max_pending``
    #: (:mod:`.backlog`)
    backlog_ttl: float = BACKLOG_TTL


def _not_found() -> Response:
    # byte-identical to Starlette's own 404, so a wrong token looks like a wrong address
    return PlainTextResponse("Not Found", status_code=404)


def _bad_request(reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=400)


class BodyTooLargeError(Exception):
    """The request body went past the cap."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk; :class:`BodyTooLargeError` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def allow_list_for(settings: ShipStationSettings) -> AllowList:
    """The addresses a connection's credentials may be sent to when following a delivery: its
    V1/V2 base URLs, and https on port 443 to hosts matching ``allowed_webhook_hosts``."""
    patterns = [f"(?:{p})" for p in settings.allowed_webhook_hosts]
    production = re.compile("^(?:" + "|".join(patterns) + ")$") if patterns else None
    return AllowList.build([settings.v1_base_url, settings.v2_base_url], production_host=production)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers worth storing with a delivery (see :data:`KEPT_HEADERS`)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}


@dataclass
class WebhookReceiver:
    """Handles deliveries for every connection of one store; build one per app."""

    store: Store
    config: Config
    clock: Clock
    options: ReceiverOptions = field(default_factory=ReceiverOptions)
    http_factory: HttpFactory | None = None
    on_webhook: OnWebhook | None = None
    _verifiers: dict[str, SignatureVerifier] = field(default_factory=dict)
    _http: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _allow_lists: dict[str, AllowList] = field(default_factory=dict)
    _token_cache: TokenCache | None = None
    _group_commit: GroupCommit | None = None
    _pending: PendingCount | None = None

    # --- the endpoint --------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        """The Starlette endpoint."""
        name = str(request.path_params["connection"])
        token = str(request.path_params["token"])
        if not await self._authorised(name, token):
            log.info("webhook refused for connection %r: unknown connection or token", name[:40])
            return _not_found()
        busy = await self._backlog_full(name)
        if busy is not None:
            return busy
        try:
            body = await read_capped(request, self.options.max_body_bytes)
        except BodyTooLargeError:
            log.warning(
                "webhook for %r refused: body over %d bytes", name, self.options.max_body_bytes
            )
            return PlainTextResponse("Payload Too Large", status_code=413)
        except ClientDisconnect:
            return PlainTextResponse("Client Closed Request", status_code=400)
        try:
            delivery = parse_delivery(body, max_bytes=self.options.max_body_bytes)
        except MalformedDeliveryError as exc:
            log.warning("webhook for %r refused: %s", name, exc.message)
            return _bad_request("malformed delivery")
        try:
            self._allow_list(name).check(delivery.resource_url)
        except ForeignURLError as exc:
            await self._audit_rejected(name, delivery, "foreign resource_url", exc)
            return _bad_request("resource_url is not an allowed ShipStation address")
        if delivery.is_v2:
            refusal = await self._verify_v2(name, delivery, request.headers, body)
            if refusal is not None:
                return refusal
        try:
            received = await self._inbox().receive(name, body, kept_headers(request.headers))
        except Exception:  # not stored, so not acknowledged: ShipStation delivers it again
            log.exception("webhook for %r not stored; answered 503", name)
            return PlainTextResponse(
                "Service Unavailable", status_code=503, headers={"Retry-After": "5"}
            )
        if received.created:
            self._backlog().stored(name)
            await self._nudge(name)
        return JSONResponse(
            {"status": "ok", "id": received.item.id, "duplicate": not received.created}
        )

    # --- the steps -----------------------------------------------------------------------------
    async def _backlog_full(self, name: str) -> Response | None:
        """``503`` + ``Retry-After`` while ``[web] inbox_max_pending`` deliveries of this
        connection wait: ShipStation delivers again later, so nothing is lost, and nothing
        already accepted is ever dropped (the check is before the body is even read)."""
        web = self.config.web
        pending = await self._backlog().pending(name)
        if pending < web.inbox_max_pending:
            return None
        log.warning(
            "webhook for %r deferred: %d deliveries wait in the inbox (inbox_max_pending %d)",
            name, pending, web.inbox_max_pending,
        )  # fmt: skip
        return PlainTextResponse(
            "Service Unavailable: the inbox of this connection is full; deliver again later.",
            status_code=503,
            headers={"Retry-After": str(web.inbox_retry_after_seconds)},
        )

    async def _authorised(self, name: str, token: str) -> bool:
        """Known connection and the right token. A wrong token and an unknown connection take the
        same path through ``compare_digest`` so neither is cheaper to probe."""
        expected = await self._tokens().expected(name)
        # a connection without a token accepts nothing: compare against a value no path can equal
        reference = expected.encode() if expected else b"\x00no-token"
        matches = hmac.compare_digest(token.encode(), reference)
        return expected is not None and matches

    def _tokens(self) -> TokenCache:
        if self._token_cache is None:
            self._token_cache = TokenCache(self.store, self.clock, ttl=self.options.token_ttl)
        return self._token_cache

    def _backlog(self) -> PendingCount:
        if self._pending is None:
            self._pending = PendingCount(
                self.store,
                self.clock,
                self.config.web.inbox_max_pending,
                ttl=self.options.backlog_ttl,
            )
        return self._pending

    def _inbox(self) -> GroupCommit:
        if self._group_commit is None:
            self._group_commit = GroupCommit(
                self.store,
                self.clock,
                window=self.options.group_commit_window,
                max_batch=self.options.group_commit_max,
            )
        return self._group_commit

    def _allow_list(self, name: str) -> AllowList:
        # built once per connection (the config does not change under a running app): building
        # parses both base URLs and compiles the host pattern
        allow = self._allow_lists.get(name)
        if allow is None:
            conn = self.config.connections.get(name)
            settings = conn.shipstation if conn else ShipStationSettings()
            allow = self._allow_lists[name] = allow_list_for(settings)
        return allow

    async def _audit_rejected(
        self, name: str, delivery: WebhookDelivery, reason: str, error: ConnectorError
    ) -> None:
        """Record a delivery that came with the right token but was refused: either a leaked
        token or a setting to fix (e.g. the signed layout), so an operator should see it."""
        log.warning("webhook for %r rejected (%s): %s", name, reason, error.message)
        await self.store.append_audit(
            AuditEvent(
                connection=name,
                flow="webhook",
                direction="ss->connector",
                entity="webhook",
                action="receive",
                outcome="rejected",
                details={
                    "reason": reason,
                    "resource_type": delivery.resource_type,
                    "resource_url": delivery.resource_url[:300],
                    "error": error.message,
                },
            )
        )

    async def _verify_v2(
        self, name: str, delivery: WebhookDelivery, headers: Mapping[str, str], body: bytes
    ) -> Response | None:
        """``None`` when the signature holds; otherwise the answer to give."""
        try:
            # one verification at a time per connection: while the first delivery fetches the
            # keys, a concurrent one would otherwise find the refresh spent and be refused
            async with self._locks.setdefault(name, asyncio.Lock()):
                await self._verifier(name).verify(headers, body)
        except MissingSignatureError as exc:
            await self._audit_rejected(name, delivery, "V2 signature headers missing", exc)
            return _not_found()
        except SignatureError as exc:
            await self._audit_rejected(name, delivery, "V2 signature does not verify", exc)
            return _bad_request("signature or timestamp does not verify")
        except ConnectorError as exc:
            # the keys could not be fetched (V2 down, no V2 key): not the sender's fault, and
            # ShipStation retries a delivery that was not acknowledged
            log.warning("V2 webhook for %r not verified, keys unavailable: %s", name, exc.message)
            return PlainTextResponse("Service Unavailable", status_code=503)
        return None

    def _verifier(self, name: str) -> SignatureVerifier:
        verifier = self._verifiers.get(name)
        if verifier is None:
            source = self.options.key_source or self._fetch_keys

            async def fetch() -> Mapping[str, rsa.RSAPublicKey]:
                return await source(name)

            verifier = SignatureVerifier(
                self.clock,
                fetch_keys=fetch,
                tolerance=self.options.signature_tolerance,
                signed_layout=self.options.signed_layout,
                refresh_interval=self.options.key_refresh_interval,
            )
            self._verifiers[name] = verifier
        return verifier

    async def _fetch_keys(self, name: str) -> Mapping[str, rsa.RSAPublicKey]:
        """Default key source: the connection's V2 client fetches the published JWKS."""
        api_key = await self.store.get_credential(name, CredentialKind.SS_V2_KEY)
        if not api_key:
            raise ConfigError(
                f"connection {name!r} has no {CredentialKind.SS_V2_KEY} credential to fetch the "
                "V2 webhook signing keys with",
                record=name,
                hint=f"run `mlconnector credentials set shipstation --connection {name}` (v2_key)",
            )
        conn = self.config.connections.get(name)
        settings = conn.shipstation if conn else ShipStationSettings()
        base_url = settings.v2_base_url
        client = ShipStationV2Client(
            self._client("shipstation-v2", base_url),
            api_key=api_key,
            clock=self.clock,
            base_url=base_url,
            webhook_keys_url=settings.effective_webhook_keys_url,
            connection=name,
            retry=KEY_FETCH_RETRY,
            timeout=10.0,
        )
        return await client.fetch_webhook_keys()

    def _client(self, service: str, base_url: str) -> httpx.AsyncClient:
        client = self._http.get(base_url)
        if client is None:
            factory = self.http_factory or (lambda _s, _b: httpx.AsyncClient(timeout=30.0))
            client = self._http[base_url] = factory(service, base_url)
        return client

    async def _nudge(self, name: str) -> None:
        if self.on_webhook is None:
            return
        try:
            result: Any = self.on_webhook(name)
            if inspect.isawaitable(result):
                await result
        except Exception:
            # the delivery is safely stored; a failed nudge only delays processing to the next poll
            log.exception("on_webhook callback failed for %r", name)

    async def aclose(self) -> None:
        """Stop the token and inbox-count reads in flight; close the HTTP client opened for key
        fetches, if any."""
        for cache in (self._token_cache, self._pending):
            if cache is not None:
                await cache.aclose()
        clients, self._http = self._http, {}
        for client in clients.values():
            await client.aclose()
