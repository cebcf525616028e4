"""Issue 10 D: a real source process logs each unexpected error as one short JSON line.

The old source printed rich tracebacks with local variables: national identity numbers, patient
salts, SQL parameters and whole upload bodies, hundreds of kilobytes per error.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from onerecord.domain import DocumentEntry
from onerecord.mhd import build_provide_bundle
from onerecord.trust.patient_binding import PATIENT_SALT_HEADER, encode_salt, new_salt
from tests.factories import SYNTHETIC_FNR, make_entry, sample_pdf
from tests.support.servers import free_port, wait_healthy

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
TITLE_MARKER = "Epikrise-LOGMARKER-hjerteinfarkt"


@pytest.fixture
def running_source(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`onerecord source serve` (development, SQLite) with its stderr in a file."""
    port = free_port()
    db = tmp_path / "registry.db"
    log = tmp_path / "source.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "onerecord.cli",
                "source",
                "serve",
                "--db",
                f"sqlite:///{db}",
                "--content",
                str(tmp_path / "content"),
                "--port",
                str(port),
                "--dev",
                "--dev-open-access",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}", db, log
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _large_bundle(content: bytes) -> bytes:
    entry: DocumentEntry = replace(make_entry(content=content), title=TITLE_MARKER)
    bundle = build_provide_bundle(
        [(entry, content)],
        source_id="urn:oid:2.16.578.1.12.4.5.100.1.9",
        submission_set_unique_id=f"2.16.578.1.12.4.5.100.1.8.{uuid.uuid4().int % 10**9}",
    )
    return orjson.dumps(bundle)


def _events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_bytes().splitlines()
    events = []
    for line in lines:
        assert len(line) < 1024, line[:300]
        events.append(json.loads(line))  # every line is one JSON object: no traceback text
    return events


def test_unexpected_source_error_is_one_short_json_line_without_personal_data(
    running_source: tuple[str, Path, Path],
) -> None:
    base, db, log = running_source
    # Break the registry under the running source: every query now fails inside the driver,
    # whose exception message carries the SQL and its parameters (the patient's number).
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE document_code")
        conn.execute("DROP TABLE document_label")
        conn.execute("DROP TABLE document_entry")
    salt = encode_salt(new_salt())
    content = sample_pdf("LOGMARKER " * 30_000)  # ≈ 300 kB of content in the upload
    body = _large_bundle(content)
    assert len(body) > 300_000
    search_cid, publish_cid = (
        "cid-search-" + uuid.uuid4().hex[:8],
        "cid-publish-" + uuid.uuid4().hex[:8],
    )

    found = httpx.get(
        f"{base}/fhir/DocumentReference",
        params={"patient.identifier": f"{FNR_SYSTEM}|{SYNTHETIC_FNR}"},
        headers={"x-correlation-id": search_cid, PATIENT_SALT_HEADER: salt},
        timeout=30,
    )
    published = httpx.post(
        f"{base}/fhir",
        content=body,
        headers={
            "content-type": "application/fhir+json",
            "x-correlation-id": publish_cid,
            PATIENT_SALT_HEADER: salt,
        },
        timeout=30,
    )
    assert found.status_code == 500 and published.status_code == 500

    text = log.read_text(errors="replace")
    events = _events(log)
    errors = [e for e in events if e.get("level") == "error"]
    assert [e["correlation_id"] for e in errors] == [search_cid, publish_cid], errors
    for event in errors:
        assert event["event"] == "source.unexpected_error"
        assert event["error"].startswith("sqlalchemy.exc."), event
        assert event["raised_at"].count(":") == 2  # module:function:line
        assert "traceback" not in json.dumps(event).lower()
    assert SYNTHETIC_FNR not in text
    assert salt not in text
    assert "LOGMARKER" not in text
    assert base64.b64encode(content)[1000:1064].decode() not in text
    assert "SELECT" not in text and "INSERT" not in text  # no SQL, hence no parameters
    assert len(text.encode()) < 4 * 1024
