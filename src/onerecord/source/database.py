"""The registry's database engine: SQLite (embedded default) or PostgreSQL (`onerecord.sqldb`).

SQLite with `synchronous=NORMAL` under WAL: a committed registration survives the process, and
the group commit (docs/source.md) keeps fsyncs few.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.sqldb import async_url, is_sqlite
from onerecord.sqldb import make_engine as _make_engine

__all__ = ["async_url", "is_sqlite", "make_engine"]


def make_engine(url: str, *, schema: str | None = None, pool_size: int = 10) -> AsyncEngine:
    """Create the registry's async engine (sqlite:/// or postgresql://, in `schema` if given)."""
    return _make_engine(
        url, schema=schema, pool_size=pool_size, sqlite_pragmas=("synchronous=NORMAL",)
    )
