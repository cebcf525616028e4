"""DICOMweb resource paths: which study, series, instance, frames or bulk data a URL names.

The media archive's routes and the hub's retrieve routing (which region holds this study?) read
the same path the same way. A path is taken relative to the service root (`studies/…`, `series`,
`instances`); UIDs are checked (400), frame lists parsed (400), and a shape that is no DICOMweb
resource is 404. Bulk data lives at `…/instances/{uid}/bulkdata/{attribute path}`, where the
attribute path is `7FE00010` at the top and `00081115/0/00091010` inside sequence items: the same
`AttributePath` `json_model`'s `bulkdata_uri` callback receives, so `bulkdata_segment` makes the
URI and `parse_dicomweb_path` reads it back.

References: DICOM PS3.18 §10.4.1 (Retrieve transaction resources: study, series, instance,
metadata, rendered, thumbnail, frames, bulkdata), §10.5.1 (Store: studies, studies/{study}),
§10.6.1 (Search: studies, series, instances, at each level of the path), §F.2.6 (BulkDataURI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from onerecord.dicom.attributes import is_uid, tag_hex
from onerecord.dicom.errors import InvalidRequest, NotFound
from onerecord.dicom.json_model import AttributePath
from onerecord.dicom.qido import QidoLevel
from onerecord.dicom.wado import parse_frame_list

__all__ = ["DicomWebPath", "DicomWebTarget", "bulkdata_segment", "parse_dicomweb_path"]

_MAX_PATH = 2048
_HEX_TAG = re.compile(r"[0-9A-F]{8}")
_INDEX = re.compile(r"0|[1-9][0-9]{0,5}")
_MAX_BULK_DEPTH = 12


class DicomWebTarget(StrEnum):
    """What a path asks for."""

    SEARCH = "search"
    RETRIEVE = "retrieve"
    METADATA = "metadata"
    RENDERED = "rendered"
    THUMBNAIL = "thumbnail"
    FRAMES = "frames"
    BULKDATA = "bulkdata"


@dataclass(frozen=True, slots=True)
class DicomWebPath:
    """A parsed DICOMweb path.

    `level`: for SEARCH the level searched; otherwise the level of the resource named (a study,
    a series, an instance). `frames` for frame resources; `bulkdata` the attribute path.
    """

    target: DicomWebTarget
    level: QidoLevel
    study_uid: str | None = None
    series_uid: str | None = None
    instance_uid: str | None = None
    frames: tuple[int, ...] = ()
    bulkdata: AttributePath = ()


def bulkdata_segment(path: AttributePath) -> str:
    """The URL segment of a bulk data attribute path: `7FE00010`, `00081115/0/00091010`."""
    return "/".join(tag_hex(p) if i % 2 == 0 else str(p) for i, p in enumerate(path))


def parse_dicomweb_path(path: str) -> DicomWebPath:
    """Read a path relative to the DICOMweb root, or raise 400 (bad UID, frames) or 404."""
    if len(path) > _MAX_PATH:
        raise InvalidRequest("path: too long")
    segments = path.strip("/").split("/")
    head = segments[0]
    if head in ("series", "instances") and len(segments) == 1:
        level = QidoLevel.SERIES if head == "series" else QidoLevel.INSTANCE
        return DicomWebPath(DicomWebTarget.SEARCH, level)
    if head != "studies":
        raise NotFound("path: not a DICOMweb resource")
    if len(segments) == 1:
        return DicomWebPath(DicomWebTarget.SEARCH, QidoLevel.STUDY)
    study = _uid(segments[1], "StudyInstanceUID")
    rest = segments[2:]
    if not rest:
        return DicomWebPath(DicomWebTarget.RETRIEVE, QidoLevel.STUDY, study)
    if rest == ["series"]:
        return DicomWebPath(DicomWebTarget.SEARCH, QidoLevel.SERIES, study)
    if rest == ["instances"]:
        return DicomWebPath(DicomWebTarget.SEARCH, QidoLevel.INSTANCE, study)
    if rest[0] != "series":
        return _view(rest, QidoLevel.STUDY, study, None, None)
    if len(rest) < 2:
        raise NotFound("path: not a DICOMweb resource")
    series = _uid(rest[1], "SeriesInstanceUID")
    rest = rest[2:]
    if not rest:
        return DicomWebPath(DicomWebTarget.RETRIEVE, QidoLevel.SERIES, study, series)
    if rest == ["instances"]:
        return DicomWebPath(DicomWebTarget.SEARCH, QidoLevel.INSTANCE, study, series)
    if rest[0] != "instances":
        return _view(rest, QidoLevel.SERIES, study, series, None)
    if len(rest) < 2:
        raise NotFound("path: not a DICOMweb resource")
    instance = _uid(rest[1], "SOPInstanceUID")
    rest = rest[2:]
    if not rest:
        return DicomWebPath(DicomWebTarget.RETRIEVE, QidoLevel.INSTANCE, study, series, instance)
    if rest[0] == "frames" and len(rest) >= 2:
        frames = parse_frame_list(rest[1])
        tail = rest[2:]
        targets = {
            (): DicomWebTarget.FRAMES,
            ("rendered",): DicomWebTarget.RENDERED,
            ("thumbnail",): DicomWebTarget.THUMBNAIL,
        }
        target = targets.get(tuple(tail))
        if target is None:
            raise NotFound("path: not a DICOMweb resource")
        return DicomWebPath(target, QidoLevel.INSTANCE, study, series, instance, frames)
    if rest[0] == "bulkdata" and len(rest) >= 2:
        attribute_path = _bulk(rest[1:])
        return DicomWebPath(
            DicomWebTarget.BULKDATA,
            QidoLevel.INSTANCE,
            study,
            series,
            instance,
            bulkdata=attribute_path,
        )
    return _view(rest, QidoLevel.INSTANCE, study, series, instance)


def _view(
    rest: list[str],
    level: QidoLevel,
    study: str,
    series: str | None,
    instance: str | None,
) -> DicomWebPath:
    views = {
        "metadata": DicomWebTarget.METADATA,
        "rendered": DicomWebTarget.RENDERED,
        "thumbnail": DicomWebTarget.THUMBNAIL,
    }
    if len(rest) != 1 or rest[0] not in views:
        raise NotFound("path: not a DICOMweb resource")
    return DicomWebPath(views[rest[0]], level, study, series, instance)


def _uid(segment: str, name: str) -> str:
    if not is_uid(segment):
        raise InvalidRequest(f"path: {name} is not a valid UID")
    return segment


def _bulk(segments: list[str]) -> AttributePath:
    if len(segments) % 2 == 0 or len(segments) > 2 * _MAX_BULK_DEPTH + 1:
        raise NotFound("path: not a bulk data attribute path")
    out: list[int] = []
    for i, segment in enumerate(segments):
        pattern = _HEX_TAG if i % 2 == 0 else _INDEX
        if not pattern.fullmatch(segment):
            raise NotFound("path: not a bulk data attribute path")
        out.append(int(segment, 16) if i % 2 == 0 else int(segment))
    return tuple(out)
