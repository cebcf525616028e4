"""A real source process signs its audit chain's head into a checkpoint file outside its database.

Regression tests for issue 10 E (a deleted or rewritten audit chain verified as whole).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import delete

from onerecord.audit import audit_chain_head, audit_event_table
from onerecord.source.database import make_engine
from onerecord.source.settings import SourceSettings
from onerecord.trust.keys import SigningKey, load_or_create_dev_key
from tests.conftest import Database
from tests.source.conftest import HCID, source_serve_args
from tests.support.servers import free_port, serve_process

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
PATIENT = "13116900216"


def _serve_args(database: Database, tmp_path: Path, port: int, key: Path, dev: bool) -> list[str]:
    return source_serve_args(
        database,
        tmp_path / "content",
        port,
        # Never asked: the requests below carry no token and are refused (and audited) first.
        "--issuer",
        "http://127.0.0.1:9/sts",
        "--audit-checkpoints",
        str(tmp_path / "elsewhere" / "audit-checkpoints.jsonl"),
        "--audit-checkpoint-key",
        str(key),
        *(("--dev",) if dev else ()),
    )


def _verify(database: Database, tmp_path: Path, key: Path) -> subprocess.CompletedProcess[str]:
    args = [
        "--db",
        database.url,
        "--checkpoints",
        str(tmp_path / "elsewhere" / "audit-checkpoints.jsonl"),
    ]
    if database.schema:
        args += ["--db-schema", database.schema]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "onerecord.cli",
            "audit",
            "verify",
            *args,
            "--checkpoint-key",
            str(key),
            "--dev",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _delete_every_audit_row(database: Database) -> None:
    engine = make_engine(database.url, schema=database.schema)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(audit_event_table))
            await conn.execute(delete(audit_chain_head))
    finally:
        await engine.dispose()


def test_source_process_checkpoints_its_audit_and_verify_catches_a_deleted_chain(
    database: Database, tmp_path: Path
) -> None:
    load_or_create_dev_key(tmp_path / "keys", name="audit-checkpoint")
    key = tmp_path / "keys" / "dev-audit-checkpoint.jwk.json"
    checkpoints = tmp_path / "elsewhere" / "audit-checkpoints.jsonl"
    port = free_port()
    env = {"ONERECORD_SOURCE_AUDIT_CHECKPOINT_EVERY": "2"}
    with serve_process(_serve_args(database, tmp_path, port, key, dev=True), port, env=env):
        for _ in range(3):
            r = httpx.get(
                f"http://127.0.0.1:{port}/fhir/DocumentReference",
                params={"patient.identifier": f"{FNR}|{PATIENT}"},
                timeout=30,
            )
            assert r.status_code == 401  # refused and audited
        deadline = time.monotonic() + 10
        while not checkpoints.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [json.loads(line)["seq"] for line in checkpoints.read_text().splitlines()] == [2]
    # Shutdown wrote the pending head.
    assert [json.loads(line)["seq"] for line in checkpoints.read_text().splitlines()] == [2, 3]

    ok = _verify(database, tmp_path, key)
    assert (ok.returncode, ok.stdout) == (0, f"{HCID}: ok (3 events, checkpointed to seq 3)\n")
    anyio.run(_delete_every_audit_row, database)
    broken = _verify(database, tmp_path, key)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"{HCID}: BROKEN at seq 1: rows deleted")


def test_source_refuses_a_development_checkpoint_key_outside_dev_mode(
    sqlite_database: Database, tmp_path: Path
) -> None:
    load_or_create_dev_key(tmp_path / "keys", name="audit-checkpoint")
    key = tmp_path / "keys" / "dev-audit-checkpoint.jwk.json"
    args = _serve_args(sqlite_database, tmp_path, free_port(), key, dev=False)
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "refusing development signing key" in done.stderr
    assert "Traceback" not in done.stderr


def test_source_settings_need_both_checkpoint_file_and_key(tmp_path: Path) -> None:
    key = tmp_path / "key.jwk.json"
    key.write_text(json.dumps(SigningKey.generate(kid="cp").private_jwk()))
    with pytest.raises(ValueError, match="both a checkpoint file and a key file"):
        SourceSettings(dev_mode=True, dev_open_access=True, audit_checkpoint_key_file=key)
