"""The media archive's alembic revisions."""
