"""Checks a command makes before it serves: its PostgreSQL database answers and the schema exists.

A `--db-schema` naming a schema that does not exist used to end in a raw traceback from the
first migration; the command now stops with one line naming the database and the schema.
"""

from __future__ import annotations

import asyncio

import asyncpg
import typer
from sqlalchemy.engine import make_url

__all__ = ["DatabaseUnusable", "check_database", "exit_unless_usable"]

UNREACHABLE_EXIT = 1
MISSING_SCHEMA_EXIT = 2


class DatabaseUnusable(Exception):
    """The database cannot be used as configured; `exit_code` says how the command ends."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


async def check_database(url: str, schema: str | None, *, timeout: float = 10.0) -> None:
    """Raise DatabaseUnusable if PostgreSQL at `url` does not answer or lacks `schema`."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        return  # SQLite creates its file; it has no schemas
    shown = parsed.render_as_string(hide_password=True)
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnusable(
            f"cannot reach the database at {shown}: {type(exc).__name__}",
            exit_code=UNREACHABLE_EXIT,
        ) from None
    try:
        if schema and not await conn.fetchval(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1", schema
        ):
            raise DatabaseUnusable(
                f"PostgreSQL schema {schema!r} does not exist in {shown} "
                f'(create it with CREATE SCHEMA "{schema}", or leave the schema option out)',
                exit_code=MISSING_SCHEMA_EXIT,
            )
    finally:
        await conn.close()


def exit_unless_usable(url: str | None, schema: str | None) -> None:
    """End the command with one line on stderr when the database cannot be used."""
    if not url:
        return
    try:
        asyncio.run(check_database(url, schema))
    except DatabaseUnusable as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None
