"""The web app factory: webhook receiver, operator UI, ``/healthz``, ``/livez`` and ``/metrics``.

Nothing is registered on globals: :func:`create_web_app` takes every dependency and returns a new
Starlette app. Requests pass, outermost first: :class:`SecurityHeaders`, the ``Host`` allow-list
and trusted-proxy handling (:mod:`mlconnector.web.security`), then login, CSRF and roles
(:mod:`mlconnector.web.auth`) before any UI route. ``[web] host`` still defaults to
``127.0.0.1``; expose only ``/webhooks/`` to ShipStation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlconnector.clock import Clock
from mlconnector.config import Config
from mlconnector.store import Store
from mlconnector.sync.outbox import replay as outbox_replay
from mlconnector.web.auth import AuthGuard, WebAuth, install_template_globals
from mlconnector.web.metrics import (
    Metrics,
    counting_deliveries,
    counting_replays,
    health_endpoint,
    livez,
    metrics_endpoint,
)
from mlconnector.web.receiver import HttpFactory, OnWebhook, ReceiverOptions, WebhookReceiver
from mlconnector.web.security import HostGuard, HostPolicy
from mlconnector.web.ui import FlowStates, OperatorUI, ReplayFn

STATIC_DIR = Path(__file__).parent / "static"

#: sent with every response: no framing (a framed page could be clicked into a same-origin
#: Replay, which the Origin check cannot tell apart), no foreign scripts/styles, no sniffing
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Pure ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_web_app(
    *,
    store: Store,
    config: Config,
    clock: Clock,
    receiver_options: ReceiverOptions | None = None,
    http_factory: HttpFactory | None = None,
    replay: ReplayFn = outbox_replay,
    on_webhook: OnWebhook | None = None,
    flow_states: FlowStates | None = None,
    debug: bool = False,
    metrics: Metrics | None = None,
) -> Starlette:
    """Build the web app.

    ``store`` is used, not owned (the caller closes it). ``http_factory(service, base_url)`` makes
    the HTTP client used to fetch V2 webhook signing keys (default: a plain client); it is opened on
    first use and closed by the app's lifespan (or :func:`close_web_app` when served without one).
    ``replay`` is the outbox replay behind the UI's Replay buttons; ``on_webhook(connection)`` is
    called after a new delivery is stored, to nudge the engine; ``flow_states(connection)``
    tells the dashboard which flows the engine is running or has queued. ``metrics`` is the
    process's (shared with its engine, so one ``/metrics`` shows both); by default the app makes
    its own.
    """
    metrics = metrics or Metrics()
    receiver = WebhookReceiver(
        store=store,
        config=config,
        clock=clock,
        options=receiver_options or ReceiverOptions(),
        http_factory=http_factory,
        on_webhook=on_webhook,
    )
    ui = OperatorUI(
        store=store,
        config=config,
        clock=clock,
        replay=counting_replays(replay, metrics),
        flow_states=flow_states,
    )
    install_template_globals(ui.templates.env)
    policy = HostPolicy.from_config(config)
    auth = WebAuth(store=store, config=config, clock=clock, policy=policy, templates=ui.templates)
    routes: Sequence[BaseRoute] = [
        Route(
            "/webhooks/shipstation/{connection}/{token}",
            counting_deliveries(receiver.handle, metrics, lambda n: n in config.connections),
            methods=["POST"],
            name="shipstation_webhook",
        ),
        Route("/healthz", health_endpoint(store, clock), methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/metrics", metrics_endpoint(store, metrics), methods=["GET"]),
        *auth.routes(),
        *ui.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await receiver.aclose()

    app = Starlette(
        debug=debug,
        routes=list(routes),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(HostGuard, policy=policy),
            Middleware(AuthGuard, auth=auth, metrics_token=config.web.metrics_token),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    app.state.ui = ui
    app.state.metrics = metrics
    app.state.auth = auth
    app.state.host_policy = policy
    return app


async def close_web_app(app: Starlette) -> None:
    """Release what the app opened, for servers that do not run the lifespan."""
    receiver: Any = app.state.receiver
    await receiver.aclose()
