"""A STOW-RS request of DICOM JSON metadata and bulk data parts, as datasets.

Used with `type="application/dicom+json"` (PS3.18 §10.5.1): one or more JSON parts, each an
array of datasets, and bulk data parts named by their Content-Location, which the datasets'
BulkDataURIs refer to. Pixel data sent as a compressed image part (image/jpeg, image/jls,
image/jp2, image/jpx, image/dicom-rle) is encapsulated (PS3.5 §A.4) with its transfer syntax
from the part's `transfer-syntax` parameter, else the media type's default. Pixel data the
archive must look at first — video (its profile and level decide the transfer syntax) and PNG
(no DICOM transfer syntax; decoded to native pixels) — is handed over as
`JsonInstance.pixel_data` with its media type and its Content-Location, the dataset holding no
Pixel Data; so is a JPEG of a VL Photographic Image or of a dataset naming no SOP class (a
photo from outside radiology, IHE WIC: the archive strips its EXIF). Uncompressed
pixel data comes as application/octet-stream. A missing metadata part, a reference to no
part, two parts with one Content-Location or a disagreeing TransferSyntaxUID is 400; a bulk
media type we do not take is 415.

References: DICOM PS3.18 §10.5.1 (STOW-RS request payload: metadata and bulk data),
§8.7.3 (media types and their transfer syntaxes), §F.2.6 (BulkDataURI); PS3.5
§A.4 (encapsulation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from onerecord.dicom.attributes import is_uid
from onerecord.dicom.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from onerecord.dicom.json_model import JsonLimits, dataset_from_json
from onerecord.dicom.media_type import MediaType
from onerecord.dicom.multipart import Part

__all__ = ["DEFAULT_PIXEL_TRANSFER_SYNTAX", "JsonInstance", "read_json_instances"]

#: The transfer syntax a compressed image part stands for when it names none (PS3.18 §8.7.3).
DEFAULT_PIXEL_TRANSFER_SYNTAX: Mapping[str, str] = {
    "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
}
#: Pixel data the archive checks or decodes itself before it is DICOM.
_FOR_THE_ARCHIVE = frozenset({"video/mp4", "video/mpeg2", "video/h265", "image/png"})
#: JPEG the archive checks itself when the dataset is a photo (or names no class: WIC).
_PHOTO_CLASSES = frozenset({"", "1.2.840.10008.5.1.4.1.1.77.1.4"})
_OCTETS = "application/octet-stream"
_PIXEL_DATA = "7FE00010"


@dataclass(frozen=True, slots=True)
class JsonInstance:
    """One instance of a JSON STOW-RS request.

    `pixel_media_type`: the media type of a compressed pixel data part; `pixel_data`: its bytes
    when the archive must handle them (video, PNG, a photo's JPEG), else None (already in the
    dataset); `pixel_location`: that part's Content-Location (a spooled clip is found by it).
    """

    dataset: Dataset
    pixel_media_type: str | None = None
    pixel_data: bytes | None = None
    pixel_location: str | None = None


@dataclass(frozen=True, slots=True)
class _Bulk:
    media_type: MediaType | None
    body: bytes
    location: str


def read_json_instances(
    parts: Sequence[Part],
    *,
    limits: JsonLimits = JsonLimits(),  # noqa: B008 - frozen, shared safely
) -> list[JsonInstance]:
    """Turn the parts of an application/dicom+json STOW-RS request into instances, or raise."""
    metadata: list[Part] = []
    bulk: dict[str, _Bulk] = {}
    for part in parts:
        media_type = part.content_type
        if media_type is not None and media_type.essence in (
            "application/dicom+json",
            "application/json",
        ):
            metadata.append(part)
            continue
        location = part.content_location
        if not location:
            raise InvalidRequest("a bulk data part needs a Content-Location")
        if location in bulk:
            raise InvalidRequest("two bulk data parts share one Content-Location")
        bulk[location] = _Bulk(media_type, part.body, location)
    if not metadata:
        raise InvalidRequest("no application/dicom+json metadata part")
    instances: list[JsonInstance] = []
    for part in metadata:
        if len(part.body) > limits.max_bytes:
            raise PayloadTooLarge(f"DICOM JSON over {limits.max_bytes} bytes")
        try:
            doc = orjson.loads(part.body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("DICOM JSON: not valid JSON") from None
        if not isinstance(doc, list) or not doc:
            raise InvalidRequest("DICOM JSON: expected an array of one or more datasets")
        if len(instances) + len(doc) > limits.max_datasets:
            raise PayloadTooLarge(f"DICOM JSON: more than {limits.max_datasets} datasets")
        instances += [_instance(obj, bulk, limits) for obj in doc]
    return instances


def _instance(obj: object, bulk: Mapping[str, _Bulk], limits: JsonLimits) -> JsonInstance:
    pixel = _pixel_part(obj, bulk)

    def resolve(uri: str) -> bytes | None:
        found = bulk.get(uri)
        if found is None:
            return None
        if found is pixel and _essence(found) != _OCTETS:
            return b""  # placed below, encapsulated; keeps the OW/OB length rule out of the way
        if _essence(found) not in (_OCTETS, None):
            raise UnsupportedMediaType(
                "bulk data other than pixel data is application/octet-stream"
            )
        return found.body

    ds = dataset_from_json(obj, bulkdata=resolve, limits=limits)
    if pixel is None or _essence(pixel) in (_OCTETS, None):
        return JsonInstance(ds)
    media_type = _essence(pixel) or _OCTETS
    photo = media_type == "image/jpeg" and str(ds.get("SOPClassUID", "")) in _PHOTO_CLASSES
    if media_type in _FOR_THE_ARCHIVE or photo:
        del ds[0x7FE00010]
        return JsonInstance(
            ds, pixel_media_type=media_type, pixel_data=pixel.body, pixel_location=pixel.location
        )
    if media_type not in DEFAULT_PIXEL_TRANSFER_SYNTAX:
        raise UnsupportedMediaType(f"pixel data as {media_type[:64]} is not taken")
    given = pixel.media_type.param("transfer-syntax") if pixel.media_type else None
    if given is not None and not is_uid(given):
        raise InvalidRequest("bulk data part: transfer-syntax is not a UID")
    syntax = given or DEFAULT_PIXEL_TRANSFER_SYNTAX[media_type]
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    stated = meta.get("TransferSyntaxUID")
    if stated is not None and str(stated) != syntax:
        raise InvalidRequest("TransferSyntaxUID disagrees with the pixel data part")
    meta.TransferSyntaxUID = UID(syntax)
    ds[0x7FE00010].VR = "OB"
    ds.PixelData = encapsulate([pixel.body])
    return JsonInstance(ds, pixel_media_type=media_type)


def _pixel_part(obj: object, bulk: Mapping[str, _Bulk]) -> _Bulk | None:
    if not isinstance(obj, dict):
        return None
    member = obj.get(_PIXEL_DATA)
    if not isinstance(member, dict):
        return None
    uri = member.get("BulkDataURI")
    return bulk.get(uri) if isinstance(uri, str) else None


def _essence(found: _Bulk) -> str | None:
    return None if found.media_type is None else found.media_type.essence
