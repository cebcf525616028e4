"""The dialogue database: an engine on SQLite (default) or PostgreSQL, and its migrations.

Both from `onerecord.sqldb`. The alembic files ship inside the package and keep their own
version table (`dialogue_alembic_version`), so the service can share a database with another
part.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.sqldb import Migrations
from onerecord.sqldb import make_engine as _make_engine

__all__ = ["VERSION_TABLE", "current_revision", "head_revision", "make_engine", "upgrade"]

VERSION_TABLE = "dialogue_alembic_version"
MIGRATIONS = Migrations("onerecord.dialogue.migrations", VERSION_TABLE)


def make_engine(url: str, *, schema: str | None = None, pool_size: int = 5) -> AsyncEngine:
    """Create the async engine for `url` (sqlite:/// or postgresql://), in `schema` if given."""
    return _make_engine(url, schema=schema, pool_size=pool_size)


def head_revision() -> str:
    """Return the newest revision the package knows."""
    return MIGRATIONS.head_revision()


async def upgrade(engine: AsyncEngine) -> None:
    """Run `alembic upgrade head` on the engine's database (and PostgreSQL schema)."""
    await MIGRATIONS.upgrade(engine)


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the revision the database is at, or None before the first migration."""
    return await MIGRATIONS.current_revision(engine)
