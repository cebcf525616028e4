"""ITI-65 publishing is accepted only from systems whose key the source holds."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord, audit_event
from onerecord.mhd import build_provide_bundle
from onerecord.source.app import create_app
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER, make_publish_proof, publisher_jwk
from tests.conftest import Database
from tests.factories import make_entry, sample_pdf
from tests.source.conftest import HCID, make_settings
from tests.support.servers import free_port, serve_in_thread

PUBLISHER = "urn:oid:2.16.578.1.12.4.5.100.1.9"
OTHER = "urn:oid:2.16.578.1.12.4.5.100.1.10"


def _trusted(database: Database, tmp_path: Path, port: int, **extra: object) -> object:
    # The issuer is configured but never asked: publishing does not use access tokens.
    return make_settings(
        database,
        tmp_path,
        port,
        dev_open_access=False,
        dev_mode=False,
        issuer="http://127.0.0.1:9/sts",
        jwks_url="http://127.0.0.1:9/sts/jwks",
        **extra,
    )


@pytest.fixture
def publisher_key(tmp_path: Path) -> SigningKey:
    return SigningKey.generate(kid="hospital-ehr-1")


@pytest.fixture
def other_key() -> SigningKey:
    """A second registered publisher: its key may sign as OTHER only."""
    return SigningKey.generate(kid="lab-system-1")


@pytest.fixture
def guarded_source(
    sqlite_database: Database, tmp_path: Path, publisher_key: SigningKey, other_key: SigningKey
) -> Iterator[str]:
    jwks = tmp_path / "publishers.json"
    keys = [publisher_jwk(publisher_key, issuer=PUBLISHER), publisher_jwk(other_key, issuer=OTHER)]
    jwks.write_text(json.dumps({"keys": keys}))
    port = free_port()
    settings = _trusted(sqlite_database, tmp_path, port, publisher_jwks_file=jwks)
    with serve_in_thread(create_app(settings), port=port) as url:  # type: ignore[arg-type]
        yield url


def _body() -> bytes:
    content = sample_pdf()
    bundle = build_provide_bundle(
        [(make_entry(content=content), content)],
        source_id=PUBLISHER,
        submission_set_unique_id="2.16.578.1.12.4.5.100.1.8.77",
    )
    return orjson.dumps(bundle)


def _post(url: str, body: bytes, proof: str | None) -> httpx.Response:
    headers = {"content-type": "application/fhir+json"}
    if proof:
        headers[PUBLISH_PROOF_HEADER] = proof
    return httpx.post(f"{url}/fhir", content=body, headers=headers)


def _sign(key: SigningKey, url: str, body: bytes, issuer: str = PUBLISHER) -> str:
    return make_publish_proof(
        key, issuer=issuer, audience=HCID, htu=f"{url}/fhir", body=body, now=time.time()
    )


def _audit(tmp_path: Path) -> list[AuditRecord]:
    with sqlite3.connect(tmp_path / "registry.db") as conn:
        rows = conn.execute("SELECT event FROM audit_event ORDER BY seq").fetchall()
    return [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]


def test_a_publisher_posing_as_another_is_401_audited_and_registers_nothing(
    guarded_source: str, other_key: SigningKey, tmp_path: Path
) -> None:
    """The lab's key is registered, but for OTHER: it cannot publish as the EHR (PUBLISHER)."""
    body = _body()
    r = _post(guarded_source, body, _sign(other_key, guarded_source, body, issuer=PUBLISHER))
    assert r.status_code == 401, r.text
    assert "issuer" in r.json()["issue"][0]["diagnostics"]
    (record,) = _audit(tmp_path)
    assert record.action is AuditAction.IMPORT and record.outcome is AuditOutcome.DENIED
    assert record.reason == "issuer-mismatch" and record.system == OTHER
    event = audit_event(record)
    assert event["type"]["code"] == "110107" and event["action"] == "C"
    with sqlite3.connect(tmp_path / "registry.db") as conn:
        assert conn.execute("SELECT count(*) FROM document_entry").fetchone() == (0,)
    # The same key signing as its own issuer is accepted.
    ok = _post(guarded_source, body, _sign(other_key, guarded_source, body, issuer=OTHER))
    assert ok.status_code == 200, ok.text


def test_a_refused_proof_is_audited_without_an_actor(guarded_source: str, tmp_path: Path) -> None:
    body = _body()
    r = _post(guarded_source, body, _sign(SigningKey.generate(kid="x"), guarded_source, body))
    assert r.status_code == 401
    (record,) = _audit(tmp_path)
    assert record.action is AuditAction.IMPORT and record.system is None and record.reason


def test_signed_publish_is_accepted_once(guarded_source: str, publisher_key: SigningKey) -> None:
    body = _body()
    proof = _sign(publisher_key, guarded_source, body)
    assert _post(guarded_source, body, proof).status_code == 200
    replay = _post(guarded_source, body, proof)
    assert replay.status_code == 401
    assert "replay" in replay.text


def test_unsigned_publish_is_401(guarded_source: str) -> None:
    r = _post(guarded_source, _body(), None)
    assert r.status_code == 401
    assert PUBLISH_PROOF_HEADER in r.json()["issue"][0]["diagnostics"]
    assert "www-authenticate" in r.headers


def test_publish_signed_by_a_stranger_is_401(guarded_source: str) -> None:
    body = _body()
    r = _post(guarded_source, body, _sign(SigningKey.generate(kid="x"), guarded_source, body))
    assert r.status_code == 401


def test_proof_for_another_body_is_401(guarded_source: str, publisher_key: SigningKey) -> None:
    body = _body()
    r = _post(guarded_source, _body(), _sign(publisher_key, guarded_source, body))
    assert r.status_code == 401
    assert "body" in r.text


def test_source_without_publishers_refuses_publishing(
    sqlite_database: Database, tmp_path: Path
) -> None:
    port = free_port()
    settings = _trusted(sqlite_database, tmp_path, port)
    with serve_in_thread(create_app(settings), port=port) as url:  # type: ignore[arg-type]
        r = _post(url, _body(), None)
    assert r.status_code == 403
    assert "not configured" in r.text


def test_cli_import_signs_with_the_publisher_key(
    guarded_source: str, publisher_key: SigningKey, tmp_path: Path
) -> None:
    from datetime import date

    from typer.testing import CliRunner

    from onerecord.cli import app
    from onerecord.synth.dataset import write_dataset

    dataset = tmp_path / "dataset"
    write_dataset(dataset, seed=3, citizens=0, reference_date=date(2026, 1, 15), batch_size=20)
    key_file = tmp_path / "publisher.jwk.json"
    key_file.write_bytes(orjson.dumps(publisher_key.private_jwk()))
    runner = CliRunner()
    base = ["source", "import", str(dataset), "--region", "hso", "--url", guarded_source]

    unsigned = runner.invoke(app, base)
    assert unsigned.exit_code == 1, unsigned.output

    signing = [*base, "--publisher-key", str(key_file), "--audience", HCID]
    as_another = runner.invoke(app, [*signing, "--publisher-issuer", OTHER])
    assert as_another.exit_code == 1, as_another.output
    assert "issuer" in as_another.output
    signed = runner.invoke(app, [*signing, "--publisher-issuer", PUBLISHER])
    assert signed.exit_code == 0, signed.output


@pytest.mark.anyio
async def test_a_publishers_jwks_without_an_issuer_per_key_stops_the_source(
    sqlite_database: Database, tmp_path: Path, publisher_key: SigningKey
) -> None:
    """An older file (bare public keys) would let any key sign as anyone: refused at start-up,
    naming the key."""
    jwks = tmp_path / "publishers.json"
    jwks.write_text(json.dumps({"keys": [publisher_key.public_jwk()]}))
    app = create_app(_trusted(sqlite_database, tmp_path, free_port(), publisher_jwks_file=jwks))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hospital-ehr-1.*needs 'iss'"):
        async with app.router.lifespan_context(app):
            pass
