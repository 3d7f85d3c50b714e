"""Serving the app: uvicorn settings from ``[web]`` and the read timeouts uvicorn lacks.

uvicorn limits the header size (``h11_max_incomplete_event_size``), concurrent connections
(``limit_concurrency``, answered ``503``) and idle keep-alive time, but a client that sends its
headers (or its body) one byte at a time holds a connection forever. :func:`guarded_protocol`
builds an h11 protocol that closes a connection when a request's headers are not complete within
``header_timeout_seconds`` of its first byte (or of the connection being opened), or its body not
within ``body_timeout_seconds`` of the headers.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from mlconnector.config import WebSettings


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header-read and a body-read deadline."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_too_big(data):
            # h11's own limit only applies while a head is incomplete; this covers one that
            # arrives whole
            self.send_400_response(f"Request headers over {self.max_header_bytes} bytes.")
            return
        super().data_received(data)
        self._arm()

    def _head_too_big(self, data: bytes) -> bool:
        buffered = self.conn.trailing_data[0] + data
        end = buffered.find(b"\r\n\r\n")
        return (end if end >= 0 else len(buffered)) > self.max_header_bytes

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # idle now: the keep-alive timeout governs until the next request's bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        """Start (or keep) the deadline of what the client still has to send."""
        state = self.conn.their_state
        if state is h11.IDLE and self.conn.trailing_data[0]:
            wanted, timeout = "headers", self.header_timeout  # part of a request line/headers
        elif state is h11.IDLE and self.timeout_keep_alive_task is None and self.cycle is None:
            wanted, timeout = "headers", self.header_timeout  # a new connection, nothing sent
        elif state is h11.SEND_BODY:
            wanted, timeout = "body", self.body_timeout
        else:
            self._disarm()  # complete request, or idle between requests (keep-alive timer)
            return
        if self._deadline is not None and self._waiting_for == wanted:
            return  # the deadline runs from the first byte, not from the latest one
        self._disarm()
        self._waiting_for = wanted
        self._deadline = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info(
                "closing a connection from %s: request %s not received within the timeout",
                self.client[0] if self.client else "?",
                self._waiting_for,
            )
            self.transport.close()


def guarded_protocol(settings: WebSettings) -> type[GuardedH11Protocol]:
    """The protocol class for these settings (uvicorn instantiates it per connection)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "max_header_bytes": settings.max_header_bytes,
        },
    )


def server_config(app: ASGIApp, settings: WebSettings) -> uvicorn.Config:
    """The uvicorn settings to serve the app with: ``[web]`` host/port and limits, lifespan on,
    **no access log** (the webhook path carries the token), uvicorn's proxy-header handling off
    (:mod:`mlconnector.web.security` trusts only ``[web] trusted_proxies``)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings),
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
        timeout_keep_alive=max(1, math.ceil(settings.keep_alive_seconds)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections,
    )
