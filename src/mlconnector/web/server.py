"""Serving the app: uvicorn settings from ``[web]`` and the read timeouts uvicorn lacks.

uvicorn limits concurrent connections (``limit_concurrency``, answered ``503``) and idle
keep-alive time, but a client that sends its headers (or its body) one byte at a time holds a
connection forever. :func:`guarded_protocol` builds a protocol that closes a connection when a
request's headers are not complete within ``header_timeout_seconds`` of its first byte (or of the
connection being opened), or its body not within ``body_timeout_seconds`` of the headers, and
answers ``400`` to a request head over ``max_header_bytes``.

The protocol is uvicorn's httptools one (:class:`GuardedHttpToolsProtocol`, the C parser
llhttp): it costs about half the CPU per request of the pure-Python h11 parser, which bounds
how many webhook deliveries one core takes. :class:`GuardedH11Protocol` has the same guards on
h11 (``server_config(..., parser="h11")``). :func:`event_loop_factory` gives uvloop's loop where
it is installed (the commands run on it), else asyncio's.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class _HeadTooBigError(Exception):
    """Raised from a parser callback: the request head went past ``max_header_bytes``."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read and a body-read deadline and a cap on
    the request head (llhttp has none of its own and buffers an unfinished header)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: object = None
        #: the next bytes belong to a request head; how many of that head came so far (and
        #: its last 3 bytes, to find a ``\r\n\r\n`` split across reads)
        self._head_open = True
        self._head_seen = 0
        self._head_tail = b""
        #: head bytes the parser handed to the callbacks (a pipelined head in the same read)
        self._head_parsed = 0
        self._head_refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers", self.header_timeout)  # a new connection, nothing sent yet

    def data_received(self, data: bytes) -> None:
        if self._head_open and self._head_too_big(data):
            self._refuse_head()
            return
        super().data_received(data)

    def _head_too_big(self, data: bytes) -> bool:
        joined = self._head_tail + data
        end = joined.find(b"\r\n\r\n")
        if end >= 0:
            return self._head_seen - len(self._head_tail) + end > self.max_header_bytes
        self._head_seen += len(data)
        self._head_tail = joined[-3:]
        return self._head_seen > self.max_header_bytes

    def _refuse_head(self) -> None:
        self._head_refused = True
        self.send_400_response(f"Request headers over {self.max_header_bytes} bytes.")

    def send_400_response(self, msg: str) -> None:
        if self._head_refused:  # raised from a callback: uvicorn says "Invalid HTTP request"
            msg = f"Request headers over {self.max_header_bytes} bytes."
        self._disarm()
        super().send_400_response(msg)

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_parsed = 0
        self._arm("headers", self.header_timeout)  # from the first byte of the head

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url) + 16)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.max_header_bytes:
            self._head_refused = True
            raise _HeadTooBigError

    def on_headers_complete(self) -> None:
        self._head_open, self._head_seen, self._head_tail = False, 0, b""
        super().on_headers_complete()
        self._arm("body", self.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True  # whatever comes next starts a new request
        self._disarm()  # complete: the app runs; then the keep-alive timer governs

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, wanted: str, timeout: float) -> None:
        """Start (or keep) the deadline of what the client still has to send."""
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


def guarded_protocol(settings: WebSettings, *, parser: str | None = None) -> type[asyncio.Protocol]:
    """The protocol class for these settings (uvicorn instantiates it per connection):
    httptools, or h11 with ``parser="h11"``."""
    chosen = parser or "httptools"
    if chosen == "httptools":
        base: type[asyncio.Protocol] = GuardedHttpToolsProtocol
    elif chosen == "h11":
        base = GuardedH11Protocol
    else:
        raise ValueError(f"unknown HTTP parser {parser!r}")
    return type(
        base.__name__,
        (base,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "max_header_bytes": settings.max_header_bytes,
        },
    )


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop where it is installed (less CPU per request and per database
    round trip), else asyncio's default (uvloop is not made for Windows); for
    ``asyncio.Runner(loop_factory=...)``."""
    if importlib.util.find_spec("uvloop") is None:
        return asyncio.new_event_loop
    import uvloop

    return uvloop.new_event_loop


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive to the garbage collector's permanent
    generation (:func:`gc.freeze`), to call when the server has started.

    What start-up built (modules, the app, the engine, the pools: ~100,000 objects) is not
    garbage, yet every full collection walked it: 70-100 ms with the event loop stopped, once
    per ~2,000 deliveries at 16 concurrent ones, holding every delivery in flight (the largest
    latency of a benchmark run). Frozen, a full collection walks only what was made since."""
    gc.collect()
    gc.freeze()


def server_config(
    app: ASGIApp, settings: WebSettings, *, parser: str | None = None
) -> uvicorn.Config:
    """The uvicorn settings to serve the app with: ``[web]`` host/port and limits, lifespan on,
    **no access log** (the webhook path carries the token), uvicorn's proxy-header handling off
    (:mod:`mlconnector.web.security` trusts only ``[web] trusted_proxies``)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings, parser=parser),
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
        timeout_keep_alive=max(1, math.ceil(settings.keep_alive_seconds)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections,
    )
