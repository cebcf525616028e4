"""Studies in the national overview: a real archive publishes to a real document source.

DCMTK's storescu stores the instances over DIMSE; the archive (uvicorn, its DIMSE listener and
its manifest worker) publishes each study's manifest over ITI-65 with a publish proof; the
source (uvicorn, its publisher JWKS) registers it. The first test finds it with ITI-67 and reads
it with ITI-68 as a health worker (a real STS); the others look in the source's registry.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pydicom
import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from onerecord.audit import MemoryAuditSink
from onerecord.cli import app as cli
from onerecord.domain import DocumentUniqueId, OrganisationNumber
from onerecord.media import MediaSettings, RemoteAE
from onerecord.media.app import create_app as create_archive
from onerecord.media.database import make_engine as media_engine
from onerecord.media.manifest import ArchiveIdentity
from onerecord.media.manifest_store import PreparedVersion, SqlManifestOutbox
from onerecord.media.publisher import ManifestPublisher
from onerecord.source.app import create_app as create_source
from onerecord.source.database import make_engine as source_engine
from onerecord.source.settings import SourceSettings
from onerecord.source.store import SqlDocumentStore
from onerecord.synth.dicom import patient_studies, write_instances
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.publish_proof import publisher_jwk
from tests.conftest import Database
from tests.hub.test_integration import start_hub, start_source, write_directory
from tests.media.conftest import REFERENCE, make_files
from tests.media.dicom_tools import require_dcmtk, storescu_batches
from tests.media.dicomweb_harness import MediaNet
from tests.source.trust_harness import (
    ARCHIVE_ISSUER,
    HCID,
    HUB_ISSUER,
    REPOSITORY,
    Network,
    start_network,
)
from tests.support.servers import free_port, serve_in_thread, serve_process

ISSUER = ARCHIVE_ISSUER  # the archive's key is registered at the sources for this issuer
MADO = "urn:ihe:rad:MADO"


def storescu(dimse_port: int, paths: list[Path]) -> None:
    for options, files in storescu_batches(paths):
        command = [require_dcmtk("storescu"), *options, "-aet", "CT1", "-aec", "ONERECORD"]
        command += ["127.0.0.1", str(dimse_port), *map(str, files)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def archive_settings(
    tmp: Path, database: Database, source_url: str | None, key_file: Path | None
) -> MediaSettings:
    publishing: dict[str, Any] = {}
    if source_url is not None:
        publishing = {
            "source_url": source_url,
            "publisher_issuer": ISSUER,
            "publisher_key_file": key_file,
        }
    return MediaSettings(
        home_community_id=HCID,  # the region's source's audience
        db_url=database.url,
        db_schema=database.schema,
        content_dir=tmp / "media-content",
        dimse_port=free_port(),
        modalities={"CT1": RemoteAE(host="127.0.0.1", port=free_port())},
        public_base_url="http://archive.test:8042",
        manifest_quiet_s=0.2,
        manifest_retry_s=0.2,
        manifest_retry_max_s=0.4,
        **publishing,
    )


@contextmanager
def running_archive(settings: MediaSettings) -> Iterator[str]:
    with serve_in_thread(create_archive(settings)) as url:
        yield url


def publisher_files(tmp: Path, key: SigningKey) -> tuple[Path, Path]:
    """The archive's private key file and the JWKS file the source trusts."""
    key_file = tmp / "archive-publisher.jwk.json"
    key_file.write_bytes(orjson.dumps(key.private_jwk()))
    jwks = tmp / "publishers.json"
    jwks.write_text(json.dumps({"keys": [publisher_jwk(key, issuer=ISSUER)]}))
    return key_file, jwks


@contextmanager
def plain_source(tmp: Path, port: int, publishers: Path) -> Iterator[SourceSettings]:
    """A document source that trusts the publishers (no searches: no STS is running)."""
    settings = SourceSettings(
        home_community_id=HCID,
        repository_unique_id=REPOSITORY,
        db_url=f"sqlite:///{tmp / 'source-registry.db'}",
        content_dir=tmp / "source-content",
        public_base_url=f"http://127.0.0.1:{port}",
        issuer="http://127.0.0.1:9",
        jwks_url="http://127.0.0.1:9/jwks",
        publisher_jwks_file=publishers,
    )
    with serve_in_thread(create_source(settings), port=port):
        yield settings


def registry(settings: SourceSettings, *unique_ids: str) -> tuple[int, list[Any]]:
    """How many entries the source holds, and the entries with these uniqueIds."""

    async def read() -> tuple[int, list[Any]]:
        engine = source_engine(settings.db_url)
        store = SqlDocumentStore(engine)
        try:
            count = await store.count()
            found = [await store.get(DocumentUniqueId(u)) for u in unique_ids]
            return count, found
        finally:
            await engine.dispose()

    return asyncio.run(read())


def audit_rows(settings: MediaSettings, action: str) -> list[tuple[str, str | None, str]]:
    """(outcome, patient, reason) of the archive's audit records of one action, in order."""
    path = settings.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT outcome, patient_id, event FROM audit_event WHERE action = ? ORDER BY seq",
            (action,),
        ).fetchall()
    return [(o, p, json.loads(e).get("reason") or "") for o, p, e in rows]


def outbox_state(settings: MediaSettings, study: str) -> tuple[dict[str, Any] | None, list[Any]]:
    async def read() -> tuple[dict[str, Any] | None, list[Any]]:
        engine = media_engine(settings.db_url, schema=settings.db_schema)
        outbox = SqlManifestOutbox(engine)
        try:
            return await outbox.state(study), await outbox.versions(study)
        finally:
            await engine.dispose()

    return asyncio.run(read())


# -- the whole path: storescu → archive → ITI-65 → source → ITI-67 / ITI-68 ------------------


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    (tmp_path / "net").mkdir()
    with start_network(tmp_path / "net") as net:
        yield net


def _search(network: Network, patient: str) -> list[dict[str, Any]]:
    token = network.hcp_token(patient)
    response = network.search(token, patient)
    assert response.status_code == 200, response.text
    return [
        e["resource"]
        for e in response.json().get("entry", [])
        if e["resource"]["resourceType"] == "DocumentReference"
    ]


def test_a_stored_study_appears_in_the_overview_and_new_instances_replace_it(
    network: Network, sqlite_database: Database, tmp_path: Path
) -> None:
    files = make_files(tmp_path / "dicom")
    nin = files.patient.nin.value
    ct = next(s for s in files.studies if s.instances[0].Modality == "CT")
    ct_paths = [p for p in files.paths if _study_of(p) == ct.study_instance_uid]
    assert len(ct_paths) == 3
    key_file = tmp_path / "archive-publisher.jwk.json"
    key_file.write_bytes(orjson.dumps(network.archive_key.private_jwk()))
    settings = archive_settings(tmp_path, sqlite_database, network.source_url, key_file)
    with running_archive(settings):
        storescu(settings.dimse_port, ct_paths[:2])
        found = wait_for(lambda: _search(network, nin))
        (doc,) = found
        assert doc["masterIdentifier"]["value"] == f"urn:oid:{ct.study_instance_uid}"
        assert doc["content"][0]["format"]["code"] == MADO
        assert doc["content"][0]["attachment"]["contentType"] == "application/fhir+json"
        assert doc["type"]["coding"][0] == {
            "system": "http://loinc.org",
            "code": "18748-4",
            "display": "Diagnostic imaging study",
        }
        assert doc["category"][0]["coding"][0]["code"] == "E00-1"
        events = {
            (c["coding"][0]["system"], c["coding"][0]["code"]) for c in doc["context"]["event"]
        }
        assert ("http://dicom.nema.org/resources/ontology/DCM", "CT") in events
        assert ("http://snomed.info/sct", "818981001") in events  # ABDOMEN
        related = doc["context"]["related"][0]["identifier"]
        assert (related["system"], related["value"]) == (
            "urn:dicom:uid",
            f"urn:oid:{ct.study_instance_uid}",
        )
        assert doc["securityLabel"][0]["coding"][0]["code"] == "N"
        token = network.hcp_token(nin)
        binary = network.get(token, doc["content"][0]["attachment"]["url"])
        assert binary.status_code == 200, binary.text
        study = binary.json()
        assert study["resourceType"] == "ImagingStudy"
        assert study["numberOfInstances"] == 2
        assert study["contained"][0]["address"] == "http://archive.test:8042/dicomweb"

        storescu(settings.dimse_port, ct_paths[2:])  # a second batch: a replacement
        replaced = wait_for(
            lambda: [
                d
                for d in _search(network, nin)
                if d["masterIdentifier"]["value"] != doc["masterIdentifier"]["value"]
            ]
        )
        (new,) = replaced
        assert new["masterIdentifier"]["value"].startswith("urn:oid:2.25.")
        assert new["relatesTo"][0]["code"] == "replaces"
        assert (
            new["relatesTo"][0]["target"]["identifier"]["value"] == doc["masterIdentifier"]["value"]
        )
        assert len(_search(network, nin)) == 1  # the first is superseded
        study = network.get(network.hcp_token(nin), new["content"][0]["attachment"]["url"]).json()
        assert study["numberOfInstances"] == 3
    state, versions = outbox_state(settings, ct.study_instance_uid)
    assert state is not None and state["changes"] == state["published_changes"] == 3
    assert [v["unique_id"] for v in versions] == [
        ct.study_instance_uid,
        new["masterIdentifier"]["value"].removeprefix("urn:oid:"),
    ]
    assert all(v["published"] is not None for v in versions)
    assert unique_ids(settings, ct.study_instance_uid) == [v["unique_id"] for v in versions]
    # A block of the replacement's uniqueId names the study (region_controls' hook).
    replacement = versions[1]["unique_id"]
    assert ct.study_instance_uid in studies_named(settings, frozenset({f"urn:oid:{replacement}"}))


def studies_named(settings: MediaSettings, ids: frozenset[str]) -> frozenset[str]:
    async def read() -> frozenset[str]:
        engine = media_engine(settings.db_url, schema=settings.db_schema)
        try:
            return await SqlManifestOutbox(engine).studies_named(ids)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def unique_ids(settings: MediaSettings, study: str) -> list[str]:
    async def read() -> list[str]:
        engine = media_engine(settings.db_url, schema=settings.db_schema)
        try:
            return await SqlManifestOutbox(engine).unique_ids(study)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _study_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


# -- durability: restarts, a crash after the source registered, the source down ---------------


@pytest.fixture
def publisher_key() -> SigningKey:
    return SigningKey.generate(kid="archive-publisher")


def test_stored_before_a_restart_is_published_once_after_it(
    database: Database, tmp_path: Path, publisher_key: SigningKey
) -> None:
    files = make_files(tmp_path / "dicom")
    key_file, jwks = publisher_files(tmp_path, publisher_key)
    port = free_port()
    source_url = f"http://127.0.0.1:{port}"
    offline = archive_settings(tmp_path, database, None, None)  # publishing not configured
    with running_archive(offline):
        storescu(offline.dimse_port, files.paths)
    studies = {_study_of(p) for p in files.paths}
    online = offline.model_copy(
        update={
            "source_url": source_url,
            "publisher_issuer": ISSUER,
            "publisher_key_file": key_file,
            "dimse_port": free_port(),
        }
    )
    with plain_source(tmp_path, port, jwks) as source:
        with running_archive(online):
            wait_for(lambda: registry(source)[0] == len(studies))
        with running_archive(online):  # a second restart publishes nothing again
            time.sleep(1.0)
        count, found = registry(source, *studies)
    assert count == len(studies) and all(found)
    for study in studies:
        state, versions = outbox_state(online, study)
        assert state is not None and state["outcome"] == "published"
        assert len(versions) == 1


class CrashAfterSend(SqlManifestOutbox):
    """The archive dies after the source registered the version, before it recorded so."""

    async def published(self, version: PreparedVersion, *, now: datetime) -> None:
        raise RuntimeError("crash")


def test_a_crash_after_the_source_registered_sends_the_same_version_once_more(
    sqlite_database: Database, tmp_path: Path, publisher_key: SigningKey
) -> None:
    files = make_files(tmp_path / "dicom")
    key_file, jwks = publisher_files(tmp_path, publisher_key)
    port = free_port()
    offline = archive_settings(tmp_path, sqlite_database, None, None)
    with running_archive(offline):
        storescu(offline.dimse_port, files.paths[:1])
    study = _study_of(files.paths[0])
    online = offline.model_copy(
        update={
            "source_url": f"http://127.0.0.1:{port}",
            "publisher_issuer": ISSUER,
            "publisher_key_file": key_file,
            "dimse_port": free_port(),
        }
    )

    async def crash() -> None:
        engine = media_engine(online.db_url)
        async with httpx.AsyncClient() as http:
            publisher = ManifestPublisher(
                outbox=CrashAfterSend(engine),
                archive=ArchiveIdentity(
                    home_community_id=HCID,
                    organisation_name="UNN",
                    organisation_number=OrganisationNumber("998123453"),
                    dicomweb_base_url="http://archive.test:8042/dicomweb",
                ),
                http=http,
                source_url=online.source_url or "",
                audience=HCID,
                issuer=ISSUER,
                key=publisher_key,
                quiet=0,
            )
            assert await publisher.publish_due() == 0  # the crash is caught per study
        await engine.dispose()

    with plain_source(tmp_path, port, jwks) as source:
        asyncio.run(crash())
        assert registry(source, study)[0] == 1  # registered at the source …
        state, versions = outbox_state(online, study)
        assert versions[0]["published"] is None  # … but not recorded at the archive
        assert state is not None and state["outcome"] == "error:RuntimeError"
        with running_archive(online):
            wait_for(lambda: outbox_state(online, study)[1][0]["published"] is not None)
        count, (entry,) = registry(source, study)
    assert count == 1 and entry is not None  # the resend registered nothing new
    state, versions = outbox_state(online, study)
    assert state is not None and state["outcome"] == "published" and len(versions) == 1


def test_the_source_down_is_retried_until_it_answers(
    sqlite_database: Database, tmp_path: Path, publisher_key: SigningKey
) -> None:
    files = make_files(tmp_path / "dicom")
    key_file, jwks = publisher_files(tmp_path, publisher_key)
    port = free_port()  # nothing listens here yet
    settings = archive_settings(tmp_path, sqlite_database, f"http://127.0.0.1:{port}", key_file)
    study = _study_of(files.paths[0])
    with capture_logs() as logs, running_archive(settings):
        storescu(settings.dimse_port, files.paths[:1])
        state = wait_for(
            lambda: (s := outbox_state(settings, study)[0]) and s["attempts"] >= 2 and s
        )
        assert state["outcome"].startswith("transport:")
        assert state["published_changes"] == 0
        with plain_source(tmp_path, port, jwks) as source:
            wait_for(lambda: (outbox_state(settings, study)[0] or {}).get("outcome") == "published")
            count, (entry,) = registry(source, study)
    assert count == 1 and entry is not None
    _, versions = outbox_state(settings, study)
    assert len(versions) == 1  # every retry sent the one version
    events = [e["event"] for e in logs]
    assert "media.manifest.retry" in events and "media.manifest.published" in events
    # Every try is audited in the archive's chain (ITI-65 export), and the chain holds.
    exports = audit_rows(settings, "export")
    assert [o for o, _, _ in exports].count("success") == 1
    assert all(p == files.patient.nin.value for _, p, _ in exports)
    assert sum(o == "error" and r.startswith("transport:") for o, _, r in exports) >= 2
    verify = CliRunner().invoke(cli, ["audit", "verify", "--db", settings.db_url])
    assert verify.exit_code == 0, verify.output
    assert files.patient.nin.value not in repr(logs)
    assert not re.search(r"(?<!\d)\d{11}(?!\d)", repr(logs))  # no national id at all


def test_a_study_of_a_hospital_patient_id_is_recorded_not_published(
    sqlite_database: Database, tmp_path: Path, publisher_key: SigningKey
) -> None:
    files = make_files(tmp_path / "dicom")
    local = tmp_path / "local.dcm"
    ds = pydicom.dcmread(files.paths[0])
    ds.PatientID = "UNN-4711"
    ds.IssuerOfPatientID = "UNN"
    ds.save_as(local)
    key_file, jwks = publisher_files(tmp_path, publisher_key)
    port = free_port()
    settings = archive_settings(tmp_path, sqlite_database, f"http://127.0.0.1:{port}", key_file)
    with plain_source(tmp_path, port, jwks) as source, running_archive(settings):
        storescu(settings.dimse_port, [local])
        state = wait_for(lambda: outbox_state(settings, ds.StudyInstanceUID)[0]["outcome"])
        assert state == "issuer-not-national"
        assert registry(source)[0] == 0


def test_onerecord_media_serve_publishes_with_its_flags(
    tmp_path: Path, publisher_key: SigningKey
) -> None:
    files = make_files(tmp_path / "dicom")
    key_file, jwks = publisher_files(tmp_path, publisher_key)
    source_port, http_port, dimse_port = free_port(), free_port(), free_port()
    args = [
        "-m", "onerecord.cli", "media", "serve",
        "--db", f"sqlite:///{tmp_path / 'archive.db'}", "--content", str(tmp_path / "content"),
        "--port", str(http_port), "--dimse-port", str(dimse_port), "--modality", "CT1=127.0.0.1:1",
        "--home-community-id", HCID, "--source-url", f"http://127.0.0.1:{source_port}",
        "--publisher-issuer", ISSUER, "--publisher-key-file", str(key_file),
        "--log-level", "warning",
    ]  # fmt: skip
    env = {"ONERECORD_MEDIA_MANIFEST_QUIET_S": "0.2"}
    with plain_source(tmp_path, source_port, jwks) as source:
        with serve_process(args, http_port, env=env):
            storescu(dimse_port, files.paths[:1])
            study = _study_of(files.paths[0])
            wait_for(lambda: registry(source, study)[1][0] is not None)
            # /healthz counts the studies still to publish (what `onerecord demo` waits on).
            health = f"http://127.0.0.1:{http_port}/healthz"
            wait_for(lambda: httpx.get(health, timeout=5).json()["manifests_pending"] == 0)


def test_a_refused_version_is_recorded_and_the_next_one_takes_a_new_uid(
    tmp_path: Path, publisher_key: SigningKey
) -> None:
    """Two archives hold the same study: the second's first manifest clashes (409)."""
    files = make_files(tmp_path / "dicom")
    key_file, jwks = publisher_files(tmp_path, publisher_key)
    port = free_port()
    source_url = f"http://127.0.0.1:{port}"
    ct = [p for p in files.paths if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT"]
    study = _study_of(ct[0])
    first = archive_settings(tmp_path / "a", _sqlite(tmp_path / "a.db"), source_url, key_file)
    other = archive_settings(tmp_path / "b", _sqlite(tmp_path / "b.db"), source_url, key_file)
    with plain_source(tmp_path, port, jwks) as source:
        with running_archive(first):
            storescu(first.dimse_port, ct[:1])
            wait_for(lambda: registry(source, study)[1][0] is not None)
        with running_archive(other):
            storescu(other.dimse_port, ct[1:2])
            wait_for(lambda: outbox_state(other, study)[0]["outcome"] == "refused")
            _, (refused,) = outbox_state(other, study)
            assert refused["unique_id"] == study and refused["refused"].startswith("http-409")
            storescu(other.dimse_port, ct[2:3])
            wait_for(lambda: outbox_state(other, study)[0]["outcome"] == "published")
        _, versions = outbox_state(other, study)
        assert versions[1]["unique_id"].startswith("2.25.") and versions[1]["replaces"] is None
        count, found = registry(source, study, versions[1]["unique_id"])
    assert count == 2 and all(found)


def _sqlite(path: Path) -> Database:
    return Database(url=f"sqlite:///{path}", schema=None, kind="sqlite")


def test_the_manifest_is_in_the_hubs_overview_and_its_study_read_through_the_hub(
    tmp_path: Path, publisher_key: SigningKey
) -> None:
    """An open (development) network: a source, the hub in front of it, the archive."""
    files = make_files(tmp_path / "dicom")
    nin = files.patient.nin.value
    key_file, _ = publisher_files(tmp_path, publisher_key)
    with ExitStack() as stack:
        region = start_source(stack, tmp_path, 1)
        directory = write_directory(
            tmp_path / "regions.json", [("R1", region.hcid, region.fhir, None)]
        )
        hub = start_hub(stack, directory, request_deadline_s=5.0)
        settings = archive_settings(
            tmp_path, _sqlite(tmp_path / "archive.db"), region.fhir, key_file
        ).model_copy(update={"home_community_id": region.hcid})
        stack.enter_context(running_archive(settings))
        storescu(settings.dimse_port, files.paths[:1])
        study = _study_of(files.paths[0])
        params = {"patient.identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{nin}"}

        def overview() -> list[dict[str, Any]]:
            answer = httpx.get(f"{hub}/DocumentReference", params=params, timeout=10).json()
            return [
                e["resource"]
                for e in answer.get("entry", [])
                if e["resource"]["resourceType"] == "DocumentReference"
            ]

        (doc,) = wait_for(overview)
        assert doc["masterIdentifier"]["value"] == f"urn:oid:{study}"
        assert doc["content"][0]["format"]["code"] == MADO
        url = doc["content"][0]["attachment"]["url"]
        assert url.startswith(f"{hub}/Binary/")
        manifest = httpx.get(url, headers={"nhn-patient-nin": nin}, timeout=10)
        assert manifest.status_code == 200
        assert manifest.json()["identifier"][0]["value"] == f"urn:oid:{study}"


def test_a_block_of_a_replacement_manifest_closes_its_study_at_the_archive(
    tmp_path: Path,
) -> None:
    """Contract §1 + §2: the patient blocks the 2.25 uniqueId of a study's second manifest;
    the archive maps it to the study through its manifests' table and refuses the study."""
    archive_key = SigningKey.generate(kid="media-archive-key")
    key_file = tmp_path / "archive.jwk.json"
    key_file.write_bytes(orjson.dumps(archive_key.private_jwk()))
    (tmp_path / "source").mkdir()
    with start_network(tmp_path / "source", extra_publishers=((archive_key, ISSUER),)) as net:
        port = free_port()
        settings = MediaSettings(
            home_community_id=HCID,
            db_url=f"sqlite:///{tmp_path / 'archive.db'}",
            content_dir=tmp_path / "media-content",
            dimse_port=free_port(),
            modalities={"CT1": RemoteAE(host="127.0.0.1", port=free_port())},
            public_base_url=f"http://127.0.0.1:{port}",
            issuer=net.sts_url,
            jwks_url=f"{net.sts_url}/jwks",
            hub_issuer=HUB_ISSUER,
            source_url=net.source_url,
            publisher_issuer=ISSUER,
            publisher_key_file=key_file,
            controls_ttl_s=0,
            manifest_quiet_s=0.2,
        )
        audit = MemoryAuditSink()
        app = create_archive(settings, audit=audit, hub_keys=StaticJwks([net.hub_key]))
        with serve_in_thread(app, port=port) as url:
            media = MediaNet(net, url, audit)
            patient = media.patient("adult")
            ct = patient_studies(patient, seed=21, reference_date=REFERENCE, ct_slices=3, size=32)[
                0
            ]
            paths = write_instances(list(ct.instances), tmp_path / "ct")
            uid = ct.study_instance_uid
            storescu(settings.dimse_port, paths[:2])
            wait_for(lambda: [v for v in outbox_state(settings, uid)[1] if v["published"]])
            storescu(settings.dimse_port, paths[2:])
            versions = wait_for(
                lambda: [v for v in outbox_state(settings, uid)[1] if v["published"]][1:]
            )
            replacement = versions[0]["unique_id"]
            token = net.hcp_token(patient.nin.value)
            assert media.get(token, f"studies/{uid}/metadata").status_code == 200
            r = net.send(
                net.citizen_token("adult"), "PUT", f"/controls/document-blocks/{replacement}"
            )
            assert r.status_code == 200, r.text
            refused = media.get(net.hcp_token(patient.nin.value), f"studies/{uid}/metadata")
            assert refused.status_code == 403 and "document-blocked" in refused.json()["message"]
