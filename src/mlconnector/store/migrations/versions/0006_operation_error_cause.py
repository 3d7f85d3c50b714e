"""operations.error_cause: the normalized last error the Operations page groups by

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlconnector.store.queries import error_cause

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_cause", sa.String(length=300), nullable=True))
        batch_op.create_index(
            "ix_operations_state_error_cause", ["state", "error_cause", "updated_at"]
        )
    # the failed and dead operations of before: their cause from their last error
    table = sa.table(
        "operations",
        sa.column("id", sa.Integer),
        sa.column("state", sa.String),
        sa.column("last_error", sa.Text),
        sa.column("error_cause", sa.String),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(table.c.id, table.c.last_error).where(table.c.state.in_(["failed", "dead"]))
    ).all()
    for start in range(0, len(rows), _BATCH):
        conn.execute(
            table.update().where(table.c.id == sa.bindparam("op_id")),
            [
                {"op_id": op_id, "error_cause": error_cause(message)}
                for op_id, message in rows[start : start + _BATCH]
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index("ix_operations_state_error_cause")
        batch_op.drop_column("error_cause")
