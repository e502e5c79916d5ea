"""Alembic migrations: the single source of the relational schema on every backend."""
