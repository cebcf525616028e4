"""Bad input over DIMSE gets a failure status and leaves nothing stored; pynetdicom as the peer.

pynetdicom's own requestor sends what DCMTK's tools would refuse to: instances with broken UIDs,
a data set sent under another SOP class, malformed C-FIND identifiers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association

from onerecord.audit import AuditAction, AuditOutcome, MemoryAuditSink
from onerecord.media import MediaSettings, RemoteAE
from onerecord.media.app import create_app
from tests.media.conftest import SynthFiles
from tests.support.servers import free_port, serve_in_thread

CT = "1.2.840.10008.5.1.4.1.1.2"
CR = "1.2.840.10008.5.1.4.1.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[Association, MediaSettings, MemoryAuditSink]]:
    settings = MediaSettings(
        db_url=f"sqlite:///{tmp_path / 'a.db'}",
        content_dir=tmp_path / "content",
        dimse_port=free_port(),
        modalities={"CT1": RemoteAE(host="127.0.0.1", port=1)},
    )
    audit = MemoryAuditSink()
    with serve_in_thread(create_app(settings, audit=audit)):
        ae = AE(ae_title="CT1")
        for context in (CT, CR, STUDY_FIND):
            ae.add_requested_context(context, [EXPLICIT])
        assoc = ae.associate("127.0.0.1", settings.dimse_port, ae_title="ONERECORD")
        assert assoc.is_established
        try:
            yield assoc, settings, audit
        finally:
            assoc.release()


def _ct(synth_files: SynthFiles) -> Dataset:
    path = next(p for p in synth_files.paths if pydicom.dcmread(p).SOPClassUID == CT)
    return pydicom.dcmread(path)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("SOPInstanceUID", "1.2.03"), ("StudyInstanceUID", ""), ("SeriesInstanceUID", "x.y")],
)
def test_broken_uids_are_refused_and_nothing_is_stored(
    peer: tuple[Association, MediaSettings, MemoryAuditSink],
    synth_files: SynthFiles,
    keyword: str,
    value: str,
) -> None:
    assoc, settings, audit = peer
    ds = _ct(synth_files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the invalid UID we mean to send
        setattr(ds, keyword, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = assoc.send_c_store(ds)
    assert status.Status == 0xC000
    assert not list(settings.content_dir.rglob("*.dcm"))
    assert [(r.action, r.outcome) for r in audit.records] == [
        (AuditAction.STORE, AuditOutcome.ERROR)
    ]


@pytest.mark.parametrize(
    "keys",
    [{"StudyDate": "2026-01"}, {"StudyInstanceUID": "1.02"}, {"QueryRetrieveLevel": "WARD"}],
)
def test_malformed_find_identifiers_get_a900(
    peer: tuple[Association, MediaSettings, MemoryAuditSink], keys: dict[str, str]
) -> None:
    assoc, _, _ = peer
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in keys.items():
            setattr(identifier, keyword, value)
    statuses = [status.Status for status, _ in assoc.send_c_find(identifier, STUDY_FIND)]
    assert statuses == [0xA900]
