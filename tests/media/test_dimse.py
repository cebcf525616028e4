"""The archive's DIMSE service against DCMTK as the modality and the workstation, on 127.0.0.1.

DCMTK (`echoscu`, `storescu`, `findscu`, `movescu`, `getscu`, `storescp`) is a peer no one here
wrote; the archive runs as a real server (uvicorn, with its DIMSE listener) on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from onerecord.audit import AuditAction, AuditOutcome, MemoryAuditSink
from onerecord.media import MediaSettings, RemoteAE
from onerecord.media.app import create_app
from onerecord.synth.dicom import VL_PHOTOGRAPHIC_IMAGE_STORAGE
from tests.conftest import Database
from tests.media.conftest import SynthFiles
from tests.media.dicom_tools import require_dcmtk, storescu_batches
from tests.support.servers import free_port, serve_in_thread

ARCHIVE = "ONERECORD"


@dataclass
class Running:
    dimse_port: int
    base_url: str
    audit: MemoryAuditSink
    workstation_port: int
    tmp: Path

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [require_dcmtk(tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def store(self, *paths: Path, calling: str = "CT1") -> None:
        """storescu, once per family of transfer syntaxes it must propose."""
        for options, files in storescu_batches(paths):
            self.run(
                "storescu", *options, "-aet", calling, "-aec", ARCHIVE,
                "127.0.0.1", str(self.dimse_port), *map(str, files),
            )  # fmt: skip

    def find(self, model: str, level: str, *keys: str) -> list[pydicom.Dataset]:
        """findscu with -X: each response identifier as a file, read back."""
        out = self.tmp / f"find-{time.monotonic_ns()}"
        out.mkdir()
        args = [model, "-aet", "WS1", "-aec", ARCHIVE, "-X", "-od", str(out)]
        args += ["-k", f"QueryRetrieveLevel={level}"]
        for key in keys:
            args += ["-k", key]
        self.run("findscu", *args, "127.0.0.1", str(self.dimse_port))
        return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture
def archive_server(database: Database, tmp_path: Path) -> Iterator[Running]:
    dimse_port, workstation_port = free_port(), free_port()
    settings = MediaSettings(
        db_url=database.url,
        db_schema=database.schema,
        content_dir=tmp_path / "content",
        dimse_port=dimse_port,
        modalities={
            "CT1": RemoteAE(host="127.0.0.1", port=free_port()),
            "WS1": RemoteAE(host="127.0.0.1", port=workstation_port),
        },
    )
    audit = MemoryAuditSink()
    with serve_in_thread(create_app(settings, audit=audit)) as url:
        yield Running(dimse_port, url, audit, workstation_port, tmp_path)


@pytest.fixture
def workstation(archive_server: Running) -> Iterator[Path]:
    """DCMTK's storescp as the C-MOVE destination WS1, writing what it receives to a folder."""
    folder = archive_server.tmp / "received"
    folder.mkdir()
    storescp = require_dcmtk("storescp")
    process = subprocess.Popen(
        [storescp, "-aet", "WS1", "+xa", "-od", str(folder), str(archive_server.workstation_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(archive_server.workstation_port)
        yield folder
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_echo_from_a_known_modality(archive_server: Running) -> None:
    archive_server.run("echoscu", "-aet", "CT1", "-aec", ARCHIVE, "127.0.0.1",
                       str(archive_server.dimse_port))  # fmt: skip


def test_an_unknown_calling_ae_is_rejected(
    archive_server: Running, synth_files: SynthFiles
) -> None:
    echo = archive_server.run(
        "echoscu", "-aet", "INTRUDER", "-aec", ARCHIVE, "127.0.0.1",
        str(archive_server.dimse_port), check=False,
    )  # fmt: skip
    assert echo.returncode != 0
    assert "calling ae title not recogni" in (echo.stdout + echo.stderr).lower()
    store = archive_server.run(
        "storescu", "-aet", "INTRUDER", "-aec", ARCHIVE, "127.0.0.1",
        str(archive_server.dimse_port), str(synth_files.paths[0]), check=False,
    )  # fmt: skip
    assert store.returncode != 0
    assert archive_server.audit.records == []


def test_store_then_find_at_every_level(archive_server: Running, synth_files: SynthFiles) -> None:
    archive_server.store(*synth_files.paths)
    stored = [r for r in archive_server.audit.records if r.action is AuditAction.STORE]
    assert len(stored) == len(synth_files.paths) == 8
    assert all(r.outcome is AuditOutcome.SUCCESS for r in stored)
    assert {r.patient_id for r in stored} == {synth_files.patient.nin.value}
    assert all(r.correlation_id.startswith("dimse:CT1:") for r in stored)

    pid = synth_files.patient.nin.value
    patients = archive_server.find(
        "-P", "PATIENT", f"PatientID={pid}", "PatientName", "NumberOfPatientRelatedStudies"
    )
    assert len(patients) == 1
    assert str(patients[0].PatientName) == "Testesen^Synne"
    assert int(patients[0].NumberOfPatientRelatedStudies) == 6

    studies = archive_server.find(
        "-S", "STUDY", f"PatientID={pid}", "StudyInstanceUID", "StudyDate",
        "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "AccessionNumber",
    )  # fmt: skip
    assert len(studies) == 6
    assert sorted(str(s.ModalitiesInStudy) for s in studies) == ["CR", "CT", "US", "XC", "XC", "XC"]
    ct = next(s for s in studies if s.ModalitiesInStudy == "CT")
    assert int(ct.NumberOfStudyRelatedInstances) == 3

    dated = archive_server.find(
        "-S", "STUDY", "StudyDate=20260601-", "ModalitiesInStudy=XC", "StudyInstanceUID"
    )
    assert len(dated) == 2  # the second photograph and the wound clip

    series = archive_server.find(
        "-S", "SERIES", f"StudyInstanceUID={ct.StudyInstanceUID}", "SeriesInstanceUID",
        "Modality", "NumberOfSeriesRelatedInstances",
    )  # fmt: skip
    assert [(s.Modality, int(s.NumberOfSeriesRelatedInstances)) for s in series] == [("CT", 3)]

    images = archive_server.find(
        "-S", "IMAGE", f"StudyInstanceUID={ct.StudyInstanceUID}",
        f"SeriesInstanceUID={series[0].SeriesInstanceUID}", "SOPInstanceUID", "InstanceNumber",
        "SOPClassUID",
    )  # fmt: skip
    assert [int(i.InstanceNumber) for i in images] == [1, 2, 3]
    by_patient_root = archive_server.find(
        "-P", "IMAGE", f"PatientID={pid}", f"StudyInstanceUID={ct.StudyInstanceUID}",
        f"SeriesInstanceUID={series[0].SeriesInstanceUID}", "SOPInstanceUID",
    )  # fmt: skip
    assert len(by_patient_root) == 3
    searches = [r for r in archive_server.audit.records if r.action is AuditAction.SEARCH]
    assert len(searches) == 6


def test_the_same_instance_twice_is_one(archive_server: Running, synth_files: SynthFiles) -> None:
    one = synth_files.paths[0]
    archive_server.store(one)
    archive_server.store(one)
    sop = str(pydicom.dcmread(one, stop_before_pixels=True).SOPInstanceUID)
    found = archive_server.find("-S", "IMAGE", f"SOPInstanceUID={sop}", "SOPInstanceUID")
    assert len(found) == 1
    content = archive_server.tmp / "content"
    assert len(list(content.rglob("*.dcm"))) == 1


def test_a_study_root_patient_level_query_is_refused(archive_server: Running) -> None:
    done = archive_server.run(
        "findscu", "-v", "-S", "-aet", "WS1", "-aec", ARCHIVE, "-k", "QueryRetrieveLevel=PATIENT",
        "-k", "PatientID", "127.0.0.1", str(archive_server.dimse_port), check=False,
    )  # fmt: skip
    # 0xA900, Identifier Does Not Match SOP Class (PS3.4 C.4.1.1.4); DCMTK names the code so.
    assert "Error: DataSetDoesNotMatchSOPClass" in done.stdout + done.stderr


def test_move_to_a_known_workstation(
    archive_server: Running, synth_files: SynthFiles, workstation: Path
) -> None:
    archive_server.store(*synth_files.paths)
    photos = archive_server.find("-S", "STUDY", "ModalitiesInStudy=XC", "StudyInstanceUID")
    ct = archive_server.find("-S", "STUDY", "ModalitiesInStudy=CT", "StudyInstanceUID")
    for study in (*photos, *ct):
        archive_server.run(
            "movescu", "-S", "-aet", "WS1", "-aec", ARCHIVE, "-aem", "WS1",
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study.StudyInstanceUID}",
            "127.0.0.1", str(archive_server.dimse_port),
        )  # fmt: skip
    received = [pydicom.dcmread(p) for p in workstation.iterdir()]
    assert len(received) == 6  # two photographs, the clip (H.264 as stored), three CT
    photo = next(ds for ds in received if ds.SOPClassUID == VL_PHOTOGRAPHIC_IMAGE_STORAGE)
    original = next(
        p for p in synth_files.paths if p.stem == str(photo.SOPInstanceUID)
    )  # the JPEG sent as stored, not transcoded
    assert photo.PixelData == pydicom.dcmread(original).PixelData
    retrieves = [r for r in archive_server.audit.records if r.action is AuditAction.RETRIEVE]
    assert sum(len(r.document_ids) for r in retrieves) == 6


def test_move_to_an_unknown_destination_is_refused(
    archive_server: Running, synth_files: SynthFiles
) -> None:
    archive_server.store(synth_files.paths[0])
    done = archive_server.run(
        "movescu", "-S", "-aet", "WS1", "-aec", ARCHIVE, "-aem", "ELSEWHERE",
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
        "127.0.0.1", str(archive_server.dimse_port), check=False,
    )  # fmt: skip
    assert "MoveDestinationUnknown" in done.stdout + done.stderr


def test_get_a_study(archive_server: Running, synth_files: SynthFiles) -> None:
    archive_server.store(*synth_files.paths)
    ct = archive_server.find("-S", "STUDY", "ModalitiesInStudy=CT", "StudyInstanceUID")
    folder = archive_server.tmp / "got"
    folder.mkdir()
    archive_server.run(
        "getscu", "-S", "-aet", "WS1", "-aec", ARCHIVE, "-od", str(folder),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={ct[0].StudyInstanceUID}",
        "127.0.0.1", str(archive_server.dimse_port),
    )  # fmt: skip
    received = sorted(int(pydicom.dcmread(p).InstanceNumber) for p in folder.iterdir())
    assert received == [1, 2, 3]
