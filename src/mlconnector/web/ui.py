"""The operator UI: server-rendered pages that work without JavaScript.

Pages: ``/`` (dashboard), ``/operations`` (keyset pages, filters, errors grouped by cause,
Replay and Dismiss, one by one or per group), ``/runs`` (run history: chart and table),
``/audit`` (search), ``/connections/{name}`` (settings, masked credentials, links). Every value
goes through Jinja's autoescaping. State-changing requests are ``POST`` forms guarded by a
origin check against the configured names (:func:`same_origin`) and carry ``csrf_input()``; the
login layer (:mod:`mlconnector.web.auth`) checks the token and the role first. The outcome
of an action comes back as a one-shot flash cookie after a redirect (post/redirect/get).
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
from starlette.datastructures import URL, QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from mlconnector.clock import Clock
from mlconnector.config import Config
from mlconnector.store import (
    AuditEvent,
    AuditQuery,
    InboxItem,
    Operation,
    OperationState,
    QuarantineState,
    Store,
)
from mlconnector.sync.runs import LAST_RUN_SUFFIX, LastRun, last_runs
from mlconnector.web.auth import SESSION_KEY
from mlconnector.web.charts import changed, runs_chart
from mlconnector.web.console import (
    OperationQuery,
    audit_key,
    cursor_summary,
    day_param,
    day_range,
    details_items,
    event_label,
    int_param,
    kind_label,
    page_links,
    parse_audit_key,
    pretty_json,
    record_reference,
    text_param,
    trail_query,
)
from mlconnector.web.security import HostPolicy, request_origin

TEMPLATES_DIR = Path(__file__).parent / "templates"
FLASH_COOKIE = "mlc_flash"
PAGE_SIZE = 50
#: the page sizes the Operations page offers
PAGE_SIZES = (50, 200, 500)
LINKS_SHOWN = 200
RECENT_WEBHOOKS = 25
MAX_GROUPS = 20
CHART_RUNS = 100
MAX_FORM_BYTES = 4096
#: the audit search fields offered by the form (AuditQuery attribute → label)
AUDIT_FIELDS = {
    "connection": "Connection",
    "plex_order_id": "Plex order id",
    "order_key": "orderKey",
    "ss_order_number": "ShipStation order number",
    "ss_order_id": "ShipStation orderId",
    "shipment_id": "Shipment id",
    "sku": "SKU",
    "idempotency_key": "Idempotency key",
    "flow": "Flow",
    "outcome": "Outcome",
}
#: outcomes offered by the audit form's list (any other can be typed in the URL)
AUDIT_OUTCOMES = ("ok", "failed", "dead", "skipped", "frozen", "superseded", "rejected")

#: the outbox replay behind the Replay buttons: ``replay(store, ids, connection=..., states=...)``
ReplayFn = Callable[..., Awaitable[list[Operation]]]
#: ``flow_states(connection)`` → {flow: "doing" | "queued" | "scheduled"} from the engine
#: (procrastinate's jobs on PostgreSQL, the in-process scheduler on SQLite)
FlowStates = Callable[[str], Awaitable[dict[str, str]]]


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
    """Whether a state-changing request comes from one of the connector's own pages: its
    ``Origin`` (or ``Referer``) must name a configured host (``[web] public_origins`` /
    ``allowed_hosts``), never merely the request's own ``Host``. The app's guard
    (:mod:`mlconnector.web.auth`) checks this and the CSRF token before any UI route runs."""
    policy: HostPolicy = request.app.state.host_policy
    return policy.origin_allowed(request_origin(request))


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
    cursor_summary: str
    cursor_json: str | None
    cursor_updated: str | None
    #: the engine's job of this flow: ``doing``, ``queued``, ``scheduled`` or ``None``
    job: str | None
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


async def flow_rows(
    store: Store, connection: str, jobs: dict[str, str] | None = None
) -> list[FlowRow]:
    """Every flow that has a cursor, a job of the engine or a recorded run, by name."""
    cursors = {
        c.flow: c
        for c in await store.list_cursors(connection)
        if not c.flow.endswith(LAST_RUN_SUFFIX)  # the engine's run records, shown as last_run
    }
    jobs = jobs or {}
    runs = await last_runs(store, connection)
    rows = []
    for flow in sorted(set(cursors) | set(jobs) | set(runs)):
        cursor = cursors.get(flow)
        rows.append(
            FlowRow(
                flow=flow,
                cursor=cursor.value if cursor else None,
                cursor_summary=cursor_summary(cursor.value) if cursor else "—",
                cursor_json=pretty_json(cursor.value) if cursor else None,
                cursor_updated=_when(cursor.updated_at) if cursor else None,
                job=jobs.get(flow),
                last_run=runs.get(flow),
            )
        )
    return rows


class OperatorUI:
    """The UI routes over one store; build one per app."""

    def __init__(
        self,
        *,
        store: Store,
        config: Config,
        clock: Clock,
        replay: ReplayFn,
        flow_states: FlowStates | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.replay = replay
        self.flow_states = flow_states
        self.templates = templates()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.dashboard, methods=["GET"], name="dashboard"),
            Route("/operations", self.operations, methods=["GET"], name="operations"),
            Route("/operations/replay", self.replay_many, methods=["POST"], name="replay_many"),
            Route(
                "/operations/replay-group",
                self.replay_group,
                methods=["POST"],
                name="replay_group",
            ),
            Route(
                "/operations/dismiss-group",
                self.dismiss_group,
                methods=["POST"],
                name="dismiss_group",
            ),
            Route(
                "/operations/{op_id:int}/replay",
                self.replay_one,
                methods=["POST"],
                name="replay_one",
            ),
            Route(
                "/operations/{op_id:int}/dismiss",
                self.dismiss_one,
                methods=["POST"],
                name="dismiss_one",
            ),
            Route("/runs", self.runs, methods=["GET"], name="runs"),
            Route("/audit", self.audit, methods=["GET"], name="audit"),
            Route("/quarantine", self.quarantine, methods=["GET"], name="quarantine"),
            Route(
                "/quarantine/{quarantine_id:int}/dismiss",
                self.dismiss_quarantined,
                methods=["POST"],
                name="quarantine_dismiss",
            ),
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
        """Connections with their flows (cursor, engine job), operation counts and backlog."""
        rows = []
        backlog = await self.store.count_pending_webhooks()
        for conn in await self.store.list_connections():
            jobs = await self.flow_states(conn.name) if self.flow_states else None
            flows = await flow_rows(self.store, conn.name, jobs)
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
        """Operations newest first, a keyset page at a time, filtered; their errors grouped."""
        query = OperationQuery.of(request.query_params)
        params = request.query_params
        size = int_param(params.get("per_page"))
        size = size if size in PAGE_SIZES else PAGE_SIZE
        page = await self.store.operations_page(
            query.filter,
            before=int_param(params.get("before")),
            after=int_param(params.get("after")),
            limit=size,
        )
        newer, older = page_links(request.url.path, params, page, lambda op: str(op.id))
        groups = await self.store.error_groups(query.filter)
        dead = await self.store.count_in_state(
            OperationState.DEAD, connection=query.filter.connection
        )
        return self.render(
            request,
            "operations.html",
            title="Operations",
            page=page,
            ops=page.items,
            newer=newer,
            older=older,
            query=query,
            form=query.form,
            connection=query.filter.connection,
            state=query.form["state"] or None,
            states=list(OperationState),
            names=[c.name for c in await self.store.list_connections()],
            facets=await self.store.operation_facets(),
            groups=groups[:MAX_GROUPS],
            more_groups=max(0, len(groups) - MAX_GROUPS),
            replayable={OperationState.FAILED, OperationState.DEAD},
            dead=dead,
            kind_label=kind_label,
            trail_query=trail_query,
            record_reference=record_reference,
            page_size=size,
            page_sizes=PAGE_SIZES,
        )

    async def runs(self, request: Request) -> Response:
        """The run history of one flow of one connection: a chart of the latest runs and a
        keyset-paged table."""
        params = request.query_params
        pairs = await self.store.run_flows()
        connection, flow = text_param(params.get("connection")), text_param(params.get("flow"))
        if (connection, flow) not in pairs and pairs:
            connection, flow = next(((c, f) for c, f in pairs if c == connection), pairs[0])
        chart, page, newer, older = None, None, None, None
        if connection and flow:
            latest = await self.store.runs_page(connection, flow, limit=CHART_RUNS)
            chart = runs_chart(latest.items)
            page = await self.store.runs_page(
                connection,
                flow,
                before=int_param(params.get("before")),
                after=int_param(params.get("after")),
                limit=PAGE_SIZE,
            )
            keep = QueryParams(
                {
                    "connection": connection,
                    "flow": flow,
                    **{k: v for k, v in params.items() if k in ("before", "after")},
                }
            )
            newer, older = page_links(request.url.path, keep, page, lambda r: str(r.id))
        return self.render(
            request,
            "runs.html",
            title="Run history",
            pairs=pairs,
            connection=connection,
            flow=flow,
            chart=chart,
            chart_runs=CHART_RUNS,
            page=page,
            newer=newer,
            older=older,
            changed=changed,
        )

    async def audit(self, request: Request) -> Response:
        """Audit events matching every filled field, newest first, a keyset page at a time."""
        params = request.query_params
        filters = {name: text_param(params.get(name)) for name in AUDIT_FIELDS}
        start, end = day_param(params.get("from")), day_param(params.get("to"))
        since, until = day_range(start, end)
        searched = any(filters.values()) or bool(start or end)
        page = await self.store.audit_page(
            AuditQuery(**filters, since=since, until=until, limit=PAGE_SIZE),
            before=parse_audit_key(params.get("before")),
            after=parse_audit_key(params.get("after")),
        )
        newer, older = page_links(request.url.path, params, page, audit_key)
        return self.render(
            request,
            "audit.html",
            title="Audit",
            events=page.items,
            newer=newer,
            older=older,
            filters=filters,
            day_from=start.isoformat() if start else "",
            day_to=end.isoformat() if end else "",
            fields=AUDIT_FIELDS,
            outcomes=AUDIT_OUTCOMES,
            searched=searched,
            event_label=event_label,
            details_items=details_items,
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
            links=await self.store.list_links(name, limit=LINKS_SHOWN),
            counts=await self.store.count_operations(connection=name),
            webhooks=[
                WebhookRow.of(item)
                for item in await self.store.list_webhooks(connection=name, limit=RECENT_WEBHOOKS)
            ],
            webhook_url=webhook_url,
            page_size=LINKS_SHOWN,
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
        connection = text_param(form.get("connection"))
        state = _state(text_param(form.get("state"))) or OperationState.DEAD
        if state not in (OperationState.DEAD, OperationState.FAILED):
            return self.redirect(back, "Only failed or dead operations can be replayed.")
        ids = None
        if connection is None:
            # replay() wants ids or a filter; "all connections" becomes the explicit id list
            ids = [op.id for op in await self.store.list_operations(states=[state], limit=10_000)]
        replayed = await self.replay(self.store, ids, connection=connection, states=[state])
        scope = f" of {connection}" if connection else ""
        return self.redirect(back, f"Replayed {len(replayed)} {state.value} operation(s){scope}.")

    async def replay_group(self, request: Request) -> Response:
        """Replay the failed and dead operations of one error group (under the page's filter)."""
        if not same_origin(request):
            return _forbidden()
        form = await read_form(request)
        back = _back(request, form.get("back"))
        cause = text_param(form.get("cause"), 300)
        if cause is None:
            return self.redirect(back, "No error group was named; nothing was replayed.")
        query = OperationQuery.of(form)
        ids = await self.store.operations_in_group(query.filter, cause)
        replayed = await self.replay(self.store, ids) if ids else []
        await self._audit_bulk(request, "replay_group", cause, replayed, {})
        return self.redirect(back, f"Replayed {len(replayed)} operation(s) failing with: {cause}")

    async def dismiss_one(self, request: Request) -> Response:
        """Dismiss one dead operation, with the reason typed next to the button."""
        if not same_origin(request):
            return _forbidden()
        op_id = int(request.path_params["op_id"])
        form = await read_form(request)
        back = _back(request, form.get("back"))
        reason = text_param(form.get("reason"), 500)
        if reason is None:
            return self.redirect(back, f"Operation {op_id} was not dismissed: give a reason.")
        done = await self.store.dismiss([op_id], reason=reason, actor=actor(request))
        if done:
            return self.redirect(back, f"Operation {op_id} dismissed: it will not be sent.")
        return self.redirect(
            back, f"Operation {op_id} was not dismissed: only dead operations can be."
        )

    async def quarantine(self, request: Request) -> Response:
        """Records the flows set aside (open by default), filtered by connection/flow/state."""
        params = request.query_params
        state = params.get("state") or QuarantineState.OPEN.value
        states = [*(s.value for s in QuarantineState), "all"]
        state = state if state in states else QuarantineState.OPEN.value
        connection, flow = text_param(params.get("connection"), 100), text_param(params.get("flow"))
        rows = await self.store.list_quarantined(
            connection=connection,
            flow=flow,
            state=None if state == "all" else QuarantineState(state),
        )
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.render(
            request,
            "quarantine.html",
            title="Quarantine",
            rows=rows,
            state=state,
            states=states,
            connection=connection,
            flow=flow,
            here=here,
        )

    async def dismiss_quarantined(self, request: Request) -> Response:
        """Dismiss one open quarantined record, with the reason typed next to the button."""
        if not same_origin(request):
            return _forbidden()
        qid = int(request.path_params["quarantine_id"])
        form = await read_form(request)
        back = _back(request, form.get("back"))
        reason = text_param(form.get("reason"), 500)
        if reason is None:
            return self.redirect(
                back, f"Quarantined record {qid} was not dismissed: give a reason."
            )
        row = await self.store.dismiss_quarantined(qid, reason=reason, actor=actor(request))
        if row is None:
            return self.redirect(back, f"There is no quarantined record {qid}.")
        if row.dismissed_reason != reason or row.state is not QuarantineState.DISMISSED:
            return self.redirect(back, f"Quarantined record {qid} is {row.state.value}: unchanged.")
        return self.redirect(
            back,
            f"Quarantined record {qid} dismissed: {row.record_kind} {row.record_id} is no "
            "longer retried.",
        )

    async def dismiss_group(self, request: Request) -> Response:
        """Dismiss the dead operations of one error group (under the page's filter)."""
        if not same_origin(request):
            return _forbidden()
        form = await read_form(request)
        back = _back(request, form.get("back"))
        cause, reason = text_param(form.get("cause"), 300), text_param(form.get("reason"), 500)
        if cause is None or reason is None:
            return self.redirect(back, "Nothing was dismissed: name the group and give a reason.")
        query = OperationQuery.of({**form, "state": OperationState.DEAD.value})
        ids = await self.store.operations_in_group(query.filter, cause)
        done = await self.store.dismiss(ids, reason=reason, actor=actor(request))
        await self._audit_bulk(request, "dismiss_group", cause, done, {"reason": reason})
        return self.redirect(back, f"Dismissed {len(done)} dead operation(s) failing with: {cause}")

    async def _audit_bulk(
        self,
        request: Request,
        action: str,
        cause: str,
        ops: list[Operation],
        extra: dict[str, Any],
    ) -> None:
        """One event per connection for a bulk action (each operation has its own too)."""
        by_connection: dict[str, list[int]] = {}
        for op in ops:
            by_connection.setdefault(op.connection, []).append(op.id)
        for connection, members in sorted(by_connection.items()):
            await self.store.append_audit(
                AuditEvent(
                    connection=connection,
                    flow="operator",
                    direction="internal",
                    entity="operation",
                    action=action,
                    outcome="ok",
                    details={
                        "cause": cause,
                        "count": len(members),
                        "operation_ids": members[:200],
                        "by": actor(request),
                        **extra,
                    },
                )
            )


def actor(request: Request) -> str:
    """Who sent a form: the logged-in account when the login layer put one in the scope."""
    session = request.scope.get(SESSION_KEY)
    name = getattr(getattr(session, "user", None), "name", None)
    return str(name) if name else "web"


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
