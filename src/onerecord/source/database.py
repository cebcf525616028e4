"""Database engines for the embedded default (SQLite) and production (PostgreSQL).

One code path serves both: SQLAlchemy Core over aiosqlite or asyncpg. A PostgreSQL schema can be
chosen per engine (`schema=`), which is how tests isolate themselves inside one database.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["async_url", "is_sqlite", "make_engine"]


def async_url(url: str) -> str:
    """Return the async-driver form of a database URL (sqlite → aiosqlite, postgres → asyncpg)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def make_engine(url: str, *, schema: str | None = None, pool_size: int = 10) -> AsyncEngine:
    """Create an async engine; on SQLite with WAL and foreign keys, on PostgreSQL in `schema`.

    On SQLite every transaction starts with an explicit BEGIN (DEFERRED unless the connection's
    execution option `sqlite_begin` says "IMMEDIATE"), so reads and writes of one transaction
    see one snapshot. JSON columns go through orjson: every search decodes one metadata
    document per entry.
    """
    full = async_url(url)
    codec: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if is_sqlite(url):
        engine = create_async_engine(full, **codec, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            # The driver's own implicit BEGIN comes too late (not before SELECT) and is always
            # DEFERRED; SQLAlchemy emits BEGIN itself instead (see _sqlite_begin).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # A writer that reads first (check, then insert) asks for BEGIN IMMEDIATE through
            # execution_options(sqlite_begin="IMMEDIATE"): it takes the write lock up front and
            # waits on busy_timeout, instead of failing later with "database is locked".
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            if mode not in {"DEFERRED", "IMMEDIATE", "EXCLUSIVE"}:
                raise ValueError(f"unknown sqlite_begin mode {mode!r}")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        full, **codec, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args
    )
