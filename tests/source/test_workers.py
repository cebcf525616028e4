"""`onerecord source serve --workers N`: several processes over one registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from onerecord.mhd import build_provide_bundle
from tests.conftest import Database
from tests.factories import make_entry, sample_pdf
from tests.source.conftest import HCID, REPOSITORY
from tests.support.servers import free_port, serve_process

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"


def _args(database: Database, content: Path, port: int, *extra: str) -> list[str]:
    args = [
        "-m", "onerecord.cli", "source", "serve",
        "--home-community-id", HCID, "--repository-unique-id", REPOSITORY,
        "--db", database.url, "--content", str(content), "--port", str(port), *extra,
    ]  # fmt: skip
    if database.schema:
        args += ["--db-schema", database.schema]
    return args


def test_two_workers_share_one_registry(database: Database, tmp_path: Path) -> None:
    port = free_port()
    args = _args(
        database, tmp_path / "content", port, "--workers", "2", "--dev", "--dev-open-access"
    )
    with serve_process(args, port):
        base = f"http://127.0.0.1:{port}/fhir"
        patient = make_entry().patient_id.value
        for i in range(6):  # several connections, so both workers take some
            content = sample_pdf(text=f"worker test {i}")
            bundle = build_provide_bundle(
                [(make_entry(content=content), content)],
                source_id="urn:oid:1.2.3",
                submission_set_unique_id=f"1.2.3.{i}",
            )
            with httpx.Client() as client:
                r = client.post(
                    base,
                    content=orjson.dumps(bundle),
                    headers={"content-type": "application/fhir+json"},
                )
            assert r.status_code == 200, r.text
        found = httpx.get(
            f"{base}/DocumentReference", params={"patient.identifier": f"{FNR}|{patient}"}
        ).json()
        assert found["total"] == 6


def test_workers_without_a_shared_replay_cache_are_refused(
    sqlite_database: Database, tmp_path: Path
) -> None:
    port = free_port()
    args = _args(sqlite_database, tmp_path / "content", port, "--workers", "2",
                 "--issuer", "http://127.0.0.1:9/sts")  # fmt: skip
    done = subprocess.run([sys.executable, *args], capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"redis-url" in done.stdout + done.stderr
