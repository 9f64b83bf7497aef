"""revisions and labels: the module revision each client is pinned to and each run applies,
and each client's labels

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("revision", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="{}"))
        batch.create_index("ix_clients_revision", ["revision"], unique=False)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("revision", sa.String(length=64), nullable=True))
    # The module that built a client's state is the revision it is pinned to.
    op.execute("UPDATE clients SET revision = module_version WHERE module_version IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("revision")
    with op.batch_alter_table("clients") as batch:
        batch.drop_index("ix_clients_revision")
        batch.drop_column("labels")
        batch.drop_column("revision")
