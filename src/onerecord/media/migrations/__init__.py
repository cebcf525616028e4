"""Alembic migrations of the media archive's database (run by onerecord.media.migrate)."""
