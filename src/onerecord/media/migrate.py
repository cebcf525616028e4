"""Bring a media archive database to the newest schema with alembic (onerecord/media/migrations)."""

from __future__ import annotations

from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.sqldb import Migrations

__all__ = ["VERSION_TABLE", "alembic_config", "current_revision", "head_revision", "upgrade"]

VERSION_TABLE = "media_alembic_version"  # migrations/env.py takes it from here
MIGRATIONS = Migrations("onerecord.media.migrations", VERSION_TABLE)


def alembic_config(connection: Connection | None = None) -> Config:
    """Return an alembic Config for the packaged migrations, bound to `connection` if given."""
    return MIGRATIONS.alembic_config(connection)


def head_revision() -> str:
    """Return the newest revision the package knows."""
    return MIGRATIONS.head_revision()


async def upgrade(engine: AsyncEngine) -> None:
    """Run `alembic upgrade head` on the engine's database (and PostgreSQL schema)."""
    await MIGRATIONS.upgrade(engine)


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the revision the database is at, or None if it was never migrated."""
    return await MIGRATIONS.current_revision(engine)
