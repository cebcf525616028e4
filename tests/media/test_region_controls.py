"""The patient's own controls at the media archive, read from a real document source (issue 14).

A real STS, a real document source and a real media archive on 127.0.0.1; the archive's
database is SQLite or PostgreSQL (the source's is SQLite: only the archive's SQL changes here).
Citizens set their controls at the source through its portal routes; health workers read images
at the archive over DICOMweb. Each scenario uses its own patient, so that the archive's short
cache of one patient's controls never carries over from another test.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from onerecord.audit import AuditAction, AuditOutcome, AuditRecord, MemoryAuditSink
from onerecord.media.app import create_app
from onerecord.media.settings import MediaSettings
from onerecord.synth.dicom import SynthStudy, patient_studies
from onerecord.trust.keys import SigningKey, StaticJwks
from tests.conftest import Database, fresh_postgres_schema
from tests.media.dicomweb_harness import STORE_SCOPE, MediaNet
from tests.source.trust_harness import HCID, HUB_ISSUER, Network, Token, hub_headers, start_network
from tests.support.servers import free_port, serve_in_thread

REFERENCE = date(2026, 11, 1)
ARCHIVE = "urn:oid:2.16.578.1.12.4.5.100.1.42"
TTL = 2.0
PATIENTS = {"adult": 21, "elderly": 22, "parent": 23, "co_parent": 24, "proxy_holder": 25}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def archive_db(
    request: pytest.FixtureRequest, postgres_ready: bool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("archive-db") / "media.db"
        yield Database(url=f"sqlite:///{path}", schema=None, kind="sqlite")
        return
    with fresh_postgres_schema(postgres_ready) as database:
        yield database


@dataclass
class World:
    net: Network
    media: MediaNet
    settings: MediaSettings
    studies: dict[str, list[SynthStudy]]

    def nin(self, key: str) -> str:
        return self.net.citizen(key)

    def hcp(self, key: str, **kwargs: Any) -> Token:
        return self.net.hcp_token(self.nin(key), **kwargs)

    def citizen_sets(self, key: str, method: str, path: str) -> None:
        r = self.net.send(self.net.citizen_token(key), method, path)
        assert r.status_code == 200, r.text

    def source_reads(self) -> list[AuditRecord]:
        """The source's audit of the archive's reads of controls."""
        with sqlite3.connect(self.net.db_path) as conn:
            rows = conn.execute("SELECT event FROM audit_event ORDER BY seq").fetchall()
        records = [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]
        return [r for r in records if r.action is AuditAction.CONTROLS_READ]


def _media_settings(
    workdir: Path, net: Network, db: Database, port: int, key_file: Path, **extra: Any
) -> MediaSettings:
    values: dict[str, Any] = {
        "region": "Helse Sør-Øst",
        "home_community_id": HCID,
        "db_url": db.url,
        "db_schema": db.schema,
        "content_dir": workdir / "content",
        "dimse_port": 0,
        "public_base_url": f"http://127.0.0.1:{port}",
        "issuer": net.sts_url,
        "jwks_url": f"{net.sts_url}/jwks",
        "hub_issuer": HUB_ISSUER,
        "source_url": net.source_url,
        "publisher_issuer": ARCHIVE,
        "publisher_key_file": key_file,
        "controls_ttl_s": TTL,
    }
    return MediaSettings(**{**values, **extra})


@pytest.fixture(scope="module")
def world(archive_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("region-controls")
    archive_key = SigningKey.generate(kid="media-archive-key")
    key_file = workdir / "archive.jwk.json"
    key_file.write_bytes(orjson.dumps(archive_key.private_jwk()))
    (workdir / "source").mkdir()
    with start_network(workdir / "source", extra_publishers=((archive_key, ARCHIVE),)) as net:
        port = free_port()
        settings = _media_settings(workdir, net, archive_db, port, key_file)
        audit = MemoryAuditSink()
        app = create_app(settings, audit=audit, hub_keys=StaticJwks([net.hub_key]))
        with serve_in_thread(app, port=port) as url:
            media = MediaNet(net, url, audit)
            studies: dict[str, list[SynthStudy]] = {}
            for key, seed in PATIENTS.items():
                found = patient_studies(
                    media.patient(key), seed=seed, reference_date=REFERENCE, ct_slices=2, size=32
                )
                studies[key] = found[:3]
                client = media.client(net.hcp_token(net.citizen(key), scope=STORE_SCOPE))
                for study in studies[key]:
                    client.store_instances(list(study.instances))
            yield World(net, media, settings, studies)


def _study_uids(matches: list[dict[str, Any]]) -> list[str]:
    return [m["0020000D"]["Value"][0] for m in matches]


def _records(world: World, mark: int) -> list[AuditRecord]:
    return world.media.records_since(mark)


def test_a_blocked_study_is_not_listed_nor_retrieved_and_the_refusal_is_audited(
    world: World,
) -> None:
    blocked, kept = world.studies["adult"][0], world.studies["adult"][1]
    world.citizen_sets("adult", "PUT", f"/controls/document-blocks/{blocked.study_instance_uid}")
    token = world.hcp("adult")
    client = world.media.client(token)
    # QIDO-RS at every level leaves the blocked study out.
    listed = _study_uids(client.search_for_studies())
    assert blocked.study_instance_uid not in listed
    assert kept.study_instance_uid in listed
    assert len(listed) == len(world.studies["adult"]) - 1
    assert client.search_for_series(study_instance_uid=blocked.study_instance_uid) == []
    every_series = client.search_for_series()
    assert blocked.study_instance_uid not in _study_uids(every_series)
    assert client.search_for_instances(study_instance_uid=blocked.study_instance_uid) == []
    # WADO-RS of the blocked study, its series and an instance: 403, audited as denied.
    first = blocked.instances[0]
    paths = [
        f"studies/{blocked.study_instance_uid}",
        f"studies/{blocked.study_instance_uid}/metadata",
        f"studies/{blocked.study_instance_uid}/series/{first.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}",
    ]
    for path in paths:
        mark = len(world.media.audit.records)
        r = world.media.get(token, path)
        assert r.status_code == 403, (path, r.text)
        assert "document-blocked" in r.json()["message"]
        (record,) = _records(world, mark)
        assert record.action is AuditAction.RETRIEVE and record.outcome is AuditOutcome.DENIED
        assert record.reason == "document-blocked"
        assert record.patient_id == world.nin("adult")
        assert record.practitioner is not None
    # The other studies are read as before.
    assert client.retrieve_study_metadata(kept.study_instance_uid)
    # The patient's consent to open blocked data (FORHOYET_SAMTYKKE) opens it, as at the source.
    consent = {"nhn-access-basis": "FORHOYET_SAMTYKKE"}
    mark = len(world.media.audit.records)
    r = world.media.get(token, f"studies/{blocked.study_instance_uid}/metadata", **consent)
    assert r.status_code == 200, r.text
    (opened,) = _records(world, mark)
    assert opened.outcome is AuditOutcome.SUCCESS and opened.emergency_override
    # Through the hub (a hub assertion for the same health worker): the same rules.
    relayed = hub_headers(world.net, world.hcp("adult"), "hub-controls-1")
    r = world.media.get(None, "studies", **relayed)
    assert r.status_code == 200, r.text
    assert blocked.study_instance_uid not in _study_uids(r.json())
    # The citizen reads their own blocked images: blocks concern health personnel.
    citizen = world.media.client(world.net.citizen_token("adult"))
    assert blocked.study_instance_uid in _study_uids(citizen.search_for_studies())


def test_a_reserved_patient_is_refused_to_health_personnel(world: World) -> None:
    world.citizen_sets("elderly", "PUT", "/controls/reservation")
    token = world.hcp("elderly")
    study = world.studies["elderly"][0]
    mark = len(world.media.audit.records)
    r = world.media.get(token, "studies")
    assert r.status_code == 200 and r.json() == []
    assert "patient-reserved" in r.headers["Warning"]
    r = world.media.get(token, f"studies/{study.study_instance_uid}/metadata")
    assert r.status_code == 403 and "patient-reserved" in r.json()["message"]
    search, retrieve = _records(world, mark)
    assert search.action is AuditAction.SEARCH and search.reason == "patient-reserved"
    assert search.returned_count == 0
    assert retrieve.outcome is AuditOutcome.DENIED and retrieve.reason == "patient-reserved"
    relayed = hub_headers(world.net, world.hcp("elderly"), "hub-controls-2")
    assert world.media.get(None, "studies", **relayed).json() == []
    # An acute purpose does not lift a reservation: the policy's rule (D4), not the archive's.
    acute = world.hcp("elderly", purpose="ETREAT")
    assert world.media.get(acute, "studies").json() == []
    # The patient still reads their own images.
    own = world.media.client(world.net.citizen_token("elderly"))
    assert len(own.search_for_studies()) == len(world.studies["elderly"])


def test_a_blocked_health_worker_is_refused_and_others_are_not(world: World) -> None:
    doctor = world.net.staff("doctor").hpr
    assert doctor is not None
    world.citizen_sets("parent", "PUT", f"/controls/practitioner-blocks/{doctor.value}")
    study = world.studies["parent"][0]
    token = world.hcp("parent")
    for path in ("studies", f"studies/{study.study_instance_uid}/metadata"):
        mark = len(world.media.audit.records)
        r = world.media.get(token, path)
        assert r.status_code == 403 and "practitioner-blocked" in r.json()["message"], path
        (record,) = _records(world, mark)
        assert record.outcome is AuditOutcome.DENIED and record.reason == "practitioner-blocked"
        assert record.practitioner is not None and record.practitioner.hpr == doctor.value
    nurse = world.media.client(world.hcp("parent", staff="nurse"))
    assert len(nurse.search_for_studies()) == len(world.studies["parent"])


def test_a_change_of_controls_is_seen_after_the_ttl_and_reads_are_cached(world: World) -> None:
    study = world.studies["co_parent"][0]
    client = world.media.client(world.hcp("co_parent"))
    before = len(world.source_reads())
    started = time.monotonic()
    assert study.study_instance_uid in _study_uids(client.search_for_studies())
    assert study.study_instance_uid in _study_uids(client.search_for_studies())
    if time.monotonic() - started < TTL:
        # Two reads within the TTL: the source was asked once, the system audited as the actor.
        (read,) = world.source_reads()[before:]
        assert read.system == ARCHIVE and read.patient_id == world.nin("co_parent")
        assert read.outcome is AuditOutcome.SUCCESS
    world.citizen_sets("co_parent", "PUT", f"/controls/document-blocks/{study.study_instance_uid}")
    changed = time.monotonic()
    deadline = changed + TTL + 10
    while study.study_instance_uid in _study_uids(client.search_for_studies()):
        assert time.monotonic() < deadline, "the block was never seen"
        time.sleep(0.2)
    seen_after = time.monotonic() - changed
    assert seen_after <= TTL + 10
    world.citizen_sets(
        "co_parent", "DELETE", f"/controls/document-blocks/{study.study_instance_uid}"
    )


def test_the_source_down_is_503_and_audited(
    world: World, archive_db: Database, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    settings = world.settings.model_copy(
        update={"source_url": dead, "public_base_url": f"http://127.0.0.1:{port}"}
    )
    audit = MemoryAuditSink()
    app = create_app(settings, audit=audit, hub_keys=StaticJwks([world.net.hub_key]))
    with serve_in_thread(app, port=port) as url:
        down = MediaNet(world.net, url, audit)
        token = world.hcp("proxy_holder")
        study = world.studies["proxy_holder"][0]
        for path in ("studies", f"studies/{study.study_instance_uid}/metadata"):
            mark = len(audit.records)
            r = down.get(token, path)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["Retry-After"] == "1"
            # (Not the manifest worker's ITI-65 tries to the dead source: background records.)
            (record,) = [r for r in audit.records[mark:] if r.action is not AuditAction.EXPORT]
            assert record.outcome is AuditOutcome.DENIED
            assert record.reason == "patient-controls-unavailable"
            assert record.patient_id == world.nin("proxy_holder")
        # A request the policy refuses anyway does not need the source: 403, not 503.
        r = down.get(world.hcp("proxy_holder", scope="openid"), "studies")
        assert r.status_code == 403
        # A citizen's own read does not ask the source at all.
        own = down.client(world.net.citizen_token("proxy_holder"))
        assert len(own.search_for_studies()) == len(world.studies["proxy_holder"])
    # The archive that can ask its source reads the same patient as usual.
    assert world.media.get(world.hcp("proxy_holder"), "studies").status_code == 200


def test_dicomweb_without_a_source_is_refused_at_configuration(world: World) -> None:
    with pytest.raises(ValueError, match="patient's controls"):
        world.settings.model_validate(
            {
                **world.settings.model_dump(),
                "source_url": None,
                "publisher_issuer": None,
                "publisher_key_file": None,
            }
        )
    with pytest.raises(ValueError, match="go together"):
        world.settings.model_validate({**world.settings.model_dump(), "publisher_key_file": None})
