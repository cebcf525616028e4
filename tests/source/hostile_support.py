"""What a hostile-input test needs to see of a real source: registry rows and content files."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg

from tests.conftest import POSTGRES_URL
from tests.source.conftest import SourceServer

__all__ = ["content_files", "registry_rows"]


def registry_rows(server: SourceServer) -> tuple[int, int]:
    """(DocumentEntries, SubmissionSets) registered at `server`, read from its database."""
    settings = server.settings
    sql = "SELECT (SELECT count(*) FROM document_entry), (SELECT count(*) FROM submission_set)"
    if settings.db_url.startswith("sqlite"):
        path = settings.db_url.split("///", 1)[1]
        with sqlite3.connect(path) as conn:
            entries, sets = conn.execute(sql).fetchone()
        return int(entries), int(sets)

    async def count() -> tuple[int, int]:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(f'SET search_path TO "{settings.db_schema}"')
            row = await conn.fetchrow(sql)
        finally:
            await conn.close()
        assert row is not None
        return int(row[0]), int(row[1])

    return asyncio.run(count())


def content_files(server: SourceServer) -> frozenset[str]:
    """Every file under the source's content directory (blobs and partial writes)."""
    root = Path(server.settings.content_dir)
    if not root.exists():
        return frozenset()
    return frozenset(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
