"""The connector's tables, as SQLAlchemy Core metadata.

This is the single description of the schema: the Alembic migrations must produce exactly the same
thing (a test compares a ``create_all`` database with a migrated one on SQLite and PostgreSQL).

Every per-connection table refers to ``connections.name`` (cascading deletes and renames), except
the audit trail, which outlives the connections it describes and is append-only (a trigger refuses
UPDATE and DELETE).
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)

from mlconnector.store.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _connection_fk() -> Column[str]:
    return Column(
        "connection",
        String(100),
        ForeignKey("connections.name", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    )


connections = Table(
    "connections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("plex_tenant", String(200)),
    Column("plex_pcn", String(50)),
    Column("shipstation_account", String(200)),
    Column("settings", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    _connection_fk(),
    Column("kind", String(64), nullable=False),
    # Fernet token (ASCII). Never the secret in clear.
    Column("ciphertext", Text, nullable=False),
    Column("key_version", String(32), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("connection", "kind"),
)

cursors = Table(
    "cursors",
    metadata,
    _connection_fk(),
    Column("flow", String(64), nullable=False),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("connection", "flow"),
)

links = Table(
    "links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_fk(),
    Column("order_key", String(200), nullable=False),
    Column("plex_order_id", String(100), nullable=False),
    Column("group_key", String(200), nullable=False),
    Column("ss_order_id", String(50)),
    Column("content_hash", String(128)),
    Column("ss_status", String(50)),
    Column("frozen_reason", Text),
    Column("release_ids", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("connection", "order_key", name="uq_links_connection_order_key"),
    Index("ix_links_connection_plex_order_id", "connection", "plex_order_id"),
    Index("ix_links_connection_ss_order_id", "connection", "ss_order_id"),
)

operations = Table(
    "operations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_fk(),
    Column("flow", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("idempotency_key", String(300), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("remote_ref", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_operations_due", "connection", "flow", "state", "next_attempt_at"),
    Index("ix_operations_state_updated_at", "state", "updated_at"),
    # the operator UI pages by id (keyset), filtered by state and/or connection
    Index("ix_operations_state_id", "state", "id"),
    Index("ix_operations_connection_state_id", "connection", "state", "id"),
    Index("ix_operations_kind_id", "kind", "id"),
    # the last error with what differs between records taken out (store.queries.error_cause):
    # the Operations page groups failed and dead operations by it
    Column("error_cause", String(300)),
    Index("ix_operations_state_error_cause", "state", "error_cause", "updated_at"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    # No foreign key: the trail outlives a deleted connection.
    Column("connection", String(100), nullable=False),
    Column("flow", String(64), nullable=False),
    Column("direction", String(32), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("plex_order_id", String(100)),
    Column("order_key", String(200)),
    Column("ss_order_id", String(50)),
    Column("ss_order_number", String(100)),
    Column("shipment_id", String(100)),
    Column("entity_ids", JSON, nullable=False),
    Column("remote_ids", JSON, nullable=False),
    Column("http_status", Integer),
    Column("request_id", String(200)),
    Column("idempotency_key", String(300)),
    Column("details", JSON, nullable=False),
    # the inventory record (part number) an event is about: searchable like the references above
    Column("sku", String(200)),
    Index("ix_audit_events_connection_at", "connection", "at"),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_plex_order_id", "plex_order_id"),
    Index("ix_audit_events_order_key", "order_key"),
    Index("ix_audit_events_ss_order_id", "ss_order_id"),
    Index("ix_audit_events_ss_order_number", "ss_order_number"),
    Index("ix_audit_events_shipment_id", "shipment_id"),
    Index("ix_audit_events_idempotency_key", "idempotency_key"),
    Index("ix_audit_events_sku", "sku"),
    # the audit search pages newest first by (at, id) under an outcome or flow filter
    Index("ix_audit_events_outcome_at", "outcome", "at"),
    Index("ix_audit_events_flow_at", "flow", "at"),
    Index("ix_audit_events_connection_flow_at", "connection", "flow", "at"),
)

#: one row per full (not dry) run of a flow, for the run history (``sync.runs.record_run``)
runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_fk(),
    Column("flow", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("counts", JSON, nullable=False),
    Column("error", Text),
    Column("owner", String(200), nullable=False),
    Index("ix_runs_connection_flow_id", "connection", "flow", "id"),
)

#: records that could not be read or mapped, set aside so the pass goes on (docs/sync.md)
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_fk(),
    Column("flow", String(64), nullable=False),
    Column("record_kind", String(64), nullable=False),
    Column("record_id", String(200), nullable=False),
    # what the flow re-reads to retry it (e.g. the Plex order of an unreadable line)
    Column("retry_key", String(200)),
    Column("field", String(200), nullable=False),
    Column("value_excerpt", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("what_to_do", Text, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("dismissed_by", String(200)),
    Column("dismissed_reason", Text),
    UniqueConstraint("connection", "flow", "record_kind", "record_id", name="uq_quarantine_record"),
    Index("ix_quarantine_state_connection_flow", "state", "connection", "flow"),
)

webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_fk(),
    Column("body", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("dedupe_key", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    Column("outcome", Text),
    Column("attempts", Integer, nullable=False),
    UniqueConstraint("connection", "dedupe_key", name="uq_webhook_inbox_connection_dedupe_key"),
    Index("ix_webhook_inbox_processed_at_received_at", "processed_at", "received_at"),
)

#: shared rate budgets per credential (key = hash of host and credential, never the secret);
#: ``state`` is :class:`mlconnector.http.ratelimit.BudgetState`, stepped by compare-and-set on
#: ``version`` (:mod:`mlconnector.store.budgets`)
rate_budgets = Table(
    "rate_budgets",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
)

inventory_snapshot = Table(
    "inventory_snapshot",
    metadata,
    _connection_fk(),
    Column("sku", String(200), nullable=False),
    Column("location", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("pushed_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("connection", "sku", "location"),
)

shipment_lines = Table(
    "shipment_lines",
    metadata,
    _connection_fk(),
    Column("source_id", String(100), nullable=False),
    Column("line_key", String(200), nullable=False),
    Column("sku", String(200)),
    Column("quantity", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("written_back_at", UTCDateTime),
    Column("reversed_at", UTCDateTime),
    PrimaryKeyConstraint("connection", "source_id", "line_key"),
)

# --- operator accounts of the web UI, and their server-side sessions ----------------------------
users = Table(
    "users",
    metadata,
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    # an argon2id hash (PHC string); never the password
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("name"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    # SHA-256 of the cookie value: a copy of the table does not let anyone in
    Column("id_hash", String(64), nullable=False),
    Column(
        "user_name",
        String(64),
        ForeignKey("users.name", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("id_hash"),
    Index("ix_web_sessions_user_name", "user_name"),
    Index("ix_web_sessions_expires_at", "expires_at"),
)

# --- the audit trail is append-only, enforced by the database itself -----------------------------
SQLITE_AUDIT_TRIGGERS = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
)
POSTGRES_AUDIT_TRIGGERS = (
    "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)


def _on_create(statement: str, dialect: str) -> None:
    ddl = DDL(statement)  # type: ignore[no-untyped-call]
    event.listen(audit_events, "after_create", ddl.execute_if(dialect=dialect))


for _statement in SQLITE_AUDIT_TRIGGERS:
    _on_create(_statement, "sqlite")
for _statement in POSTGRES_AUDIT_TRIGGERS:
    _on_create(_statement, "postgresql")
