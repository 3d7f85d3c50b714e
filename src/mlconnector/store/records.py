"""Plain records the store returns and accepts.

They are frozen dataclasses, not ORM objects: reading one never touches the database, and the sync
engine, CLI and web UI can pass them around freely. Every datetime is aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

JSONDict = dict[str, Any]


class OperationState(StrEnum):
    """Where an outbox operation is in its life.

    ``pending → sent → confirmed``; any non-final attempt may end in ``failed`` (retried when
    ``next_attempt_at`` is due), and ``failed`` becomes ``dead`` once the attempt budget is spent.
    ``replay`` moves ``failed``/``dead`` back to ``pending``; ``dismiss`` moves ``dead`` to
    ``dismissed``.
    """

    PENDING = "pending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    DEAD = "dead"
    #: an operator decided a dead operation must never be sent (the reason is in the audit
    #: trail); final, never replayed, not counted as needing attention
    DISMISSED = "dismissed"


class Role(StrEnum):
    """What an operator account of the web UI may do."""

    #: reads every page
    VIEWER = "viewer"
    #: reads, and sends any form (replay, dismiss, …)
    OPERATOR = "operator"


class CredentialKind(StrEnum):
    """The secrets a connection may hold. The store accepts any lowercase ``[a-z0-9_]`` kind;
    these are the ones the connector itself uses."""

    PLEX_API_KEY = "plex_api_key"
    PLEX_CLIENT_SECRET = "plex_client_secret"  # noqa: S105 (a name, not a secret)
    PLEX_WS_PASSWORD = "plex_ws_password"  # noqa: S105 (a name, not a secret)
    SS_V1_KEY = "ss_v1_key"
    SS_V1_SECRET = "ss_v1_secret"  # noqa: S105 (a name, not a secret)
    SS_V2_KEY = "ss_v2_key"
    WEBHOOK_TOKEN = "webhook_token"  # noqa: S105 (a name, not a secret)


@dataclass(frozen=True, slots=True)
class Connection:
    """One tenant pairing: a Plex PCN and a ShipStation account."""

    name: str
    plex_tenant: str | None
    plex_pcn: str | None
    shipstation_account: str | None
    settings: JSONDict
    enabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about a stored secret: never the secret itself."""

    connection: str
    kind: str
    masked: str
    key_version: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position of one flow of one connection (text; JSON when the flow needs structure)."""

    connection: str
    flow: str
    value: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Link:
    """The bond between a group of Plex releases and one ShipStation order (by ``order_key``)."""

    connection: str
    order_key: str
    plex_order_id: str
    group_key: str
    ss_order_id: str | None = None
    content_hash: str | None = None
    ss_status: str | None = None
    frozen_reason: str | None = None
    release_ids: list[str] = field(default_factory=list)
    updated_at: datetime | None = None  # set by the store


@dataclass(frozen=True, slots=True)
class Operation:
    """One outbound write in the idempotent outbox."""

    id: int
    connection: str
    flow: str
    kind: str
    idempotency_key: str
    payload: JSONDict
    state: OperationState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    remote_ref: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The result of ``Store.enqueue``: the operation, whether this call created it, and
    (``Store.enqueue_many(claim=True)``) whether this call marked it ``sent``."""

    operation: Operation
    created: bool
    claimed: bool = False


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the append-only audit trail.

    The search columns (``plex_order_id``, ``order_key``, ``ss_order_id``, ``ss_order_number``,
    ``shipment_id``) are optional and indexed; ``entity_ids``/``remote_ids`` hold anything else.
    ``sku`` names the inventory record (filled from ``details["sku"]`` when not given).
    ``id`` and ``at`` are filled by the store when left as ``None``.
    """

    connection: str
    flow: str
    direction: str  # "plex->ss", "ss->plex", "internal", ...
    entity: str  # "order", "shipment", "inventory", "webhook", ...
    action: str  # "create", "update", "skip", "read", "retry", ...
    outcome: str  # "ok", "skipped", "failed", ...
    plex_order_id: str | None = None
    order_key: str | None = None
    ss_order_id: str | None = None
    ss_order_number: str | None = None
    shipment_id: str | None = None
    entity_ids: JSONDict = field(default_factory=dict)
    remote_ids: JSONDict = field(default_factory=dict)
    http_status: int | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    details: JSONDict = field(default_factory=dict)
    sku: str | None = None
    at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters for ``Store.search_audit``; every field set must match. Newest first."""

    connection: str | None = None
    flow: str | None = None
    plex_order_id: str | None = None
    order_key: str | None = None
    ss_order_id: str | None = None
    ss_order_number: str | None = None
    shipment_id: str | None = None
    idempotency_key: str | None = None
    outcome: str | None = None
    sku: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    limit: int = 100


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One received webhook delivery, persisted before it is acknowledged."""

    id: int
    connection: str
    body: bytes
    headers: dict[str, str]
    dedupe_key: str
    received_at: datetime
    processed_at: datetime | None
    outcome: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Received:
    """The result of ``Store.receive_webhook``: the inbox item, and whether it is new."""

    item: InboxItem
    created: bool


@dataclass(frozen=True, slots=True)
class WalCheckpoint:
    """The outcome of ``Store.checkpoint_wal`` (SQLite's ``PRAGMA wal_checkpoint`` row)."""

    #: another checkpoint ran at the same time, so this one did nothing
    busy: bool
    #: frames in the write-ahead log, and how many of them are now in the database file
    wal_frames: int
    checkpointed: int


@dataclass(frozen=True, slots=True)
class ShipmentLine:
    """One ShipStation shipment (or fulfilment) line reduced in Plex exactly once."""

    connection: str
    source_id: str  # "ss-shipment-123" or "ss-fulfillment-456"
    line_key: str
    sku: str | None
    quantity: int
    created_at: datetime
    written_back_at: datetime | None
    reversed_at: datetime | None


@dataclass(frozen=True, slots=True)
class StagedLine:
    """A shipment line to record with its operation (``Store.stage_batch``)."""

    source_id: str
    line_key: str
    quantity: int
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class StagedWrite:
    """An operation to enqueue with the shipment lines it writes (``Store.stage_batch``)."""

    kind: str
    idempotency_key: str
    payload: JSONDict
    lines: tuple[StagedLine, ...] = ()


@dataclass(frozen=True, slots=True)
class User:
    """An operator account of the web UI (the password only as an argon2 hash)."""

    name: str
    role: Role
    password_hash: str = field(repr=False)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WebSession:
    """A logged-in browser: whose it is, its CSRF token and until when it is valid."""

    user: User
    csrf_token: str = field(repr=False)
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Run:
    """One full run of one flow of one connection, as the run history keeps it."""

    id: int
    connection: str
    flow: str
    started_at: datetime
    finished_at: datetime
    seconds: float
    outcome: str  # "ok", "partial", "failed"
    counts: dict[str, int]
    error: str | None
    owner: str


class QuarantineState(StrEnum):
    """``open`` (retried every pass) → ``resolved`` (it read) or ``dismissed`` (an operator)."""

    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record a flow could not read or map, set aside so the rest of the pass went on."""

    id: int
    connection: str
    flow: str
    record_kind: str  # e.g. "Plex OrderLine", "ShipStation shipment"
    record_id: str
    retry_key: str | None  # what the flow re-reads to retry it (e.g. the Plex order id)
    field: str
    value_excerpt: str
    error: str
    what_to_do: str
    first_seen: datetime
    last_seen: datetime
    attempts: int
    state: QuarantineState
    resolved_at: datetime | None = None
    dismissed_by: str | None = None
    dismissed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """What a flow reports about one unreadable record (the input of ``Store.quarantine``)."""

    record_kind: str
    record_id: str
    field: str
    value_excerpt: str
    error: str
    what_to_do: str
    retry_key: str | None = None
    #: indexed audit columns naming the record (so ``audit`` filters find it)
    plex_order_id: str | None = None
    shipment_id: str | None = None
    sku: str | None = None
