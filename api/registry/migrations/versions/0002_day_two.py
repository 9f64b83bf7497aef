"""day two: the module version that built a client's state, approval policy, who cancelled

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("module_version", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("approval", sa.String(length=16), nullable=False, server_default="auto")
        )
        batch_op.create_index("ix_clients_status", ["status"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
        batch_op.create_index("ix_runs_client_created", ["client_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_client_created")
        batch_op.drop_column("cancel_reason")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index("ix_clients_status")
        batch_op.drop_column("approval")
        batch_op.drop_column("module_version")
