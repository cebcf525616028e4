"""The archive's alembic migrations: packaged, idempotent, and equal to the schema modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

from onerecord.audit import audit_metadata
from onerecord.media.database import make_engine
from onerecord.media.migrate import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from onerecord.media.schema import media_metadata
from tests.conftest import Database

pytestmark = pytest.mark.anyio


def _all_tables() -> MetaData:
    combined = MetaData()
    for part in (media_metadata, audit_metadata):
        for table in part.tables.values():
            table.to_metadata(combined)
    return combined


def test_migration_files_ship_inside_the_package() -> None:
    folder = Path(alembic_config().get_main_option("script_location") or "")
    for name in ("alembic.ini", "script.py.mako", "env.py"):
        assert (folder / name).is_file()
    assert head_revision() == "0003_manifest_lease"


async def test_upgrade_twice_and_the_result_matches_the_schema(database: Database) -> None:
    engine = make_engine(database.url, schema=database.schema)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()

        def diff(conn: Connection) -> list[Any]:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            return [
                d
                for d in compare_metadata(context, _all_tables())
                if not (
                    isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == VERSION_TABLE
                )
            ]

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"media_instance", "audit_event", VERSION_TABLE} <= tables
        assert "alembic_version" not in tables  # never the document source's version table
    finally:
        await engine.dispose()
