"""`onerecord audit verify`: recompute every audit chain in a database and report.

The engine is built here from the URL (sqlite:// → aiosqlite, postgresql:// → asyncpg) so that
the audit package needs nothing from the source package; `cli.py` only calls this.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from onerecord.audit.chain import VerifyResult
from onerecord.audit.store import SqlAuditSink, audit_chain_head, audit_event_table

__all__ = ["audit_verify_command", "verify_all"]


def _engine(db_url: str, schema: str | None) -> AsyncEngine:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return create_async_engine(url.set(drivername="sqlite+aiosqlite"))
    if url.get_backend_name() in {"postgresql", "postgres"}:
        args = {"server_settings": {"search_path": schema}} if schema else {}
        return create_async_engine(url.set(drivername="postgresql+asyncpg"), connect_args=args)
    raise ValueError(f"unsupported database {url.get_backend_name()!r}")


async def verify_all(engine: AsyncEngine) -> dict[str, VerifyResult]:
    """Verify the chain of every source that has audit rows or a chain head."""
    async with engine.connect() as conn:
        heads = (await conn.execute(select(audit_chain_head.c.source_id))).scalars().all()
        with_rows = (
            (await conn.execute(select(audit_event_table.c.source_id).distinct())).scalars().all()
        )
    return {
        source_id: await SqlAuditSink(engine, source_id).verify()
        for source_id in sorted({*heads, *with_rows})
    }


def audit_verify_command(
    db_url: str, schema: str | None = None, *, out: TextIO | None = None
) -> int:
    """Verify all audit chains, print one line per source, return 1 if any chain is broken."""
    stream = out or sys.stdout

    async def run() -> dict[str, VerifyResult]:
        engine = _engine(db_url, schema)
        try:
            return await verify_all(engine)
        finally:
            await engine.dispose()

    results = asyncio.run(run())
    broken = False
    for source_id, result in results.items():
        if result.ok:
            stream.write(f"{source_id}: ok ({result.checked} events)\n")
        else:
            broken = True
            stream.write(
                f"{source_id}: BROKEN at seq {result.first_bad_seq}: {result.reason} "
                f"({result.checked} events verified before it)\n"
            )
    if not results:
        stream.write("no audit chains found\n")
    return 1 if broken else 0
