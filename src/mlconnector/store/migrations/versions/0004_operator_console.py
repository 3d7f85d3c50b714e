"""operator console: run history, audit SKU, indexes for paging at volume

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection"],
            ["connections.name"],
            name=op.f("fk_runs_connection_connections"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_connection_flow_id", ["connection", "flow", "id"])

    # ADD COLUMN (nullable) rewrites nothing on either backend; the append-only triggers stay
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sku", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_audit_events_sku", ["sku"])
        batch_op.create_index("ix_audit_events_outcome_at", ["outcome", "at"])
        batch_op.create_index("ix_audit_events_flow_at", ["flow", "at"])
        batch_op.create_index("ix_audit_events_connection_flow_at", ["connection", "flow", "at"])

    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index("ix_operations_state_id", ["state", "id"])
        batch_op.create_index("ix_operations_connection_state_id", ["connection", "state", "id"])
        batch_op.create_index("ix_operations_kind_id", ["kind", "id"])


def downgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index("ix_operations_kind_id")
        batch_op.drop_index("ix_operations_connection_state_id")
        batch_op.drop_index("ix_operations_state_id")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_connection_flow_at")
        batch_op.drop_index("ix_audit_events_flow_at")
        batch_op.drop_index("ix_audit_events_outcome_at")
        batch_op.drop_index("ix_audit_events_sku")
        batch_op.drop_column("sku")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_connection_flow_id")
    op.drop_table("runs")
