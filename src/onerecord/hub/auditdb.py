"""The hub's own audit database: SQLite by default, PostgreSQL (own schema) in production.

With a checkpoint file and key in the settings, the hub's chain head is signed into that file
(audit/checkpoint.py), so that `onerecord audit verify --checkpoints …` notices a rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from onerecord.audit import (
    Checkpointer,
    FileCheckpointLog,
    SqlAuditSink,
    audit_metadata,
    load_checkpoint_key,
)

if TYPE_CHECKING:
    from onerecord.hub.settings import HubSettings

__all__ = ["create_audit_tables", "hub_audit_sink", "make_audit_engine"]


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
    """Create the audit tables if they are missing (the hub has no other tables)."""
    async with engine.begin() as conn:
        await conn.run_sync(audit_metadata.create_all)


def hub_audit_sink(engine: AsyncEngine, settings: HubSettings) -> SqlAuditSink:
    """The hub's audit chain, checkpointed when the settings name a checkpoint file and key.

    A development checkpoint key is refused outside dev mode (DevelopmentKeyRefused).
    """
    checkpoints = None
    if settings.audit_checkpoint_file and settings.audit_checkpoint_key_file:
        checkpoints = Checkpointer(
            key=load_checkpoint_key(settings.audit_checkpoint_key_file, dev_mode=settings.dev_mode),
            log=FileCheckpointLog(settings.audit_checkpoint_file),
            source_id=settings.hub_id,
            every=settings.audit_checkpoint_every,
            interval=settings.audit_checkpoint_interval_s,
        )
    return SqlAuditSink(
        engine,
        settings.hub_id,
        checkpoints=checkpoints,
        group_commit=settings.audit_group_commit,
    )
