"""The archive's storage on SQLite and PostgreSQL: register, find, locate, duplicates, crashes."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pydicom
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit import (
    AuditAction,
    AuditOutcome,
    SqlAuditSink,
    audit_event_table,
)
from onerecord.media import (
    ContentKey,
    FolderInstanceStore,
    InstanceConflict,
    InvalidInstance,
    MediaService,
    QueryRoot,
    SqlMetadataStore,
    StoreOutcome,
    parse_find,
)
from onerecord.media.database import make_engine
from onerecord.media.errors import ContentWriteFailed, SopClassMismatch
from onerecord.media.instance import ReceivedInstance
from onerecord.media.migrate import upgrade
from onerecord.media.query import Level
from onerecord.media.schema import media_manifest
from tests.conftest import Database
from tests.media.conftest import Archive, SynthFiles

pytestmark = pytest.mark.anyio
CORRELATION = "dimse:TEST:1"


async def _store_all(archive: Archive, files: SynthFiles) -> None:
    for path in files.paths:
        result = await archive.service.store_instance(
            path.read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
        )
        assert result.outcome is StoreOutcome.STORED


def _query(level: str, root: QueryRoot = QueryRoot.STUDY, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


async def _find(archive: Archive, ds: Dataset, root: QueryRoot = QueryRoot.STUDY) -> list[dict]:
    return await archive.service.find(
        parse_find(ds, root=root), calling_ae_title="WS1", correlation_id=CORRELATION
    )


async def test_find_at_every_level(archive: Archive, synth_files: SynthFiles) -> None:
    await _store_all(archive, synth_files)
    pid = synth_files.patient.nin.value
    patients = await _find(
        archive,
        _query("PATIENT", PatientID=pid, PatientName="", NumberOfPatientRelatedStudies=""),
        QueryRoot.PATIENT,
    )
    assert patients == [
        {"PatientID": pid, "PatientName": "Testesen^Synne", "NumberOfPatientRelatedStudies": 6}
    ]
    studies = await _find(
        archive,
        _query(
            "STUDY",
            PatientID=pid,
            StudyInstanceUID="",
            ModalitiesInStudy="",
            NumberOfStudyRelatedInstances="",
            StudyDate="",
        ),
    )
    assert len(studies) == 6
    assert [s["StudyDate"] for s in studies] == sorted(s["StudyDate"] for s in studies)
    ct = next(s for s in studies if s["ModalitiesInStudy"] == ["CT"])
    assert ct["NumberOfStudyRelatedInstances"] == 3
    series = await _find(
        archive,
        _query(
            "SERIES",
            StudyInstanceUID=ct["StudyInstanceUID"],
            SeriesInstanceUID="",
            Modality="",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    assert len(series) == 1 and series[0]["Modality"] == "CT"
    images = await _find(
        archive,
        _query(
            "IMAGE",
            StudyInstanceUID=ct["StudyInstanceUID"],
            SeriesInstanceUID=series[0]["SeriesInstanceUID"],
            SOPInstanceUID="",
            InstanceNumber="",
        ),
    )
    assert [i["InstanceNumber"] for i in images] == [1, 2, 3]
    assert [r.action for r in archive.audit.records].count(AuditAction.STORE) == 8
    assert [r.action for r in archive.audit.records].count(AuditAction.SEARCH) == 4


async def test_matching_kinds(archive: Archive, synth_files: SynthFiles) -> None:
    await _store_all(archive, synth_files)
    pid = synth_files.patient.nin.value

    async def count(**keys: object) -> int:
        return len(await _find(archive, _query("STUDY", **{"StudyInstanceUID": "", **keys})))

    assert await count(PatientName="testesen^*") == 6  # PN: case-insensitive wildcard
    assert await count(PatientName="Nobody*") == 0
    assert await count(PatientID=pid[:6] + "*") == 6
    assert await count(PatientID=pid[:6] + "?????") == 6
    assert await count(PatientID="1%") == 0  # LIKE's own wildcards are literal
    assert await count(ModalitiesInStudy="CT") == 1
    assert await count(ModalitiesInStudy="CT\\XC") == 4
    # CT 2026-09-22, CR 2026-08-03, US 2026-10-12, photos 2026-04-15 and 2026-10-12,
    # the wound clip 2026-10-22
    assert await count(StudyDate="20260601-") == 5
    assert await count(StudyDate="-20260415") == 1  # the end day counts whole
    assert await count(StudyDate="20261012") == 2
    assert await count(StudyDate="20200101-20301231") == 6
    photos = await _find(archive, _query("STUDY", ModalitiesInStudy="XC", StudyInstanceUID=""))
    uids = "\\".join(p["StudyInstanceUID"] for p in photos)
    assert await count(StudyInstanceUID=uids) == 3
    accession = str(synth_files.studies[0].instances[0].AccessionNumber)
    assert await count(AccessionNumber=accession) == 1


async def test_the_same_instance_twice_is_one(archive: Archive, synth_files: SynthFiles) -> None:
    data = synth_files.paths[0].read_bytes()
    first = await archive.service.store_instance(
        data, calling_ae_title="CT1", correlation_id=CORRELATION
    )
    second = await archive.service.store_instance(
        data, calling_ae_title="CT1", correlation_id=CORRELATION
    )
    assert (first.outcome, second.outcome) == (StoreOutcome.STORED, StoreOutcome.DUPLICATE)
    # A re-send with other bytes under the same SOP Instance UID is ignored too: first wins.
    ds = pydicom.dcmread(synth_files.paths[0])
    ds.StudyDescription = "changed"
    other = Path(archive.content.root.parent / "other.dcm")
    ds.save_as(other, enforce_file_format=True)
    third = await archive.service.store_instance(
        other.read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
    )
    assert third.outcome is StoreOutcome.DUPLICATE
    images = await _find(archive, _query("IMAGE", SOPInstanceUID=first.sop_instance_uid))
    assert len(images) == 1
    assert len(list(archive.content.root.rglob("*.dcm"))) == 1  # no orphan of the re-send
    meta = await archive.store.metadata(first.sop_instance_uid)
    assert meta is not None and meta["00081030"]["Value"] == ["CT abdomen"]
    assert meta["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulk/7FE00010"}


async def test_concurrent_sends_of_one_instance_register_once(
    archive: Archive, synth_files: SynthFiles
) -> None:
    data = synth_files.paths[1].read_bytes()
    outcomes: list[StoreOutcome] = []

    async def send() -> None:
        result = await archive.service.store_instance(
            data, calling_ae_title="CT1", correlation_id=CORRELATION
        )
        outcomes.append(result.outcome)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(send)
    assert sorted(outcomes).count(StoreOutcome.STORED) == 1
    assert (
        len(await archive.store.locate(parse_find(_query("STUDY"), root=QueryRoot.STUDY), limit=10))
        == 1
    )


class _FailingRegister:
    """A metadata store whose registration fails after the bytes are written (a crash)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def register(
        self,
        instance: ReceivedInstance,
        content: ContentKey,
        *,
        calling_ae_title: str,
        stored: datetime,
        audit: object = None,
    ) -> bool:
        raise ConnectionError("database went away")


class _FailingContent(FolderInstanceStore):
    """A content store that dies in the middle of writing: the file is never renamed."""

    def _write(self, sha: str, data: bytes) -> None:
        folder = self.path_of(sha).parent
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f".{sha}.crash.part").write_bytes(data[: len(data) // 2])
        raise OSError(28, "No space left on device")


async def test_a_failed_registration_leaves_nothing(
    archive: Archive, synth_files: SynthFiles
) -> None:
    failing = MediaService(
        store=_FailingRegister(archive.store),  # type: ignore[arg-type]
        content=archive.content,
        audit=archive.audit,
        source_id="helse-nord-media",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
    )
    with pytest.raises(ConnectionError):
        await failing.store_instance(
            synth_files.paths[0].read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
        )
    assert await _find(archive, _query("STUDY", StudyInstanceUID="")) == []
    assert list(archive.content.root.rglob("*.dcm")) == []
    stores = [r for r in archive.audit.records if r.action is AuditAction.STORE]
    assert [(r.outcome, r.reason) for r in stores] == [(AuditOutcome.ERROR, "store-failed")]


async def test_a_write_that_dies_registers_nothing(
    archive: Archive, synth_files: SynthFiles, tmp_path: Path
) -> None:
    content = _FailingContent(tmp_path / "dying")
    failing = MediaService(
        store=archive.store,
        content=content,
        audit=archive.audit,
        source_id="helse-nord-media",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
    )
    with pytest.raises(ContentWriteFailed):
        await failing.store_instance(
            synth_files.paths[0].read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
        )
    assert await _find(archive, _query("STUDY", StudyInstanceUID="")) == []
    assert list(content.root.rglob("*.dcm")) == []  # only the .part, never a final name
    stores = [r for r in archive.audit.records if r.action is AuditAction.STORE]
    assert [r.reason for r in stores] == ["store-failed"]


async def test_a_study_of_another_patient_is_refused(
    archive: Archive, synth_files: SynthFiles, tmp_path: Path
) -> None:
    await archive.service.store_instance(
        synth_files.paths[0].read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
    )
    ds = pydicom.dcmread(synth_files.paths[0])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "2.25.1234"
    ds.PatientID = "somebody-else"
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InstanceConflict):
        await archive.service.store_instance(
            path.read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
        )
    assert archive.audit.records[-1].outcome is AuditOutcome.ERROR
    assert len(list(archive.content.root.rglob("*.dcm"))) == 1


async def test_garbage_is_refused(archive: Archive) -> None:
    with pytest.raises(InvalidInstance):
        await archive.service.store_instance(
            b"\x00" * 128 + b"DICM" + b"\xff" * 50, calling_ae_title="CT1", correlation_id="x"
        )
    assert archive.audit.records[-1].reason == "invalid-instance"


async def test_a_retrieve_is_audited_per_patient(archive: Archive, synth_files: SynthFiles) -> None:
    await _store_all(archive, synth_files)
    query = parse_find(
        _query("STUDY", PatientID=synth_files.patient.nin.value), root=QueryRoot.STUDY
    )
    assert query.level is Level.STUDY
    found = await archive.service.locate(
        query, calling_ae_title="WS1", correlation_id=CORRELATION, purpose="C-MOVE to WS1"
    )
    assert len(found) == 8
    record = archive.audit.records[-1]
    assert record.action is AuditAction.RETRIEVE
    assert record.patient_id == synth_files.patient.nin.value
    assert len(record.document_ids) == 8
    assert await archive.service.read(found[0]) == next(
        p.read_bytes() for p in synth_files.paths if p.stem == found[0].sop_instance_uid
    )


async def test_a_data_set_sent_as_another_sop_class_is_refused(
    archive: Archive, synth_files: SynthFiles
) -> None:
    with pytest.raises(SopClassMismatch):
        await archive.service.store_instance(
            synth_files.paths[0].read_bytes(),
            calling_ae_title="CT1",
            correlation_id=CORRELATION,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.1",  # C-STORE said CR; the data set is CT
        )
    assert list(archive.content.root.rglob("*.dcm")) == []
    assert archive.audit.records[-1].reason == "invalid-instance"


async def test_the_sql_audit_takes_any_patient_id(
    database: Database, tmp_path: Path, synth_files: SynthFiles
) -> None:
    """A hospital's own PatientID is not an identity number: audited without a patient."""
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        store = SqlMetadataStore(engine)
        sink = SqlAuditSink(engine, "urn:oid:2.16.578.1.12.4.5.100.4#media")
        service = MediaService(
            store=store,
            content=FolderInstanceStore(tmp_path / "c"),
            audit=sink,
            source_id="urn:oid:2.16.578.1.12.4.5.100.4#media",
            home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
        )
        ds = pydicom.dcmread(synth_files.paths[0])
        ds.PatientID = "HOSP-0000012345-NORD"
        local = tmp_path / "local.dcm"
        ds.save_as(local, enforce_file_format=True)
        other = next(
            p
            for p in synth_files.paths
            if pydicom.dcmread(p).StudyInstanceUID != ds.StudyInstanceUID
        )
        for path in (local, other):
            result = await service.store_instance(
                path.read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
            )
            assert result.outcome is StoreOutcome.STORED
        await sink.close()
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(audit_event_table.c.patient_id).order_by(audit_event_table.c.seq)
                )
            ).all()
        assert [r.patient_id for r in rows] == [None, synth_files.patient.nin.value]
    finally:
        await engine.dispose()


async def test_the_sweep_removes_orphans_and_torn_writes_only(
    archive: Archive, synth_files: SynthFiles
) -> None:
    kept = await archive.service.store_instance(
        synth_files.paths[0].read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
    )
    orphan = await archive.content.put(synth_files.paths[1].read_bytes())  # a crash after write
    torn = archive.content.path_of(orphan.sha256).parent / f".{orphan.sha256}.dead.part"
    torn.write_bytes(b"half")
    young = await archive.content.put(synth_files.paths[2].read_bytes())  # a store in flight
    old = time.time() - 7200
    for path in archive.content.root.rglob("*"):
        if path.is_file() and young.sha256 not in path.name:
            os.utime(path, (old, old))
    removed = await archive.content.sweep_orphans(archive.store.is_referenced, timedelta(hours=1))
    assert removed == 2
    found = await archive.store.locate(
        parse_find(_query("IMAGE", SOPInstanceUID=kept.sop_instance_uid), root=QueryRoot.STUDY),
        limit=2,
    )
    left = {p.name for p in archive.content.root.rglob("*") if p.is_file()}
    assert left == {f"{young.sha256}.dcm", f"{found[0].content_key}.dcm"}


# The staged-stream contract (stage, commit, discard, sweep) is tested over the folder and S3
# in tests/media/test_content.py.


class _FailingChain(SqlAuditSink):
    """An audit chain whose append fails inside the registration's transaction."""

    def append_in(self, conn: object, records: object) -> tuple[int, str, int]:
        raise ConnectionError("audit table went away")


async def _sql_service(
    engine: AsyncEngine, content: Path, sink: SqlAuditSink
) -> tuple[SqlMetadataStore, MediaService]:
    store = SqlMetadataStore(engine, audit=sink)
    service = MediaService(
        store=store,
        content=FolderInstanceStore(content),
        audit=sink,
        source_id=sink.source_id,
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
    )
    return store, service


async def test_concurrent_stores_commit_together_each_with_its_own_outcome(
    database: Database, tmp_path: Path, synth_files: SynthFiles
) -> None:
    """Stores in flight at once share a registration transaction (group commit) with their
    audit records; a conflict refuses its own instance only, a re-send in the same batch is one
    instance, and the study's outbox row counts each registered instance once."""
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        sink = SqlAuditSink(engine, "urn:oid:2.16.578.1.12.4.5.100.4#media")
        store, service = await _sql_service(engine, tmp_path / "c", sink)
        first, *rest = synth_files.paths
        ds = pydicom.dcmread(first)
        await service.store_instance(
            first.read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
        )
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "2.25.98765"
        ds.PatientID = "somebody-else"
        conflict = tmp_path / "conflict.dcm"
        ds.save_as(conflict, enforce_file_format=True)
        sends = [p.read_bytes() for p in rest] + [rest[0].read_bytes(), conflict.read_bytes()]
        outcomes: list[StoreOutcome | str] = []

        async def send(data: bytes) -> None:
            try:
                result = await service.store_instance(
                    data, calling_ae_title="CT1", correlation_id=CORRELATION
                )
            except InstanceConflict:
                outcomes.append("conflict")
            else:
                outcomes.append(result.outcome)

        async with anyio.create_task_group() as tg:
            for data in sends:
                tg.start_soon(send, data)
        assert sorted(map(str, outcomes)) == sorted(
            [StoreOutcome.STORED.value] * len(rest) + [StoreOutcome.DUPLICATE.value, "conflict"]
        )
        await store.close()
        await sink.close()
        assert (await sink.verify()).ok
        async with engine.connect() as conn:
            events = (
                await conn.execute(select(audit_event_table.c.action, audit_event_table.c.outcome))
            ).all()
            changes = dict(
                (
                    await conn.execute(
                        select(media_manifest.c.study_instance_uid, media_manifest.c.changes)
                    )
                ).all()
            )
        stores = [tuple(e) for e in events if e.action == AuditAction.STORE.value]
        assert stores.count((AuditAction.STORE.value, AuditOutcome.SUCCESS.value)) == len(rest) + 2
        assert stores.count((AuditAction.STORE.value, AuditOutcome.ERROR.value)) == 1
        per_study: dict[str, int] = {}
        for path in synth_files.paths:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
            per_study[uid] = per_study.get(uid, 0) + 1
        assert changes == per_study
        assert len(list((tmp_path / "c").rglob("*.dcm"))) == len(synth_files.paths)
    finally:
        await engine.dispose()


async def test_a_registration_whose_audit_record_fails_is_not_registered(
    database: Database, tmp_path: Path, synth_files: SynthFiles
) -> None:
    """The audit record is written in the registration's transaction: if it cannot be, the
    instance is not registered and its bytes are removed (every store audited)."""
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        sink = _FailingChain(engine, "urn:oid:2.16.578.1.12.4.5.100.4#media")
        store, service = await _sql_service(engine, tmp_path / "c", sink)
        with pytest.raises(ConnectionError):
            await service.store_instance(
                synth_files.paths[0].read_bytes(),
                calling_ae_title="CT1",
                correlation_id=CORRELATION,
            )
        await store.close()
        assert await store.find(parse_find(_query("STUDY"), root=QueryRoot.STUDY), limit=5) == []
        async with engine.connect() as conn:
            assert (await conn.execute(select(media_manifest.c.study_instance_uid))).all() == []
        assert list((tmp_path / "c").rglob("*.dcm")) == []
    finally:
        await engine.dispose()
