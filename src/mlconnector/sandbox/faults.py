"""Fault injection for the simulators, switchable per test.

Wrap a simulator's ASGI app in :class:`FaultInjector`; change ``injector.config`` at any time.
Faults apply to API requests only (paths under ``exempt_prefixes``, such as the operator surface,
are never disturbed), and the random source is seeded so a failing test replays exactly.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlconnector.clock import Clock


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised inside the ASGI app after a cut-short response: the connection drops mid-answer.

    Over loopback, uvicorn closes the socket and the client sees ``httpx.RemoteProtocolError``;
    in process, ``httpx.ASGITransport`` re-raises this exception, which is that same error type.
    """


@dataclass
class FaultConfig:
    """What to break. Rates are probabilities per request in [0, 1]."""

    error_rate: float = 0.0
    error_status: int = 500
    latency: float = 0.0
    #: the next N requests are answered 429 (a "storm"), with ``storm_retry_after`` seconds
    storm_requests: int = 0
    storm_retry_after: float = 2.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    #: webhook deliveries: send each one twice / shuffle the order of pending deliveries
    duplicate_webhooks: bool = False
    reorder_webhooks: bool = False
    seed: int = 1234
    #: count of faults injected, by kind (read it in tests)
    injected: dict[str, int] = field(default_factory=dict)


#: builds the body and headers of an injected 429 for one request (a simulator's own shape)
RateLimitResponder = Callable[[Scope, FaultConfig], tuple[bytes, list[tuple[bytes, bytes]]]]


class FaultInjector:
    """ASGI middleware that injects the faults described by ``config``.

    ``rate_limit_response``, when given, shapes each injected 429 (body and headers) so a storm
    looks like the simulated service's own limit answer; otherwise ``rate_limit_body`` is sent with
    ``Retry-After`` and ``X-Rate-Limit-Reset``.
    """

    def __init__(
        self,
        app: ASGIApp,
        clock: Clock,
        config: FaultConfig | None = None,
        *,
        exempt_prefixes: tuple[str, ...] = ("/_operator", "/_sandbox"),
        rate_limit_body: bytes = b'{"message":"Too Many Requests"}',
        rate_limit_response: RateLimitResponder | None = None,
    ) -> None:
        self.app = app
        self.clock = clock
        self.config = config or FaultConfig()
        self.exempt_prefixes = exempt_prefixes
        self.rate_limit_body = rate_limit_body
        self.rate_limit_response = rate_limit_response
        self._rng = random.Random(self.config.seed)

    def configure(self, **changes: object) -> FaultConfig:
        """Replace the fault configuration (keyword arguments of :class:`FaultConfig`)."""
        self.config = FaultConfig(**changes)  # type: ignore[arg-type]
        self._rng = random.Random(self.config.seed)
        return self.config

    def _count(self, kind: str) -> None:
        self.config.injected[kind] = self.config.injected.get(kind, 0) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        cfg = self.config
        if cfg.latency > 0:
            await self.clock.sleep(cfg.latency)
        if cfg.storm_requests > 0:
            cfg.storm_requests -= 1
            self._count("storm")
            if self.rate_limit_response is not None:
                body, headers = self.rate_limit_response(scope, cfg)
                await _respond(send, 429, body, headers)
                return
            await _respond(
                send,
                429,
                self.rate_limit_body,
                [
                    (b"retry-after", str(int(cfg.storm_retry_after)).encode()),
                    (b"x-rate-limit-reset", str(int(cfg.storm_retry_after)).encode()),
                ],
            )
            return
        if cfg.drop_rate and self._rng.random() < cfg.drop_rate:
            self._count("drop")
            # Start the answer, then cut it: raised before a response start, uvicorn would turn
            # the exception into a clean HTTP 500 instead of dropping the connection.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"', "more_body": True})
            raise DroppedConnection("connection dropped by fault injection")
        if cfg.error_rate and self._rng.random() < cfg.error_rate:
            self._count("error")
            body = json.dumps({"message": "Injected server error"}).encode()
            await _respond(send, cfg.error_status, body, [])
            return
        if cfg.malformed_rate and self._rng.random() < cfg.malformed_rate:
            self._count("malformed")
            await _respond(send, 200, b'{"orders": [{"orderId": 1, "ord', [])
            return
        await self.app(scope, receive, send)


async def _respond(
    send: Send, status: int, body: bytes, extra_headers: list[tuple[bytes, bytes]]
) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra_headers,
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
