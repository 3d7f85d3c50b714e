"""The operator UI: server-rendered pages that work without JavaScript.

Pages: ``/`` (dashboard), ``/operations`` (filter, Replay), ``/audit`` (search),
``/connections/{name}`` (settings, masked credentials, links). Every value goes through Jinja's
autoescaping. State-changing requests are ``POST`` forms guarded by a same-origin check (the
``Origin`` header, or ``Referer`` when a browser sends no ``Origin``, must name this host): the UI
keeps no session, so a stateless check keeps several web nodes interchangeable. The outcome of an
action comes back as a one-shot flash cookie after a redirect (post/redirect/get).

There is no login: the app binds to 127.0.0.1 by default; see :mod:`mlconnector.web.app`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from mlconnector.clock import Clock
from mlconnector.config import Config
from mlconnector.store import AuditQuery, InboxItem, Operation, OperationState, Store
from mlconnector.sync.runs import LAST_RUN_SUFFIX, LastRun, last_runs

TEMPLATES_DIR = Path(__file__).parent / "templates"
FLASH_COOKIE = "mlc_flash"
PAGE_SIZE = 200
RECENT_WEBHOOKS = 25
MAX_FORM_BYTES = 4096
#: the audit search fields offered by the form (AuditQuery attribute → label)
AUDIT_FIELDS = {
    "connection": "Connection",
    "plex_order_id": "Plex order id",
    "order_key": "orderKey",
    "ss_order_number": "ShipStation order number",
    "ss_order_id": "ShipStation orderId",
    "shipment_id": "Shipment id",
}

#: the outbox replay behind the Replay buttons: ``replay(store, ids, connection=..., states=...)``
ReplayFn = Callable[..., Awaitable[list[Operation]]]


def templates() -> Jinja2Templates:
    """The packaged templates, autoescaping everything (not only ``.html``)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    # readable JSON for audit details; autoescaping then makes any markup in it inert text
    # (Jinja's ``tojson`` is meant for <script> blocks and shows \u003c escapes instead)
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, default=str)
    return Jinja2Templates(env=env)


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from a page of this host (CSRF defence)."""
    source = request.headers.get("origin")
    if source is None:
        # older browsers omit Origin on some same-origin POSTs; the Referer then decides
        source = request.headers.get("referer")
    if not source or source == "null":  # "null": sandboxed frames, data: URLs, privacy modes
        return False
    parsed = urllib.parse.urlsplit(source)
    host = request.headers.get("host", "")
    return bool(parsed.scheme in ("http", "https") and parsed.netloc and parsed.netloc == host)


def _text(value: Any, limit: int = 120) -> str | None:
    """A trimmed query parameter, ``None`` when empty."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def _state(value: str | None) -> OperationState | None:
    try:
        return OperationState(value) if value else None
    except ValueError:
        return None


@dataclass
class FlowRow:
    """One line of the dashboard's flow table."""

    flow: str
    cursor: str | None
    cursor_updated: str | None
    lease_owner: str | None
    lease_expires: str | None
    lease_live: bool
    last_run: LastRun | None


@dataclass
class WebhookRow:
    """One received delivery as the connection page lists it."""

    id: int
    received: str
    resource_type: str
    resource_url: str
    processed: str | None
    outcome: str | None
    attempts: int

    @classmethod
    def of(cls, item: InboxItem) -> WebhookRow:
        """Read the pointer from the stored body (already validated when it was received)."""
        try:
            body = json.loads(item.body)
        except ValueError:
            body = {}
        pointer = body if isinstance(body, dict) else {}
        return cls(
            id=item.id,
            received=_when(item.received_at),
            resource_type=str(pointer.get("resource_type", "?")),
            resource_url=str(pointer.get("resource_url", ""))[:300],
            processed=_when(item.processed_at) if item.processed_at else None,
            outcome=item.outcome,
            attempts=item.attempts,
        )


async def flow_rows(store: Store, connection: str, now: datetime) -> list[FlowRow]:
    """Every flow that has a cursor, a lease or a recorded run, by name."""
    cursors = {
        c.flow: c
        for c in await store.list_cursors(connection)
        if not c.flow.endswith(LAST_RUN_SUFFIX)  # the engine's run records, shown as last_run
    }
    leases = {lease.flow: lease for lease in await store.list_leases(connection=connection)}
    runs = await last_runs(store, connection)
    rows = []
    for flow in sorted(set(cursors) | set(leases) | set(runs)):
        cursor, lease = cursors.get(flow), leases.get(flow)
        rows.append(
            FlowRow(
                flow=flow,
                cursor=cursor.value if cursor else None,
                cursor_updated=_when(cursor.updated_at) if cursor else None,
                lease_owner=lease.owner if lease else None,
                lease_expires=_when(lease.expires_at) if lease else None,
                lease_live=bool(lease and lease.expires_at > now),
                last_run=runs.get(flow),
            )
        )
    return rows


class OperatorUI:
    """The UI routes over one store; build one per app."""

    def __init__(self, *, store: Store, config: Config, clock: Clock, replay: ReplayFn) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.replay = replay
        self.templates = templates()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.dashboard, methods=["GET"], name="dashboard"),
            Route("/operations", self.operations, methods=["GET"], name="operations"),
            Route("/operations/replay", self.replay_many, methods=["POST"], name="replay_many"),
            Route(
                "/operations/{op_id:int}/replay",
                self.replay_one,
                methods=["POST"],
                name="replay_one",
            ),
            Route("/audit", self.audit, methods=["GET"], name="audit"),
            Route("/connections/{name}", self.connection, methods=["GET"], name="connection"),
        ]

    # --- rendering -----------------------------------------------------------------------------
    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """Render ``name`` with the common context; consume the flash cookie."""
        flash = request.cookies.get(FLASH_COOKIE)
        context.setdefault("title", "")
        context["flash"] = urllib.parse.unquote(flash)[:300] if flash else None
        context["now"] = self.clock.now()
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def redirect(self, url: URL | str, message: str) -> Response:
        """303 to ``url`` carrying ``message`` as a one-shot flash."""
        response = RedirectResponse(str(url), status_code=303)
        response.set_cookie(
            FLASH_COOKIE,
            urllib.parse.quote(message[:300]),
            path="/",
            httponly=True,
            samesite="strict",
        )
        return response

    # --- pages ---------------------------------------------------------------------------------
    async def dashboard(self, request: Request) -> Response:
        """Connections with their flows (cursor, lease), operation counts and inbox backlog."""
        rows = []
        now = self.clock.now()
        backlog = await self.store.count_pending_webhooks()
        for conn in await self.store.list_connections():
            flows = await flow_rows(self.store, conn.name, now)
            oldest = await self.store.pending_webhooks(connection=conn.name, limit=1)
            rows.append(
                {
                    "connection": conn,
                    "flows": flows,
                    "counts": await self.store.count_operations(connection=conn.name),
                    "backlog": backlog.get(conn.name, 0),
                    "oldest_pending": _when(oldest[0].received_at) if oldest else None,
                }
            )
        return self.render(
            request, "dashboard.html", title="Dashboard", rows=rows, states=list(OperationState)
        )

    async def operations(self, request: Request) -> Response:
        """Operations, newest change first, filtered by connection and state."""
        connection = _text(request.query_params.get("connection"))
        state = _state(_text(request.query_params.get("state")))
        ops = await self.store.list_operations(
            connection=connection, states=[state] if state else None, limit=PAGE_SIZE
        )
        names = [c.name for c in await self.store.list_connections()]
        dead = (await self.store.count_operations(connection=connection))[OperationState.DEAD]
        return self.render(
            request,
            "operations.html",
            title="Operations",
            ops=ops,
            connection=connection,
            state=state.value if state else None,
            states=list(OperationState),
            names=names,
            replayable={OperationState.FAILED, OperationState.DEAD},
            dead=dead,
            page_size=PAGE_SIZE,
        )

    async def audit(self, request: Request) -> Response:
        """Audit events matching every filled field, newest first."""
        filters = {name: _text(request.query_params.get(name)) for name in AUDIT_FIELDS}
        searched = any(filters.values())
        events = await self.store.search_audit(
            AuditQuery(
                connection=filters["connection"],
                plex_order_id=filters["plex_order_id"],
                order_key=filters["order_key"],
                ss_order_number=filters["ss_order_number"],
                ss_order_id=filters["ss_order_id"],
                shipment_id=filters["shipment_id"],
                limit=PAGE_SIZE,
            )
        )
        return self.render(
            request,
            "audit.html",
            title="Audit",
            events=events,
            filters=filters,
            fields=AUDIT_FIELDS,
            searched=searched,
            page_size=PAGE_SIZE,
        )

    async def connection(self, request: Request) -> Response:
        """One connection: settings summary, masked credentials, webhook URL, recent webhook
        deliveries, links."""
        name = str(request.path_params["name"])
        conn = await self.store.get_connection(name)
        if conn is None:
            return self.render(
                request, "not_found.html", status=404, title="Not found", what=f"connection {name}"
            )
        settings = self.config.connections.get(name)
        base = self.config.public_base_url
        webhook_url = f"{base}/webhooks/shipstation/{name}/…" if base else None
        return self.render(
            request,
            "connection.html",
            title=f"Connection {name}",
            conn=conn,
            settings=settings,
            credentials=await self.store.list_credentials_masked(name),
            links=await self.store.list_links(name, limit=PAGE_SIZE),
            counts=await self.store.count_operations(connection=name),
            webhooks=[
                WebhookRow.of(item)
                for item in await self.store.list_webhooks(connection=name, limit=RECENT_WEBHOOKS)
            ],
            webhook_url=webhook_url,
            page_size=PAGE_SIZE,
        )

    # --- actions -------------------------------------------------------------------------------
    async def replay_one(self, request: Request) -> Response:
        """Replay one failed/dead operation, then back to the list it was clicked from."""
        if not same_origin(request):
            return _forbidden()
        op_id = int(request.path_params["op_id"])
        form = await read_form(request)
        back = _back(request, form.get("back"))
        replayed = await self.replay(self.store, [op_id])
        if replayed:
            return self.redirect(back, f"Operation {op_id} replayed: it is pending again.")
        return self.redirect(
            back, f"Operation {op_id} was not replayed: only failed or dead operations can be."
        )

    async def replay_many(self, request: Request) -> Response:
        """Replay every dead (or failed) operation, optionally of one connection."""
        if not same_origin(request):
            return _forbidden()
        form = await read_form(request)
        back = _back(request, form.get("back"))
        connection = _text(form.get("connection"))
        state = _state(_text(form.get("state"))) or OperationState.DEAD
        if state not in (OperationState.DEAD, OperationState.FAILED):
            return self.redirect(back, "Only failed or dead operations can be replayed.")
        ids = None
        if connection is None:
            # replay() wants ids or a filter; "all connections" becomes the explicit id list
            ids = [op.id for op in await self.store.list_operations(states=[state], limit=10_000)]
        replayed = await self.replay(self.store, ids, connection=connection, states=[state])
        scope = f" of {connection}" if connection else ""
        return self.redirect(back, f"Replayed {len(replayed)} {state.value} operation(s){scope}.")


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a small urlencoded form (the UI's forms have a few short fields).

    Parsed here rather than with ``request.form()``, which needs the ``python-multipart``
    dependency for a job ``urllib.parse`` does; bodies past :data:`MAX_FORM_BYTES` are ignored.
    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    except ValueError:  # more fields than any of our forms has
        return {}
    return {name: values[0] for name, values in fields.items()}


def _forbidden() -> Response:
    return PlainTextResponse(
        "Forbidden: this form must be sent from the connector's own pages (Origin check).",
        status_code=403,
    )


def _back(request: Request, value: Any) -> str:
    """Where to go after an action: a local path from the form, else the operations page."""
    # "//host" and "/\\host" would leave the site (browsers read a backslash as a slash)
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value[:500]
    return str(request.url_for("operations").path)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")
