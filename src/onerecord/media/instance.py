"""What the archive reads from a received instance: its keys and its metadata without bulk data.

`read_instance` parses a DICOM Part 10 byte string (preamble, file meta, data set, as pynetdicom
hands over a C-STORE data set with `encoded_dataset()`) and checks what the archive indexes by:
the SOP Class, SOP Instance, Study and Series UIDs (PS3.5 9.1: at most 64 characters, digits
and dots, no empty component, no leading zero), and the value lengths of the keys kept as
columns. The metadata is the data set in DICOM JSON (PS3.18 F.2) with every binary value over
`BULK_THRESHOLD` bytes replaced by a BulkDataURI relative to the instance (`bulk/<tag>`), which
the DICOMweb layer will turn into a full URI.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from onerecord.dicom import AttributePath, DicomWireError, bulkdata_segment, is_uid, metadata_json
from onerecord.media.errors import InvalidInstance, SopClassMismatch

__all__ = ["BULK_THRESHOLD", "ReceivedInstance", "is_uid", "read_dataset", "read_instance"]

BULK_THRESHOLD = 1024


@dataclass(frozen=True, slots=True)
class ReceivedInstance:
    """The indexed attributes of one instance, its transfer syntax and its DICOM JSON."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician_name: str
    modality: str
    series_number: int | None
    series_description: str
    body_part_examined: str
    instance_number: int | None
    metadata: dict[str, Any]

    @property
    def patient_key(self) -> str:
        """The patient as one identifier in one namespace."""
        return f"{self.patient_id}^{self.issuer_of_patient_id}"


def _text(ds: Dataset, keyword: str, limit: int) -> str:
    value = ds.get(keyword)
    text = "" if value is None else str(value).strip()
    if len(text) > limit:
        raise InvalidInstance(f"{keyword} is longer than {limit} characters")
    return text


def _integer(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInstance(f"{keyword} is not an integer") from None
    if not -(2**31) <= number < 2**31:
        raise InvalidInstance(f"{keyword} is out of range")
    return number


def _uid(ds: Dataset, keyword: str) -> str:
    value = str(ds.get(keyword) or "").strip()
    if not is_uid(value):
        raise InvalidInstance(f"{keyword} is missing or not a valid UID")
    return value


def _bulk_uri(path: AttributePath) -> str:
    """A BulkDataURI relative to the instance: `bulk/7FE00010`, `bulk/00081115/0/00091010`."""
    return f"bulk/{bulkdata_segment(path)}"


def read_instance(data: bytes) -> ReceivedInstance:
    """Parse and check a Part 10 instance; InvalidInstance for anything the archive cannot index."""
    with warnings.catch_warnings():
        # pydicom warns of values outside their VR; the archive keeps instances as sent.
        warnings.simplefilter("ignore")
        return _read(data)


def read_dataset(ds: Dataset, *, pixel_data_vr: str = "OB") -> ReceivedInstance:
    """Check a dataset whose Pixel Data is written apart (a clip streamed into its file).

    The dataset holds no Pixel Data; its stored metadata names one as bulk data, as
    `read_instance` would for the whole file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            received = _from_dataset(ds)
        except InvalidInstance:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
            raise InvalidInstance(f"not a readable dataset ({type(exc).__name__})") from None
    received.metadata["7FE00010"] = {"vr": pixel_data_vr, "BulkDataURI": "bulk/7FE00010"}
    return received


def _read(data: bytes) -> ReceivedInstance:
    try:
        return _from_dataset(pydicom.dcmread(io.BytesIO(data), force=False))
    except InvalidInstance:
        raise
    except InvalidDicomError:
        raise InvalidInstance("not a DICOM Part 10 instance") from None
    except Exception as exc:  # noqa: BLE001 - pydicom on hostile bytes raises many kinds
        raise InvalidInstance(f"not a readable DICOM instance ({type(exc).__name__})") from None


def _from_dataset(ds: Dataset) -> ReceivedInstance:
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID") or "")
    sop_class = _uid(ds, "SOPClassUID")
    sop_instance = _uid(ds, "SOPInstanceUID")
    meta_class = str(ds.file_meta.get("MediaStorageSOPClassUID") or sop_class)
    meta_instance = str(ds.file_meta.get("MediaStorageSOPInstanceUID") or sop_instance)
    if meta_class != sop_class:
        # Over DIMSE the meta information is the request's: sent as another SOP class.
        raise SopClassMismatch("the data set is of another SOP class than sent as")
    if meta_instance != sop_instance:
        raise InvalidInstance("the file meta information names another instance")
    if not is_uid(transfer_syntax):
        raise InvalidInstance("the transfer syntax is missing or not a valid UID")
    try:
        metadata = metadata_json(ds, bulkdata_uri=_bulk_uri, bulkdata_threshold=BULK_THRESHOLD)
    except DicomWireError:
        raise InvalidInstance("the data set cannot be written as DICOM JSON") from None
    return ReceivedInstance(
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        study_instance_uid=_uid(ds, "StudyInstanceUID"),
        series_instance_uid=_uid(ds, "SeriesInstanceUID"),
        transfer_syntax_uid=transfer_syntax,
        patient_id=_text(ds, "PatientID", 64),
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID", 64),
        patient_name=_text(ds, "PatientName", 324),
        patient_birth_date=_text(ds, "PatientBirthDate", 8),
        patient_sex=_text(ds, "PatientSex", 16),
        study_date=_text(ds, "StudyDate", 8),
        study_time=_text(ds, "StudyTime", 16),
        accession_number=_text(ds, "AccessionNumber", 16),
        study_id=_text(ds, "StudyID", 16),
        study_description=_text(ds, "StudyDescription", 64),
        referring_physician_name=_text(ds, "ReferringPhysicianName", 324),
        modality=_text(ds, "Modality", 16),
        series_number=_integer(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription", 64),
        body_part_examined=_text(ds, "BodyPartExamined", 16),
        instance_number=_integer(ds, "InstanceNumber"),
        metadata=metadata,
    )
