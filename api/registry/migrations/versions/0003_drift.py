"""drift: each client's last check and remediation policy, and a short history of checks

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("remediation", sa.String(length=16), nullable=False, server_default="report")
        )
        batch_op.add_column(
            sa.Column("drift_status", sa.String(length=16), nullable=False, server_default="unknown")
        )
        batch_op.add_column(sa.Column("drift_checked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("drift_reason", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("drift_resources", sa.JSON(), nullable=True))
        batch_op.create_index("ix_clients_drift_status", ["drift_status"], unique=False)
        batch_op.create_index("ix_clients_target", ["target"], unique=False)
        batch_op.create_index("ix_clients_created_at", ["created_at"], unique=False)
    op.create_table(
        "drift_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("drift_checks", schema=None) as batch_op:
        batch_op.create_index("ix_drift_checks_client_checked", ["client_id", "checked_at"], unique=False)
        batch_op.create_index("ix_drift_checks_flow_run_id", ["flow_run_id"], unique=False)


def downgrade() -> None:
    op.drop_table("drift_checks")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index("ix_clients_created_at")
        batch_op.drop_index("ix_clients_target")
        batch_op.drop_index("ix_clients_drift_status")
        for column in ("drift_resources", "drift_reason", "drift_checked_at", "drift_status", "remediation"):
            batch_op.drop_column(column)
