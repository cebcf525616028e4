"""An imaging study as the portals show it: the manifest (a FHIR ImagingStudy) and its pixels.

A document whose formatCode is `urn:ihe:rad:MADO` is not a document to read but a study to
look at (MEDIA-CONTRACT §1): its Binary is a FHIR R4 ImagingStudy naming the study, its series
and their instances. `parse_imaging_study` reads it, checking every value that comes from the
region (types, UIDs, lengths, counts) before anything uses it. The pixels come from the hub's
DICOMweb route (§3) through the portal's proxy: `parse_viewer_request` admits only what the
viewer needs (thumbnails, rendered images or video, metadata) and only of the study, series and
instances that this manifest names, with a checked `window` and `Range`; anything else is the
caller's 400 or 404 and never reaches the hub.

References: HL7 FHIR R4 ImagingStudy; IHE RAD MADO; DICOM PS3.18 §8.3.5.1.3 (`window`),
§10.4.1.1.3 (thumbnail), §8.7.3 (rendered media types); PS3.5 §9.1 (UIDs); RFC 9110 §14.2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from onerecord.dicom import is_uid

__all__ = [
    "MADO_FORMAT",
    "MAX_FRAMES",
    "MULTIFRAME_SOP_CLASSES",
    "MAX_INSTANCES",
    "MAX_SERIES",
    "PHOTO_MODALITIES",
    "VIDEO_SOP_CLASSES",
    "WINDOW_MODALITIES",
    "WINDOW_PRESETS",
    "ImagingInstance",
    "ImagingManifest",
    "ImagingSeries",
    "InvalidManifest",
    "ViewerRequest",
    "ViewerRequestRefused",
    "number_of_frames",
    "parse_imaging_study",
    "parse_viewer_request",
]

MADO_FORMAT = "urn:ihe:rad:MADO"
"""The formatCode of an imaging manifest (IHE formatcode CodeSystem)."""
MAX_SERIES = 200
MAX_INSTANCES = 5000
"""Per study, in all series together: a CT of 5,000 slices is large; more is not a manifest."""
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_TEXT = 256
_DCM = "http://dicom.nema.org/resources/ontology/DCM"

VIDEO_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
    }
)
MULTIFRAME_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image
        "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
        "1.2.840.10008.5.1.4.1.1.20",  # Nuclear Medicine Image
    }
)
"""Images whose frames are what one scrolls through (NumberOfFrames from the metadata)."""
MAX_FRAMES = 10_000
PHOTO_MODALITIES = frozenset({"XC", "GM", "ES"})
"""External camera, general microscopy, endoscopy: photographs a person compares by date."""
WINDOW_MODALITIES = frozenset({"CT", "MR"})
WINDOW_PRESETS: Mapping[str, tuple[int, int]] = {
    "blotvev": (40, 400),
    "lunge": (-600, 1500),
    "skjelett": (400, 1800),
}
"""Window center and width (PS3.3 C.11.2.1.2) of the presets: soft tissue, lung, bone."""
_WINDOW_FUNCTIONS = frozenset({"linear", "linear-exact", "sigmoid"})


class InvalidManifest(ValueError):
    """The region's ImagingStudy is not one the viewer can show (shape, UIDs, sizes)."""


class ViewerRequestRefused(ValueError):
    """A proxy request the viewer does not make, or for what the manifest does not name.

    `status` is 400 for a malformed request, 404 for a study, series or instance not named.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ImagingInstance:
    uid: str
    sop_class: str
    number: int | None

    @property
    def is_video(self) -> bool:
        return self.sop_class in VIDEO_SOP_CLASSES

    @property
    def is_multiframe(self) -> bool:
        return self.sop_class in MULTIFRAME_SOP_CLASSES


@dataclass(frozen=True, slots=True)
class ImagingSeries:
    uid: str
    modality: str
    number: int | None
    description: str
    body_site: str
    body_site_code: str
    laterality: str
    laterality_code: str
    instances: tuple[ImagingInstance, ...]

    @property
    def windowed(self) -> bool:
        """CT and MR: grey values the window presets mean something for."""
        return self.modality in WINDOW_MODALITIES

    @property
    def is_video(self) -> bool:
        return bool(self.instances) and all(i.is_video for i in self.instances)

    @property
    def is_photo(self) -> bool:
        return self.modality in PHOTO_MODALITIES and not self.is_video


@dataclass(frozen=True, slots=True)
class ImagingManifest:
    """What the viewer shows of one study, as its region's manifest names it."""

    study_uid: str
    started: str
    description: str
    series: tuple[ImagingSeries, ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.modality for s in self.series if s.modality))

    @property
    def body_sites(self) -> tuple[tuple[str, str], ...]:
        """Each body site once: (SNOMED code or "", the region's text)."""
        return tuple(
            dict.fromkeys((s.body_site_code, s.body_site) for s in self.series if s.body_site)
        )

    @property
    def is_photo(self) -> bool:
        return bool(self.series) and all(s.is_photo for s in self.series)

    @property
    def site_key(self) -> tuple[str, str] | None:
        """The body site (and side) of a photo study, to find its pictures at other dates."""
        sites = {(s.body_site_code or s.body_site, s.laterality) for s in self.series}
        if len(sites) != 1:
            return None
        (site,) = sites
        return site if site[0] else None

    def find_series(self, uid: str) -> ImagingSeries | None:
        return next((s for s in self.series if s.uid == uid), None)


def _text(value: Any, *, limit: int = _MAX_TEXT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidManifest("a text is not a string")
    if len(value) > limit or any(ord(c) < 32 for c in value):
        raise InvalidManifest("a text is too long or holds control characters")
    return value.strip()


def _uid(value: Any) -> str:
    text = value.removeprefix("urn:oid:") if isinstance(value, str) else None
    if text is None or not is_uid(text):
        raise InvalidManifest("not a DICOM UID")
    return text


def _number(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise InvalidManifest("a number is not a non-negative integer")
    return value


def _object(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidManifest("an element is not an object")
    return value


def _list(value: Any, limit: int) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidManifest("a list is not a list or too long")
    return value


def _coding(value: Any) -> tuple[str, str]:
    """A Coding's code and display ("" when absent); a CodeableConcept's first coding."""
    data = _object(value)
    if "coding" in data:
        codings = _list(data.get("coding"), 16)
        data = _object(codings[0]) if codings else {}
        text = _text(_object(value).get("text"))
    else:
        text = ""
    return _text(data.get("code"), limit=64), _text(data.get("display")) or text


def _study_uid(study: Mapping[str, Any]) -> str:
    for identifier in _list(study.get("identifier"), 16):
        item = _object(identifier)
        if item.get("system") == "urn:dicom:uid":
            return _uid(item.get("value"))
    raise InvalidManifest("no identifier urn:dicom:uid")


def _series(item: Mapping[str, Any]) -> ImagingSeries:
    modality, _ = _coding(item.get("modality"))
    site_code, site = _coding(item.get("bodySite"))
    side_code, side = _coding(item.get("laterality"))
    instances = []
    for raw in _list(item.get("instance"), MAX_INSTANCES):
        instance = _object(raw)
        sop_class, _ = _coding(instance.get("sopClass"))
        instances.append(
            ImagingInstance(
                uid=_uid(instance.get("uid")),
                sop_class=_uid(sop_class) if sop_class else "",
                number=_number(instance.get("number")),
            )
        )
    if not re.fullmatch(r"[A-Z0-9]{0,16}", modality):
        raise InvalidManifest("a modality is not a DICOM modality code")
    # Ordered as the series runs (InstanceNumber), those without one last, as listed.
    instances.sort(key=lambda i: (i.number is None, i.number or 0))
    return ImagingSeries(
        uid=_uid(item.get("uid")),
        modality=modality,
        number=_number(item.get("number")),
        description=_text(item.get("description")),
        body_site=site or site_code,
        body_site_code=site_code,
        laterality=side or side_code,
        laterality_code=side_code,
        instances=tuple(instances),
    )


def parse_imaging_study(content: bytes) -> ImagingManifest:
    """Read a manifest's ImagingStudy (FHIR R4 JSON), or raise InvalidManifest."""
    if len(content) > MAX_MANIFEST_BYTES:
        raise InvalidManifest("the manifest is too large")
    try:
        study = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise InvalidManifest("the manifest is not JSON") from None
    if not isinstance(study, dict) or study.get("resourceType") != "ImagingStudy":
        raise InvalidManifest("the manifest is not an ImagingStudy")
    series = tuple(_series(_object(s)) for s in _list(study.get("series"), MAX_SERIES))
    if sum(len(s.instances) for s in series) > MAX_INSTANCES:
        raise InvalidManifest("the manifest names too many instances")
    if len({s.uid for s in series}) != len(series):
        raise InvalidManifest("a series is named twice")
    started = _text(study.get("started"), limit=40)
    if started and not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?(T[0-9:.+\-Z]{2,30})?", started):
        raise InvalidManifest("started is not a FHIR dateTime")
    return ImagingManifest(
        study_uid=_study_uid(study),
        started=started[:10],
        description=_text(study.get("description")),
        series=series,
    )


# --- the proxy ---------------------------------------------------------------------------------

_IMAGE_ACCEPT = "image/jpeg, image/png;q=0.9"
_GREY_ACCEPT = "image/png, image/jpeg;q=0.9"
_MAX_RANGE = 64
_RANGE = re.compile(r"bytes=(\d{1,15})-(\d{0,15})")
_NUMBER = re.compile(r"-?\d{1,6}(\.\d{1,4})?")
MEDIA_TYPES = {
    "thumbnail": frozenset({"image/jpeg", "image/png"}),
    "rendered": frozenset({"image/jpeg", "image/png", "video/mp4"}),
    "metadata": frozenset({"application/dicom+json"}),
}


@dataclass(frozen=True, slots=True)
class ViewerRequest:
    """A checked proxy request: the path under the hub's DICOMweb root and what to send."""

    relative: str
    """`studies/{uid}/…`, rebuilt from the checked segments."""
    kind: str
    """thumbnail, rendered or metadata (MEDIA_TYPES says what may come back)."""
    query: tuple[tuple[str, str], ...]
    accept: str
    range: str | None


def _window(value: str) -> str:
    """PS3.18 §8.3.5.1.3: `center,width,function`; width > 0; function one of three."""
    parts = value.split(",")
    if len(parts) not in (2, 3) or len(value) > 40:
        raise ViewerRequestRefused("window: center,width[,function]")
    center, width = parts[0], parts[1]
    function = parts[2] if len(parts) == 3 else "linear"
    if not (_NUMBER.fullmatch(center) and _NUMBER.fullmatch(width)) or float(width) <= 0:
        raise ViewerRequestRefused("window: center and width are numbers, width > 0")
    if function not in _WINDOW_FUNCTIONS:
        raise ViewerRequestRefused("window: function is linear, linear-exact or sigmoid")
    return f"{center},{width},{function}"


def _checked_range(value: str | None) -> str | None:
    if value is None:
        return None
    match = _RANGE.fullmatch(value) if len(value) <= _MAX_RANGE else None
    if match is None or (match.group(2) and int(match.group(2)) < int(match.group(1))):
        raise ViewerRequestRefused("Range: one range of bytes, first-last or first-")
    return value


def parse_viewer_request(
    manifest: ImagingManifest,
    path: str,
    params: Sequence[tuple[str, str]],
    *,
    range_header: str | None = None,
) -> ViewerRequest:
    """Admit a proxy request for `manifest`'s own study, or raise ViewerRequestRefused.

    Paths (below the DICOMweb root): `studies/{s}/thumbnail`, `studies/{s}/metadata`,
    `…/series/{r}/thumbnail|metadata`, `…/series/{r}/instances/{i}/thumbnail|rendered|metadata`;
    queries: `window` on a rendered grey image (once), nothing else.
    """
    if len(path) > 600:
        raise ViewerRequestRefused("path too long")
    segments = path.split("/")
    if len(segments) < 3 or segments[0] != "studies":
        raise ViewerRequestRefused("not a study path", 404)
    if not is_uid(segments[1]):
        raise ViewerRequestRefused("study: not a UID")
    if segments[1] != manifest.study_uid:
        raise ViewerRequestRefused("study: not this page's study", 404)
    rest = segments[2:]
    series = instance = None
    if rest[0] == "series" and len(rest) >= 3:
        if not is_uid(rest[1]):
            raise ViewerRequestRefused("series: not a UID")
        series = manifest.find_series(rest[1])
        if series is None:
            raise ViewerRequestRefused("series: not in this study's manifest", 404)
        rest = rest[2:]
        if rest[0] == "instances" and len(rest) >= 3:
            if not is_uid(rest[1]):
                raise ViewerRequestRefused("instance: not a UID")
            instance = next((i for i in series.instances if i.uid == rest[1]), None)
            if instance is None:
                raise ViewerRequestRefused("instance: not in this series", 404)
            rest = rest[2:]
    if (
        instance is not None
        and len(rest) == 3
        and rest[0] == "frames"
        and rest[2] == "rendered"
        and instance.is_multiframe
    ):
        if not (rest[1].isascii() and rest[1].isdigit() and 1 <= int(rest[1]) <= MAX_FRAMES):
            raise ViewerRequestRefused("frames: one frame number, 1 to 10000")
        if rest[1] != str(int(rest[1])):
            raise ViewerRequestRefused("frames: a plain number")
        rest = rest[2:]
    if len(rest) != 1 or rest[0] not in MEDIA_TYPES:
        raise ViewerRequestRefused("not a resource the viewer reads", 404)
    kind = rest[0]
    if kind == "rendered" and instance is None:
        raise ViewerRequestRefused("rendered: per instance", 404)
    query: list[tuple[str, str]] = []
    for name, value in params:
        if name != "window" or kind != "rendered" or query:
            raise ViewerRequestRefused(f"query parameter {name[:32]!r} is not taken here")
        assert series is not None and instance is not None
        if instance.is_video:
            raise ViewerRequestRefused("window: not on a video")
        query.append(("window", _window(value)))
    if kind == "metadata":
        accept = "application/dicom+json"
    elif instance is not None and instance.is_video and kind == "rendered":
        accept = "video/mp4"
    elif series is not None and (series.windowed or series.modality in {"CR", "DX", "MG"}):
        accept = _GREY_ACCEPT
    else:
        accept = _IMAGE_ACCEPT
    # Only a video is read in ranges; a range on an image would cut it.
    ranged = _checked_range(range_header) if accept == "video/mp4" else None
    return ViewerRequest(
        relative="/".join(segments),
        kind=kind,
        query=tuple(query),
        accept=accept,
        range=ranged,
    )


def number_of_frames(metadata: bytes) -> int:
    """NumberOfFrames (0028,0008) of the first instance of a DICOM JSON answer; 1 if absent.

    Read from the hub's answer (PS3.18 §F.2): an IS value as a number or a string; anything
    out of shape or range counts as one frame, so the viewer shows the first and no more.
    """
    try:
        items = orjson.loads(metadata) if len(metadata) <= 1024 * 1024 else None
    except orjson.JSONDecodeError:
        return 1
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        return 1
    element = items[0].get("00280008")
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or len(values) != 1:
        return 1
    value = values[0]
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FRAMES:
        return 1
    return value
