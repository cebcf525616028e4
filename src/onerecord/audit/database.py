"""An audit database of its own: SQLite by default, PostgreSQL (own schema) in production.

For the services that keep an audit chain outside a region's database and create its tables
themselves, without migrations: the national hub (which puts its outbox in such a database too)
and the population register's patient lookup at the token service. A region's or the dialogue's
audit lives in that service's database, created by its migrations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from onerecord.audit.store import audit_metadata

__all__ = ["create_audit_tables", "make_audit_engine"]


def make_audit_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """Create an async engine for `sqlite:///FILE` or `postgresql://…` (search_path = schema)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_async_engine(
            str(parsed.set(drivername="sqlite+aiosqlite")), connect_args={"timeout": 30}
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if backend not in {"postgresql", "postgres"}:
        raise ValueError(f"unsupported audit database {backend!r}: use sqlite:/// or postgresql://")
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
        pool_size=5,
        connect_args=connect_args,
    )


async def create_audit_tables(engine: AsyncEngine) -> None:
    """Create the audit tables if they are missing (no migrations: the tables are the chain's)."""
    async with engine.begin() as conn:
        await conn.run_sync(audit_metadata.create_all)
