"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 16:16:23.568132
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# The audit trail is append-only; the database itself refuses UPDATE and DELETE.
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


def upgrade() -> None:

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("plex_order_id", sa.String(length=100), nullable=True),
        sa.Column("order_key", sa.String(length=200), nullable=True),
        sa.Column("ss_order_id", sa.String(length=50), nullable=True),
        sa.Column("ss_order_number", sa.String(length=100), nullable=True),
        sa.Column("shipment_id", sa.String(length=100), nullable=True),
        sa.Column("entity_ids", sa.JSON(), nullable=False),
        sa.Column("remote_ids", sa.JSON(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=300), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_events_connection_at", ["connection", "at"], unique=False)
        batch_op.create_index("ix_audit_events_idempotency_key", ["idempotency_key"], unique=False)
        batch_op.create_index("ix_audit_events_order_key", ["order_key"], unique=False)
        batch_op.create_index("ix_audit_events_plex_order_id", ["plex_order_id"], unique=False)
        batch_op.create_index("ix_audit_events_shipment_id", ["shipment_id"], unique=False)
        batch_op.create_index("ix_audit_events_ss_order_id", ["ss_order_id"], unique=False)
        batch_op.create_index("ix_audit_events_ss_order_number", ["ss_order_number"], unique=False)

    op.create_table(
        "connections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("plex_tenant", sa.String(length=200), nullable=True),
        sa.Column("plex_pcn", sa.String(length=50), nullable=True),
        sa.Column("shipstation_account", sa.String(length=200), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("name", name=op.f("uq_connections_name")),
    )
    op.create_table(
        "credentials",
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_version", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_credentials_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection", "kind", name=op.f("pk_credentials")),
    )
    op.create_table(
        "cursors",
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_cursors_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection", "flow", name=op.f("pk_cursors")),
    )
    op.create_table(
        "inventory_snapshot",
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("sku", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_inventory_snapshot_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "connection", "sku", "location", name=op.f("pk_inventory_snapshot")
        ),
    )
    op.create_table(
        "leases",
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_leases_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection", "flow", name=op.f("pk_leases")),
    )
    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("order_key", sa.String(length=200), nullable=False),
        sa.Column("plex_order_id", sa.String(length=100), nullable=False),
        sa.Column("group_key", sa.String(length=200), nullable=False),
        sa.Column("ss_order_id", sa.String(length=50), nullable=True),
        sa.Column("content_hash", sa.String(length=128), nullable=True),
        sa.Column("ss_status", sa.String(length=50), nullable=True),
        sa.Column("frozen_reason", sa.Text(), nullable=True),
        sa.Column("release_ids", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_links_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("connection", "order_key", name="uq_links_connection_order_key"),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_links_connection_plex_order_id", ["connection", "plex_order_id"], unique=False
        )
        batch_op.create_index(
            "ix_links_connection_ss_order_id", ["connection", "ss_order_id"], unique=False
        )

    op.create_table(
        "operations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("remote_ref", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_operations_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_operations_idempotency_key")),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_operations_due", ["connection", "flow", "state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_operations_state_updated_at", ["state", "updated_at"], unique=False
        )

    op.create_table(
        "shipment_lines",
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.String(length=100), nullable=False),
        sa.Column("line_key", sa.String(length=200), nullable=False),
        sa.Column("sku", sa.String(length=200), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("written_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_shipment_lines_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "connection", "source_id", "line_key", name=op.f("pk_shipment_lines")
        ),
    )
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_webhook_inbox_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
        sa.UniqueConstraint(
            "connection", "dedupe_key", name="uq_webhook_inbox_connection_dedupe_key"
        ),
    )
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_inbox_processed_at_received_at",
            ["processed_at", "received_at"],
            unique=False,
        )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_AUDIT_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in POSTGRES_AUDIT_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:

    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbox_processed_at_received_at")

    op.drop_table("webhook_inbox")
    op.drop_table("shipment_lines")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index("ix_operations_state_updated_at")
        batch_op.drop_index("ix_operations_due")

    op.drop_table("operations")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index("ix_links_connection_ss_order_id")
        batch_op.drop_index("ix_links_connection_plex_order_id")

    op.drop_table("links")
    op.drop_table("leases")
    op.drop_table("inventory_snapshot")
    op.drop_table("cursors")
    op.drop_table("credentials")
    op.drop_table("connections")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_ss_order_number")
        batch_op.drop_index("ix_audit_events_ss_order_id")
        batch_op.drop_index("ix_audit_events_shipment_id")
        batch_op.drop_index("ix_audit_events_plex_order_id")
        batch_op.drop_index("ix_audit_events_order_key")
        batch_op.drop_index("ix_audit_events_idempotency_key")
        batch_op.drop_index("ix_audit_events_connection_at")
        batch_op.drop_index("ix_audit_events_at")

    op.drop_table("audit_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_events_append_only()")
