"""Alembic environment: run migrations on a connection given by the caller, or on a URL.

`onerecord.source.migrate.upgrade` passes a synchronous connection (from an async engine via
`run_sync`) in `config.attributes["connection"]`. From the command line, give the database with
`-x url=... [-x schema=...]`; an async engine is then built the same way the server builds it.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from onerecord.source.database import make_engine
from onerecord.source.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str, schema: str | None) -> None:
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported; give -x url=...")
    args = context.get_x_argument(as_dictionary=True)
    url = args.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=sqlite:///path or postgresql://...")
    asyncio.run(_run_on_url(url, args.get("schema")))


_main()
