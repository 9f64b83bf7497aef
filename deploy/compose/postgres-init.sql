-- Prefect's own database, next to the registry's (POSTGRES_DB, "tenantform"): both keep an
-- alembic_version table, so they cannot share one.
CREATE DATABASE prefect;
