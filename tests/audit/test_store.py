"""SqlAuditSink on SQLite and PostgreSQL: chain, tamper detection, concurrency, citizen log."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit import (
    AuditOutcome,
    MemoryAuditSink,
    SqlAuditSink,
    audit_event_table,
    audit_verify_command,
)
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from tests.audit.factories import T0, citizen_record, retrieve_record, search_record
from tests.conftest import Database
from tests.trust.policy_factories import PATIENT, PRACTITIONER

pytestmark = pytest.mark.anyio
SOURCE = "helse-sor-ost"


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _filled(engine: AsyncEngine, n: int = 5) -> SqlAuditSink:
    sink = SqlAuditSink(engine, SOURCE)
    await sink.append([search_record(i) for i in range(n - 1)])
    await sink.append([retrieve_record(n - 1)])
    return sink


async def test_appended_chain_verifies_and_reads_back(engine: AsyncEngine) -> None:
    sink = await _filled(engine)
    result = await sink.verify()
    assert result.ok and result.checked == 5
    records = await sink.records([PATIENT.value])
    assert records == [*(search_record(i) for i in range(4)), retrieve_record(4)]


async def test_edited_row_is_detected(engine: AsyncEngine) -> None:
    sink = await _filled(engine)
    async with engine.begin() as conn:
        await conn.execute(
            update(audit_event_table)
            .where(audit_event_table.c.seq == 3)
            .values(outcome=AuditOutcome.DENIED.value)
        )
    result = await sink.verify()
    assert not result.ok and result.first_bad_seq == 3


async def test_edited_event_json_is_detected(engine: AsyncEngine) -> None:
    sink = await _filled(engine)
    forged = search_record(1, returned_count=0).to_dict()
    async with engine.begin() as conn:
        await conn.execute(
            update(audit_event_table).where(audit_event_table.c.seq == 2).values(event=forged)
        )
    assert (await sink.verify()).first_bad_seq == 2


@pytest.mark.parametrize(("deleted", "bad"), [(2, 2), (5, 5)])
async def test_deleted_row_is_detected(engine: AsyncEngine, deleted: int, bad: int) -> None:
    sink = await _filled(engine)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": deleted})
    result = await sink.verify()
    assert not result.ok and result.first_bad_seq == bad


async def test_reordered_rows_are_detected(engine: AsyncEngine) -> None:
    sink = await _filled(engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE audit_event SET seq = 100 WHERE seq = 2"))
        await conn.execute(text("UPDATE audit_event SET seq = 2 WHERE seq = 3"))
        await conn.execute(text("UPDATE audit_event SET seq = 3 WHERE seq = 100"))
    result = await sink.verify()
    assert not result.ok and result.first_bad_seq == 2


async def test_concurrent_appends_keep_one_chain_per_source(engine: AsyncEngine) -> None:
    region = SqlAuditSink(engine, SOURCE)
    hub = SqlAuditSink(engine, "hub")

    async def writer(sink: SqlAuditSink, k: int) -> None:
        for i in range(3):
            await sink.append([search_record(k * 10 + i), retrieve_record(k * 10 + i)])

    async with anyio.create_task_group() as tg:
        for k in range(8):
            tg.start_soon(writer, region, k)
            tg.start_soon(writer, hub, k)
    for sink in (region, hub):
        result = await sink.verify()
        assert result.ok and result.checked == 8 * 3 * 2


async def test_citizen_log_shows_names_not_numbers(engine: AsyncEngine) -> None:
    sink = await _filled(engine, 3)
    await sink.append(
        [
            retrieve_record(10, emergency_override=True),
            search_record(11, outcome=AuditOutcome.DENIED, reason="role-not-allowed"),
            citizen_record(12),
        ]
    )
    log = await sink.citizen_log([PATIENT.value])
    assert len(log) == 4  # 2 searches + 2 retrieves; the denial and the citizen's read are not
    newest = log[0]
    assert newest.time == T0 + timedelta(seconds=10)
    assert newest.who_name == "Kari Lege"
    assert newest.organisation == "Testsykehuset Ullevål" and newest.department == "Akuttmottak"
    assert newest.purpose == "Behandling" and newest.healthcare_service == "Allmennlege"
    assert newest.documents_opened and newest.emergency
    assert not log[-1].documents_opened
    rendered = repr(log)
    assert PRACTITIONER.value not in rendered and not re.search(r"\d{11}", rendered)
    # The HPR number and the uniqueIds are kept for the region's answer to the portal's server,
    # which keys readers by a keyed hash of the number and names only documents the log's
    # reader may see (docs/policy.md, "Titles in the access log"); the page shows neither.
    assert {e.hpr for e in log} == {"123456789"}
    assert newest.document_ids == ("2.16.578.1.12.4.5.100.1.1.7",)
    assert log[-1].document_ids == ()
    later = await sink.citizen_log([PATIENT.value], since=T0 + timedelta(seconds=5))
    assert [e.time for e in later] == [T0 + timedelta(seconds=10)]
    assert await sink.citizen_log(["01010100000"]) == []


async def test_memory_sink_gives_the_same_citizen_log(engine: AsyncEngine) -> None:
    records = [search_record(1), retrieve_record(2), citizen_record(3)]
    memory = MemoryAuditSink()
    sql = SqlAuditSink(engine, SOURCE)
    for sink in (memory, sql):
        await sink.append(records)
    assert await memory.citizen_log([PATIENT.value]) == await sql.citizen_log([PATIENT.value])


async def test_verify_command_exit_codes(engine: AsyncEngine, database: Database) -> None:
    await _filled(engine)

    def run() -> tuple[int, str]:
        out = io.StringIO()
        code = audit_verify_command(database.url, database.schema, out=out)
        return code, out.getvalue()

    code, output = await anyio.to_thread.run_sync(run)
    assert code == 0 and f"{SOURCE}: ok (5 events)" in output
    async with engine.begin() as conn:
        await conn.execute(delete(audit_event_table).where(audit_event_table.c.seq == 1))
    code, output = await anyio.to_thread.run_sync(run)
    assert code == 1 and "BROKEN at seq 1" in output
