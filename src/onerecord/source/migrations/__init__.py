"""Alembic migrations of the document source registry (run by onerecord.source.migrate)."""
