"""QIDO-RS and WADO-RS metadata over the archive's tables, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import orjson
import pytest

from onerecord.dicom import QidoLevel, parse_qido_query
from onerecord.media import qido_store
from tests.media.conftest import Archive, SynthFiles

pytestmark = pytest.mark.anyio
BASE = "https://media.test/dicomweb"


async def _store_all(archive: Archive, files: SynthFiles) -> None:
    for path in files.paths:
        await archive.service.store_instance(
            path.read_bytes(), calling_ae_title="CT1", correlation_id="t"
        )


def _query(level: QidoLevel, *pairs: tuple[str, str], **path: str) -> object:
    return parse_qido_query(list(pairs), level=level, **path)


async def test_search_is_narrowed_to_the_patient_and_matches(
    archive: Archive, synth_files: SynthFiles
) -> None:
    await _store_all(archive, synth_files)
    engine = archive.store._engine  # noqa: SLF001 - the store's own engine
    me = synth_files.patient.nin.value

    async def search(level: QidoLevel, *pairs: tuple[str, str], patient: str = me, **path: str):  # type: ignore[no-untyped-def]
        query = parse_qido_query(list(pairs), level=level, **path)
        return await qido_store.search(engine, query, patient_id=patient, retrieve_base=BASE)

    studies = await search(QidoLevel.STUDY)
    assert len(studies) == len(synth_files.studies)
    assert await search(QidoLevel.STUDY, patient="01010112345") == []
    ct = next(s for s in synth_files.studies if s.instances[0].Modality == "CT")
    found = await search(QidoLevel.STUDY, ("ModalitiesInStudy", "CT,MR"))
    assert [m["0020000D"]["Value"][0] for m in found] == [ct.study_instance_uid]
    assert found[0]["00201208"]["Value"] == [len(ct.instances)]
    day = ct.instances[0].StudyDate
    assert len(await search(QidoLevel.STUDY, ("StudyDate", f"{day}-"))) >= 1
    found = await search(QidoLevel.STUDY, ("PatientName", "testesen*"))
    assert len(found) == len(synth_files.studies)  # person names: case-insensitive
    found = await search(
        QidoLevel.STUDY, ("PatientName", "TESTESEN SYN"), ("fuzzymatching", "true")
    )
    assert len(found) == len(synth_files.studies)
    assert await search(QidoLevel.STUDY, ("StudyTime", "000000-000001")) == []
    series = await search(QidoLevel.SERIES, study_uid=ct.study_instance_uid)
    assert len(series) == 1 and series[0]["00201209"]["Value"] == [len(ct.instances)]
    page = await search(
        QidoLevel.INSTANCE, ("limit", "1"), ("offset", "1"), study_uid=ct.study_instance_uid
    )
    assert len(page) == 1
    everything = await search(
        QidoLevel.INSTANCE, ("includefield", "all"), study_uid=ct.study_instance_uid
    )
    assert all("7FE00010" not in m and "00280010" in m for m in everything)


async def test_metadata_is_the_stored_json_with_absolute_bulk_data_uris(
    archive: Archive, synth_files: SynthFiles
) -> None:
    await _store_all(archive, synth_files)
    engine = archive.store._engine  # noqa: SLF001
    ds = synth_files.studies[0].instances[0]
    [raw] = await qido_store.instance_metadata(engine, [ds.SOPInstanceUID], retrieve_base=BASE)
    metadata = orjson.loads(raw)
    assert metadata["00080018"]["Value"] == [ds.SOPInstanceUID]
    expected = (
        f"{BASE}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/bulkdata/7FE00010"
    )
    assert metadata["7FE00010"]["BulkDataURI"] == expected
    found = await qido_store.locate_uids(engine, study_uid=ds.StudyInstanceUID, limit=100)
    assert {i.patient_id for i in found} == {synth_files.patient.nin.value}
