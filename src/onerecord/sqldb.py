"""Database engines and packaged migrations, shared by every service that keeps a database.

The document source, the media archive and the dialogue service each own their database and
their alembic files; how an engine is made and how a package's migrations are run is the same
for all of them, so it lives here (like `group_commit.py`, a shared piece with no service in it).

One code path serves the embedded default (SQLite) and production (PostgreSQL): SQLAlchemy Core
over aiosqlite or asyncpg. A PostgreSQL schema can be chosen per engine (`schema=`), which is how
tests isolate themselves inside one database. `UtcDateTime` (instants) and `JsonDocument` are the
column types that every service's tables and the audit chain's share.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, DateTime, Dialect, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "JsonDocument",
    "Migrations",
    "UtcDateTime",
    "async_url",
    "is_sqlite",
    "make_engine",
    "run_alembic_env",
    "sqlite_sync_twin",
]

_SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000")
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


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


# A JSON column: JSONB on PostgreSQL, JSON (text) elsewhere.
JsonDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC and read back with tzinfo=UTC on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite keeps text: drop the zone so every stored value has one fixed-width form that
        # compares correctly as a string.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def make_engine(
    url: str,
    *,
    schema: str | None = None,
    pool_size: int = 10,
    sqlite_pragmas: Sequence[str] = (),
) -> AsyncEngine:
    """Create an async engine; on SQLite with WAL and foreign keys, on PostgreSQL in `schema`.

    On SQLite every transaction starts with an explicit BEGIN (DEFERRED unless the connection's
    execution option `sqlite_begin` says "IMMEDIATE"), so reads and writes of one transaction
    see one snapshot; `sqlite_pragmas` adds a service's own (e.g. `synchronous=NORMAL`). The
    folder of a SQLite file is made if missing. JSON columns go through orjson.
    """
    full = async_url(url)
    codec: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(full, **codec, connect_args={"timeout": 30})
        pragmas = (*_SQLITE_PRAGMAS, *sqlite_pragmas)
        _configure_sqlite(engine.sync_engine, pragmas)
        _SQLITE_PRAGMAS_OF[engine] = pragmas
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        full, **codec, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args
    )


def _configure_sqlite(engine: Engine, pragmas: Sequence[str]) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()
        # The driver's own implicit BEGIN comes too late (not before SELECT) and is always
        # DEFERRED; SQLAlchemy emits BEGIN itself instead (see _sqlite_begin).
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # A writer that reads first (check, then insert) asks for BEGIN IMMEDIATE through
        # execution_options(sqlite_begin="IMMEDIATE"): it takes the write lock up front and
        # waits on busy_timeout, instead of failing later with "database is locked".
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode not in _BEGIN_MODES:
            raise ValueError(f"unknown sqlite_begin mode {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


_SQLITE_PRAGMAS_OF: weakref.WeakKeyDictionary[AsyncEngine, tuple[str, ...]] = (
    weakref.WeakKeyDictionary()
)


def sqlite_sync_twin(engine: AsyncEngine) -> Engine | None:
    """For a SQLite engine of `make_engine`, a synchronous engine on the same file and settings.

    aiosqlite hands every call (cursor, execute, fetch, close) to its connection's thread and
    back, ≈ 0.2 ms each on a loaded machine; a short write transaction run whole in one worker
    thread on this twin (`anyio.to_thread.run_sync`) costs one hand-over instead of dozens.
    None for PostgreSQL (asyncpg has no such cost) and for in-memory databases (another
    connection would be another database).
    """
    pragmas = _SQLITE_PRAGMAS_OF.get(engine)
    database = engine.url.database
    if pragmas is None or not database or database == ":memory:":
        return None
    codec: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    twin = create_engine(
        engine.url.set(drivername="sqlite"),
        **codec,
        connect_args={"timeout": 30, "check_same_thread": False},
    )
    _configure_sqlite(twin, pragmas)
    return twin


@dataclass(frozen=True, slots=True)
class Migrations:
    """A package's alembic migrations, run from inside the program.

    The alembic files ship inside the package (`package`, e.g. "onerecord.source.migrations")
    and are found with importlib.resources, so this works from any working directory and from
    an installed wheel. `version_table`: the package's own version table when several parts
    may share one database (None: alembic's default, `alembic_version`); the package's env.py
    must name the same one.
    """

    package: str
    version_table: str | None = None

    def folder(self) -> Path:
        return Path(str(resources.files(self.package)))

    def alembic_config(self, connection: Connection | None = None) -> Config:
        """Return an alembic Config for the packaged migrations, bound to `connection` if given."""
        folder = self.folder()
        config = Config(str(folder / "alembic.ini"))
        config.set_main_option("script_location", str(folder))
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str:
        """Return the newest revision the package knows."""
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        assert head is not None
        return head

    async def upgrade(self, engine: AsyncEngine) -> None:
        """Run `alembic upgrade head` on the engine's database (and PostgreSQL schema)."""
        async with engine.connect() as connection:
            await connection.run_sync(self._upgrade)
            await connection.commit()

    async def current_revision(self, engine: AsyncEngine) -> str | None:
        """Return the revision the database is at, or None if it was never migrated."""
        async with engine.connect() as connection:
            return await connection.run_sync(self._current)

    def _upgrade(self, connection: Connection) -> None:
        command.upgrade(self.alembic_config(connection), "head")

    def _current(self, connection: Connection) -> str | None:
        opts = {"version_table": self.version_table} if self.version_table else {}
        return MigrationContext.configure(connection, opts=opts).get_current_revision()


def run_alembic_env(
    metadata: MetaData,
    engine_factory: Callable[..., AsyncEngine],
    *,
    version_table: str | None = None,
) -> None:
    """Run a package's migrations from its alembic env.py: on the caller's connection, or a URL.

    `Migrations.upgrade` passes a synchronous connection (from an async engine via `run_sync`)
    in `config.attributes["connection"]`. From the command line, give the database with
    `-x url=... [-x schema=...]`; an async engine is then built with `engine_factory(url,
    schema=...)`, the same way the service builds it. `version_table` must match the
    package's `Migrations.version_table`.
    """
    options: dict[str, Any] = {"version_table": version_table} if version_table else {}

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_on_url(url: str, schema: str | None) -> None:
        engine = engine_factory(url, schema=schema)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await engine.dispose()

    given = context.config.attributes.get("connection")
    if given is not None:
        run(given)
        return
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported; give -x url=...")
    args = context.get_x_argument(as_dictionary=True)
    url = args.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=sqlite:///path or postgresql://...")
    asyncio.run(run_on_url(url, args.get("schema")))
