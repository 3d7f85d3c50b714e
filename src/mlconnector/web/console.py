"""What the operator pages need besides the store: filters read from the query string, keyset
page links, labels per record kind, audit links per operation, readable details and cursors.

Pure functions over records and ``starlette`` URLs; no SQL and no I/O here.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.datastructures import QueryParams

from mlconnector.store import AuditEvent, Operation, OperationFilter, OperationState, Page

#: the operation kinds the flows write, as an operator names them: (record kind, verb)
KIND_LABELS = {
    "ss.order.upsert": ("order", "ShipStation order write"),
    "ss.inventory.adjust": ("inventory", "ShipStation inventory adjust"),
    "plex.shipment.write_back": ("shipment", "Plex shipment write-back"),
    "plex.shipment.reverse": ("shipment", "Plex shipment reversal"),
}
#: the audit column that finds a record's trail, per record kind, and the payload field with it
TRAIL_KEYS = {
    "order": ("order_key", "order_key"),
    "shipment": ("shipment_id", "reference"),
    "inventory": ("sku", "sku"),
}
_DIRECTIONS = {"plex->ss": "Plex → ShipStation", "ss->plex": "ShipStation → Plex"}


def text_param(value: Any, limit: int = 200) -> str | None:
    """A trimmed parameter, ``None`` when empty or not text."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def int_param(value: Any) -> int | None:
    """A positive id from the query string, ``None`` for anything else."""
    text = text_param(value, 19)
    return int(text) if text and text.isdigit() else None


def day_param(value: Any) -> date | None:
    """A ``YYYY-MM-DD`` day (what ``<input type="date">`` sends), ``None`` if unreadable."""
    text = text_param(value, 10)
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def day_range(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """``[start 00:00 UTC, the day after end 00:00 UTC)``: both days included."""
    since = datetime(start.year, start.month, start.day, tzinfo=UTC) if start else None
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1) if end else None
    return since, until


@dataclass(frozen=True)
class OperationQuery:
    """The Operations page's filter as typed in the form (to fill it again) and for the store."""

    form: dict[str, str]
    filter: OperationFilter

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> OperationQuery:
        """Read ``connection``, ``flow``, ``kind``, ``state``, ``from``, ``to`` and ``q``."""
        form = {
            name: text_param(params.get(name)) or ""
            for name in ("connection", "flow", "kind", "state", "from", "to", "q")
        }
        state = _state(form["state"])
        start, end = day_param(form["from"]), day_param(form["to"])
        form["state"] = state.value if state else ""
        form["from"], form["to"] = (
            (start.isoformat() if start else ""),
            (end.isoformat() if end else ""),
        )
        since, until = day_range(start, end)
        return cls(
            form,
            OperationFilter(
                connection=form["connection"] or None,
                flow=form["flow"] or None,
                kind=form["kind"] or None,
                states=(state,) if state else (),
                since=since,
                until=until,
                text=form["q"] or None,
            ),
        )

    def query_string(self, **extra: str) -> str:
        """The filter (and ``extra``) as a query string, empty fields left out."""
        fields = {k: v for k, v in {**self.form, **extra}.items() if v}
        return urllib.parse.urlencode(fields)


def _state(value: str | None) -> OperationState | None:
    try:
        return OperationState(value) if value else None
    except ValueError:
        return None


def page_links(
    path: str, params: QueryParams, page: Page[Any], key: Any
) -> tuple[str | None, str | None]:
    """The URLs of the newer and older pages (``after=``/``before=`` the edge rows' keys),
    keeping every other parameter."""
    kept = [(k, v) for k, v in params.multi_items() if k not in ("before", "after")]

    def url(name: str, value: str) -> str:
        return path + "?" + urllib.parse.urlencode([*kept, (name, value)])

    newer = url("after", key(page.items[0])) if page.has_newer and page.items else None
    older = url("before", key(page.items[-1])) if page.has_older and page.items else None
    return newer, older


def audit_key(event: AuditEvent) -> str:
    """An audit event's keyset position, ``<at ISO>_<id>``."""
    at = event.at.isoformat() if event.at else ""
    return f"{at}_{event.id}"


def parse_audit_key(value: Any) -> tuple[datetime, int] | None:
    """The inverse of :func:`audit_key`, ``None`` for anything else."""
    text = text_param(value, 80)
    if not text or "_" not in text:
        return None
    at, _, op_id = text.rpartition("_")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None or not op_id.isdigit():
        return None
    return when, int(op_id)


def record_kind(op: Operation) -> str:
    """``order``, ``shipment`` or ``inventory`` (or the raw kind for an unknown one)."""
    return KIND_LABELS.get(op.kind, (op.kind, op.kind))[0]


def kind_label(kind: str) -> str:
    """How an operator names an operation kind."""
    return KIND_LABELS.get(kind, ("", kind))[1]


def trail_query(op: Operation) -> str | None:
    """The audit search that finds the trail of ``op``'s record (its orderKey, shipment or
    SKU), or of the operation itself when its payload names no record."""
    column, field = TRAIL_KEYS.get(record_kind(op), ("idempotency_key", ""))
    value = op.payload.get(field) if field else None
    if not isinstance(value, str | int) or value == "":
        column, value = "idempotency_key", op.idempotency_key
    return urllib.parse.urlencode({"connection": op.connection, column: str(value)})


def record_reference(op: Operation) -> str:
    """The record an operation writes, as its trail link shows it."""
    column, field = TRAIL_KEYS.get(record_kind(op), ("", ""))
    value = op.payload.get(field) if field else None
    if value in (None, ""):
        return "this operation"
    names = {"order_key": "orderKey", "shipment_id": "shipment", "sku": "SKU"}
    return f"{names.get(column, column)} {value}"


def event_label(event: AuditEvent) -> str:
    """What an audit event is about, from the operation kind it names when there is one: a
    retried inventory adjust is an inventory write, whatever the entity it was filed under."""
    kind = event.details.get("kind")
    if isinstance(kind, str) and kind in KIND_LABELS and event.entity != "operation":
        label = KIND_LABELS[kind][1]
        return label if event.action in ("write", "adjust") else f"{label}: {event.action}"
    direction = _DIRECTIONS.get(event.direction, event.direction)
    what = f"{event.entity} {event.action}".replace("_", " ")
    return f"{what} ({direction})" if event.direction in _DIRECTIONS else what


def details_items(details: Mapping[str, Any], limit: int = 300) -> list[tuple[str, str]]:
    """A details mapping as ``(key, value)`` lines: nested mappings flattened to ``a.b``,
    lists of scalars joined, anything longer than ``limit`` cut."""
    items: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
            return
        if value is None or value == {} or value == []:
            return
        if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
            text = ", ".join(str(v) for v in value)
        elif isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False, default=str)
        else:
            text = str(value)
        items.append((prefix or "value", text if len(text) <= limit else text[:limit] + "…"))

    walk("", details)
    return items


def cursor_summary(value: str | None) -> str:
    """One line for a flow cursor: its position, and how many ids it remembers, not the ids."""
    if not value:
        return "—"
    try:
        raw = json.loads(value)
    except ValueError:
        return value if len(value) <= 80 else value[:80] + "…"
    if not isinstance(raw, dict):
        return str(raw)[:80]
    parts = []
    for key, item in raw.items():
        if isinstance(item, list | dict):
            parts.append(f"{key}: {len(item)} {'ids' if isinstance(item, list) else 'entries'}")
        else:
            parts.append(f"{key} {item}")
    line = ", ".join(parts)
    return line if len(line) <= 160 else line[:160] + "…"


def pretty_json(value: str) -> str:
    """A stored cursor value, indented when it is JSON."""
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:
        return value
