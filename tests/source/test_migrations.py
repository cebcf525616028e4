"""Alembic migrations: packaged, idempotent, and equal to onerecord.source.schema."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

from onerecord.audit import audit_metadata
from onerecord.source.database import make_engine
from onerecord.source.migrate import alembic_config, current_revision, head_revision, upgrade
from onerecord.source.patient_controls import controls_metadata
from onerecord.source.schema import metadata
from tests.conftest import Database

pytestmark = pytest.mark.anyio


def _all_tables() -> MetaData:
    """Registry, audit and patient-control tables: everything the migrations create."""
    combined = MetaData()
    for part in (metadata, audit_metadata, controls_metadata):
        for table in part.tables.values():
            table.to_metadata(combined)
    return combined


def test_migration_files_ship_inside_the_package() -> None:
    folder = Path(alembic_config().get_main_option("script_location") or "")
    assert (folder / "alembic.ini").is_file()
    assert (folder / "script.py.mako").is_file()
    assert (folder / "env.py").is_file()
    first = importlib.import_module("onerecord.source.migrations.versions.0001_registry")
    assert first.revision == "0001_registry"
    assert first.down_revision is None
    second = importlib.import_module("onerecord.source.migrations.versions.0002_audit_and_controls")
    assert second.down_revision == "0001_registry"
    assert second.revision == "0002_audit_and_controls"
    third = importlib.import_module("onerecord.source.migrations.versions.0003_stored_rendering")
    assert third.down_revision == "0002_audit_and_controls"
    assert third.revision == head_revision()


async def test_upgrade_creates_schema_and_twice_is_a_no_op(database: Database) -> None:
    engine = make_engine(database.url, schema=database.schema)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()

        def tables(conn: Connection) -> set[str]:
            return set(inspect(conn).get_table_names())

        async with engine.connect() as conn:
            before = await conn.run_sync(tables)
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(tables) == before
        assert {"document_entry", "document_label", "document_code", "submission_set"} <= before
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_migrated_database_matches_schema_module(database: Database) -> None:
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)

        def diff(conn: Connection) -> list[Any]:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return [
                d
                for d in compare_metadata(context, _all_tables())
                if not (
                    isinstance(d, tuple)
                    and d[0] == "remove_table"
                    and d[1].name == "alembic_version"
                )
            ]

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []

        def index_names(conn: Connection) -> set[str]:
            return {i["name"] or "" for i in inspect(conn).get_indexes("document_entry")}

        async with engine.connect() as conn:
            names = await conn.run_sync(index_names)
        assert {
            "ix_document_entry_patient_creation",
            "ix_document_entry_patient_period",
            "ix_document_entry_patient_title",
        } <= names
    finally:
        await engine.dispose()
