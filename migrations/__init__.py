"""Alembic migrations: the only way Portico's schema changes (see `portico.migrate`)."""
