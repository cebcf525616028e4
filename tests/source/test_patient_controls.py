"""PatientControlStore on SQLite and PostgreSQL, with the tables made by the migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.domain import DocumentUniqueId, HprNumber
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.patient_controls import PatientControlStore
from onerecord.trust.policy import EntryView, RegionPolicy, hcp_search_policy
from tests.conftest import Database
from tests.trust.policy_factories import PATIENT, PRACTITIONER, TODAY, entry, hcp, synthetic_nin

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


def clock_from(start: datetime):  # type: ignore[no-untyped-def]
    ticks = iter(range(1000))
    return lambda: start + timedelta(minutes=next(ticks))


async def test_no_controls_for_a_new_patient(engine: AsyncEngine) -> None:
    controls = await PatientControlStore(engine).controls_for(PATIENT)
    assert controls.patient == PATIENT
    assert not controls.reserved
    assert controls.blocked_documents == frozenset()
    assert controls.blocked_practitioners == frozenset()


async def test_reserve_keeps_the_first_time_and_unreserve_lifts(engine: AsyncEngine) -> None:
    store = PatientControlStore(engine, clock=clock_from(T0))
    await store.reserve(PATIENT)
    await store.reserve(PATIENT)
    controls = await store.controls_for(PATIENT)
    assert controls.reserved_since == T0
    other = synthetic_nin(TODAY.replace(year=1999))
    assert not (await store.controls_for(other)).reserved
    assert await store.unreserve(PATIENT) is True
    assert await store.unreserve(PATIENT) is False
    assert not (await store.controls_for(PATIENT)).reserved


async def test_document_and_practitioner_blocks(engine: AsyncEngine) -> None:
    store = PatientControlStore(engine)
    doc = DocumentUniqueId("2.16.578.1.12.4.5.100.1.1.900^abc")
    await store.block_document(PATIENT, doc)
    await store.block_document(PATIENT, doc)
    await store.block_practitioner(PATIENT, HprNumber("123456789"))
    await store.block_practitioner(PATIENT, PRACTITIONER)
    controls = await store.controls_for(PATIENT)
    assert controls.blocked_documents == frozenset({doc})
    assert controls.blocked_practitioners == {"123456789", PRACTITIONER.value}
    assert await store.unblock_practitioner(PATIENT, HprNumber("123456789"))
    assert await store.unblock_practitioner(PATIENT, PRACTITIONER)
    assert not await store.unblock_practitioner(PATIENT, PRACTITIONER)
    assert await store.unblock_document(PATIENT, doc)
    assert await store.controls_for(PATIENT) == type(controls)(PATIENT)


async def test_stored_controls_drive_the_policy(engine: AsyncEngine) -> None:
    store = PatientControlStore(engine)
    blocked = entry(unique_id="2.16.578.1.12.4.5.100.1.1.901")
    await store.block_document(PATIENT, blocked.unique_id)
    decision = hcp_search_policy(
        hcp(),
        PATIENT,
        region_policy=RegionPolicy(),
        controls=await store.controls_for(PATIENT),
        today=TODAY,
    )
    assert decision.view(blocked) is EntryView.MASKED
    assert decision.view(entry()) is EntryView.FULL
    await store.reserve(PATIENT)
    decision = hcp_search_policy(
        hcp(),
        PATIENT,
        region_policy=RegionPolicy(),
        controls=await store.controls_for(PATIENT),
        today=TODAY,
    )
    assert decision.empty


async def test_migration_0002_matches_the_table_modules(engine: AsyncEngine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import Connection

    from onerecord.audit import audit_metadata
    from onerecord.source.patient_controls import controls_metadata

    def diff(conn: Connection) -> list[object]:
        found: list[object] = []
        for md in (audit_metadata, controls_metadata):

            def include(name: str | None, type_: str, parents: dict[str, str | None]) -> bool:
                if type_ == "schema":
                    return True
                table = name if type_ == "table" else parents.get("table_name")
                return table in md.tables  # noqa: B023 - used within this iteration only

            opts = {"compare_type": True, "include_name": include}
            found.extend(compare_metadata(MigrationContext.configure(conn, opts=opts), md))
        return found

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
