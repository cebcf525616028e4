"""Fixtures for the media archive: synthetic instances, a service over SQLite or PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from onerecord.audit import MemoryAuditSink
from onerecord.media import FolderInstanceStore, MediaService, SqlMetadataStore
from onerecord.media.database import make_engine
from onerecord.media.migrate import upgrade
from onerecord.synth.dicom import DicomPatient, SynthStudy, patient_studies, write_instances
from onerecord.synth.numbers import Sex, synthetic_fnr
from tests.conftest import Database

REFERENCE = date(2026, 11, 1)


def synthetic_patient(seed: int = 3, sex: Sex = Sex.FEMALE) -> DicomPatient:
    born = date(1961, 9, 2) if sex is Sex.FEMALE else date(1990, 2, 20)
    nin = synthetic_fnr(random.Random(seed), born, sex=sex)
    given = "Synne" if sex is Sex.FEMALE else "Sindre"
    return DicomPatient(nin, "Testesen", given, born, "F" if sex is Sex.FEMALE else "M")


@dataclass(frozen=True)
class SynthFiles:
    patient: DicomPatient
    studies: list[SynthStudy]
    paths: list[Path]


def make_files(folder: Path, *, seed: int = 3, sex: Sex = Sex.FEMALE) -> SynthFiles:
    patient = synthetic_patient(seed, sex)
    studies = patient_studies(patient, seed=seed, reference_date=REFERENCE, ct_slices=3, size=64)
    paths = write_instances([ds for s in studies for ds in s.instances], folder)
    return SynthFiles(patient, studies, paths)


@pytest.fixture(scope="module")
def synth_files(tmp_path_factory: pytest.TempPathFactory) -> SynthFiles:
    return make_files(tmp_path_factory.mktemp("dicom"))


@dataclass
class Archive:
    service: MediaService
    store: SqlMetadataStore
    content: FolderInstanceStore
    audit: MemoryAuditSink


@pytest.fixture
async def archive(database: Database, tmp_path: Path) -> AsyncIterator[Archive]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    store = SqlMetadataStore(engine)
    content = FolderInstanceStore(tmp_path / "content")
    audit = MemoryAuditSink()
    service = MediaService(
        store=store,
        content=content,
        audit=audit,
        source_id="helse-nord-media",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
        max_find_results=50,
    )
    try:
        yield Archive(service, store, content, audit)
    finally:
        await store.close()
        await engine.dispose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
