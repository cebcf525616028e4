"""The hub signs its audit chain's head into a checkpoint file outside its audit database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import delete

from onerecord.audit import (
    audit_chain_head,
    audit_event_table,
    audit_verify_command,
    make_audit_engine,
)
from onerecord.hub.app import create_hub_app
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.settings import HubSettings
from onerecord.trust.errors import DevelopmentKeyRefused
from onerecord.trust.keys import SigningKey, load_or_create_dev_key
from tests.conftest import Database
from tests.hub.conftest import HCID_HSO, make_region

pytestmark = pytest.mark.anyio
BASE = "http://hub.test"
SEARCH = f"{BASE}/fhir/DocumentReference"


def _settings(database: Database, tmp_path: Path, *, dev_mode: bool = True) -> HubSettings:
    load_or_create_dev_key(tmp_path / "keys", name="audit-checkpoint")
    return HubSettings(
        public_base_url=BASE,
        issuer="http://127.0.0.1:9/sts",
        jwks_url="http://127.0.0.1:9/sts/jwks",
        key_dir=tmp_path / "keys",
        dev_mode=dev_mode,
        audit_db_url=database.url,
        audit_db_schema=database.schema,
        audit_checkpoint_file=tmp_path / "elsewhere" / "hub-checkpoints.jsonl",
        audit_checkpoint_key_file=tmp_path / "keys" / "dev-audit-checkpoint.jwk.json",
        hub_id="hub-1",
    )


def _verify(database: Database, settings: HubSettings) -> tuple[int, str]:
    out = io.StringIO()
    code = audit_verify_command(
        database.url,
        database.schema,
        checkpoints=settings.audit_checkpoint_file,
        checkpoint_key=settings.audit_checkpoint_key_file,
        dev_mode=True,
        out=out,
    )
    return code, out.getvalue()


async def test_hub_checkpoints_its_audit_and_verify_catches_a_deleted_chain(
    database: Database, tmp_path: Path
) -> None:
    settings = _settings(database, tmp_path)
    app = create_hub_app(settings, directory=RegionDirectory.from_regions([make_region(HCID_HSO)]))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            for _ in range(2):
                r = await http.get(
                    SEARCH,
                    params={"patient.identifier": "urn:oid:2.16.578.1.12.4.1.4.1|13116900216"},
                )
                assert r.status_code == 401  # refused and audited
    assert (await anyio.to_thread.run_sync(_verify, database, settings)) == (
        0,
        "hub-1: ok (2 events, checkpointed to seq 2)\n",
    )
    engine = make_audit_engine(database.url, schema=database.schema)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(audit_event_table))
            await conn.execute(delete(audit_chain_head))
    finally:
        await engine.dispose()
    code, output = await anyio.to_thread.run_sync(_verify, database, settings)
    assert code == 1 and output.startswith("hub-1: BROKEN at seq 1: rows deleted")


def test_hub_refuses_a_development_checkpoint_key_outside_dev_mode(
    sqlite_database: Database, tmp_path: Path
) -> None:
    hub_key = tmp_path / "hub.jwk.json"  # a production assertion key: only the other is refused
    hub_key.write_text(json.dumps(SigningKey.generate(kid="hub-1").private_jwk()))
    settings = _settings(sqlite_database, tmp_path, dev_mode=False).model_copy(
        update={"key_file": hub_key}
    )
    with pytest.raises(DevelopmentKeyRefused, match="dev-audit-checkpoint"):
        create_hub_app(settings, directory=RegionDirectory.from_regions([make_region(HCID_HSO)]))


async def test_hub_creates_its_checkpoint_file_at_start_up(
    sqlite_database: Database, tmp_path: Path
) -> None:
    """So that `verify --checkpoints` right after start-up finds the file (and no lines)."""
    settings = _settings(sqlite_database, tmp_path)
    app = create_hub_app(settings, directory=RegionDirectory.from_regions([make_region(HCID_HSO)]))
    assert settings.audit_checkpoint_file is not None
    async with app.router.lifespan_context(app):
        assert settings.audit_checkpoint_file.read_text() == ""
        assert (await anyio.to_thread.run_sync(_verify, sqlite_database, settings))[0] == 0
