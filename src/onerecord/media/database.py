"""The media archive's database engine: SQLite (embedded default) or PostgreSQL (`onerecord.sqldb`).

On SQLite LIKE is made case-sensitive, as it is on PostgreSQL, so C-FIND wildcards match alike
on both.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.sqldb import async_url, is_sqlite
from onerecord.sqldb import make_engine as _make_engine

__all__ = ["async_url", "is_sqlite", "make_engine"]


def make_engine(url: str, *, schema: str | None = None, pool_size: int = 10) -> AsyncEngine:
    """Create the archive's async engine (sqlite:/// or postgresql://, in `schema` if given)."""
    return _make_engine(
        url,
        schema=schema,
        pool_size=pool_size,
        sqlite_pragmas=("synchronous=NORMAL", "case_sensitive_like=ON"),
    )
