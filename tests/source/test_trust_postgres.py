"""The trust path on PostgreSQL: audit chain and patient controls in the region's database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from onerecord.audit import AuditAction, SqlAuditSink
from onerecord.source.database import make_engine
from tests.conftest import Database
from tests.factories import make_entry, sample_pdf
from tests.source.trust_harness import HCID, start_network


async def _audit(db: Database, patient: str) -> tuple[list[AuditAction], bool]:
    engine = make_engine(db.url, schema=db.schema)
    try:
        sink = SqlAuditSink(engine, HCID)
        records = await sink.records([patient])
        return [r.action for r in records], (await sink.verify()).ok
    finally:
        await engine.dispose()


@pytest.mark.postgres
def test_trust_path_audits_and_controls_on_postgres(
    postgres_schema: Database, tmp_path: Path
) -> None:
    with start_network(tmp_path, db_url=postgres_schema.url, schema=postgres_schema.schema) as net:
        patient = net.citizen("adult")
        content = sample_pdf("pg")
        e = make_entry(patient_id=patient, content=content)
        net.publish([(e, content)])
        token = net.hcp_token(patient)
        r = net.search(token, patient)
        assert r.status_code == 200 and r.json()["total"] == 1
        citizen = net.citizen_token("adult")
        assert net.send(citizen, "PUT", "/controls/reservation").status_code == 200
        assert net.search(net.hcp_token(patient), patient).json()["total"] == 0
        assert net.send(citizen, "DELETE", "/controls/reservation").status_code == 200
        assert net.search(net.hcp_token(patient), patient).json()["total"] == 1
        actions, ok = asyncio.run(_audit(postgres_schema, patient))
    assert ok
    assert actions.count(AuditAction.SEARCH) == 3
    assert actions.count(AuditAction.CONTROL_CHANGE) == 2
