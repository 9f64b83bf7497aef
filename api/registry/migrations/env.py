"""Alembic environment: runs on the connection handed over by ``api.registry.db.migrate``."""

from alembic import context

import api.registry.rollouts  # noqa: F401  (its tables in the one metadata)
from api.registry.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
