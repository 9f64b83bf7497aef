"""api_keys.scope holds "policy:override" (15 characters): the column is widened to 16

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", existing_type=sa.String(length=8), type_=sa.String(length=16))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", existing_type=sa.String(length=16), type_=sa.String(length=8))
