"""The STOW-RS answer: which instances were stored, which failed and why, and its status.

Each stored instance is an item of ReferencedSOPSequence (class, instance, its RetrieveURL, and a
WarningReason when the archive changed or dropped something); each failed one an item of
FailedSOPSequence with its FailureReason. The HTTP status follows from the two: 200 when every
instance was stored without a warning, 202 when some were stored and some failed or carry a
warning, 409 when none was stored. The body is DICOM JSON (`application/dicom+json`).

References: DICOM PS3.18 §10.5.3 (STOW-RS response: status codes, Table 10.5.3-1 Store
Instances Response Module attributes), PS3.4 Annex B.2.3 (storage status codes A7xx, A9xx,
Cxxx, B000, B006, B007) and §C.14.1.1 (Failure Reason 0110, 0119, 0122, 0124).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from onerecord.dicom.json_model import dataset_to_json, render_dicom_json

__all__ = [
    "FailedInstance",
    "FailureReason",
    "StoreResponse",
    "StoredInstance",
    "WarningReason",
]


class FailureReason(IntEnum):
    """Why an instance was not stored (Failure Reason, 0008,1197)."""

    PROCESSING_FAILURE = 0x0110
    CLASS_INSTANCE_CONFLICT = 0x0119
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    NOT_AUTHORIZED = 0x0124
    OUT_OF_RESOURCES = 0xA700
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000


class WarningReason(IntEnum):
    """What the archive changed in a stored instance (Warning Reason, 0008,1196)."""

    COERCION_OF_DATA_ELEMENTS = 0xB000
    ELEMENTS_DISCARDED = 0xB006
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xB007


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """An instance the archive stored, where to retrieve it, and any warning."""

    sop_class_uid: str
    sop_instance_uid: str
    retrieve_url: str
    warning: WarningReason | None = None


@dataclass(frozen=True, slots=True)
class FailedInstance:
    """An instance the archive did not store; its UIDs are empty when they could not be read."""

    sop_class_uid: str
    sop_instance_uid: str
    reason: FailureReason


@dataclass(frozen=True, slots=True)
class StoreResponse:
    """The outcome of one STOW-RS request."""

    stored: tuple[StoredInstance, ...] = ()
    failed: tuple[FailedInstance, ...] = ()
    retrieve_url: str | None = None
    #: Why instances failed, in words (the edge sends them as `Warning` headers, not the body).
    messages: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        """200 all stored cleanly, 202 stored with failures or warnings, 409 none stored."""
        if not self.stored:
            return 409
        if self.failed or any(s.warning is not None for s in self.stored):
            return 202
        return 200

    def to_dataset(self) -> Dataset:
        """The Store Instances Response Module as a Dataset (PS3.18 Table 10.5.3-1)."""
        ds = Dataset()
        if self.retrieve_url is not None:
            ds.RetrieveURL = self.retrieve_url
        if self.failed:
            ds.FailedSOPSequence = Sequence([_failed_item(f) for f in self.failed])
        if self.stored:
            ds.ReferencedSOPSequence = Sequence([_stored_item(s) for s in self.stored])
        return ds

    def to_json(self) -> dict[str, Any]:
        """The answer as a DICOM JSON object."""
        return dataset_to_json(self.to_dataset())

    def render(self) -> bytes:
        """The answer as an `application/dicom+json` body."""
        return render_dicom_json(self.to_json())


def _failed_item(failed: FailedInstance) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = failed.sop_class_uid
    item.ReferencedSOPInstanceUID = failed.sop_instance_uid
    item.FailureReason = int(failed.reason)
    return item


def _stored_item(stored: StoredInstance) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = stored.sop_class_uid
    item.ReferencedSOPInstanceUID = stored.sop_instance_uid
    item.RetrieveURL = stored.retrieve_url
    if stored.warning is not None:
        item.WarningReason = int(stored.warning)
    return item
