"""Photos and video from outside radiology (IHE WIC) as DICOM instances, pure.

A phone app or a medical camera sends, over JSON STOW-RS, a dataset with the patient, the body
site, a note and the acquisition time, and the image or clip as a bulk data part. This module
checks that metadata and completes it into a VL Photographic Image (PS3.3 §A.32.4) or a Video
Photographic Image (§A.32.7): the SOP class (another class than the one the pixels make is
refused), missing UIDs made (2.25, PS3.5 §B.2), Modality XC, the type 2 attributes present,
the Image Pixel module from the checked pixels (never from the sender), the acquisition time
from the metadata, else the photo's EXIF DateTimeOriginal or the clip's creation time.

- Body site: AnatomicRegionSequence items coded in SNOMED CT (`SCT`, a concept id of 6–18
  digits, a meaning); anything else is refused (C000).
  A clip must have one (PS3.3 §C.8.12.1, type 1C for the video classes); a photo may not.
- The note: ImageComments (LT, at most 10 240 characters).

`video_part10` writes the Part 10 file of a clip around the MP4 file, which stays unchanged:
the header (preamble, file meta, the dataset without pixel data) then Pixel Data (7FE0,0010),
OB of undefined length, an empty Basic Offset Table item, ONE fragment holding the MP4 file as
sent (with one zero byte of padding when its length is odd), and the sequence delimiter
(PS3.5 §A.4; the H.264 transfer syntaxes .102–.106 take one fragment, so a clip is at most
4 GiB − 2). `mp4_span` and `box_size` find those bytes again in a stored file for `rendered`
as video/mp4.

References: IHE ITI/PCC WIC (Web Image Capture), DICOM PS3.3 §A.32.4, §A.32.7, §C.8.12.1 (VL
Image), §C.7.6.3 (Image Pixel), §C.7.6.5/6 (Cine, Multi-frame); PS3.5 §8.2.1, §8.2.8, §A.4.
"""

from __future__ import annotations

import io
import re
import struct
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from onerecord.media.errors import InvalidInstance, SopClassMismatch
from onerecord.media.mp4 import H264_TRANSFER_SYNTAXES, Mp4Video
from onerecord.media.photo import JPEG_BASELINE, Photo

__all__ = [
    "VIDEO_CLASSES",
    "VIDEO_PHOTOGRAPHIC_IMAGE",
    "VL_PHOTOGRAPHIC_IMAGE",
    "Mp4Span",
    "box_size",
    "mp4_span",
    "photo_dataset",
    "video_dataset",
    "video_part10",
]

VL_PHOTOGRAPHIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.4"
VIDEO_PHOTOGRAPHIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
#: Video classes whose pixel data may be an H.264 clip (endoscopic, microscopic, photographic).
VIDEO_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",
        VIDEO_PHOTOGRAPHIC_IMAGE,
    }
)
_SNOMED_ID = re.compile(r"[1-9][0-9]{5,17}")
_MAX_NOTE = 10240
_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_PIXEL_HEADER = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
_MAX_FRAGMENT = 0xFFFFFFFE
_IMAGE_PIXEL = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "NumberOfFrames",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PixelData",
)


def _new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def _common(
    ds: Dataset, sop_class: str, allowed: frozenset[str], acquired: datetime | None
) -> None:
    """Check the sender's metadata and complete the modules every WIC instance needs."""
    given = str(ds.get("SOPClassUID", "") or "")
    if given and given not in allowed:
        raise SopClassMismatch(f"the pixel data makes a {sop_class}, not a {given[:64]}")
    ds.SOPClassUID = given or sop_class
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not str(ds.get(keyword, "") or ""):
            setattr(ds, keyword, _new_uid())
    for item in ds.get("AnatomicRegionSequence", []):
        code = str(item.get("CodeValue", ""))
        if (
            str(item.get("CodingSchemeDesignator", "")) != "SCT"
            or not _SNOMED_ID.fullmatch(code)
            or not str(item.get("CodeMeaning", "")).strip()
        ):
            raise InvalidInstance("the body site is coded in SNOMED CT (SCT, a concept id)")
    if len(str(ds.get("ImageComments", "") or "")) > _MAX_NOTE:
        raise InvalidInstance(f"the note (ImageComments) is over {_MAX_NOTE} characters")
    if not ds.get("AcquisitionDateTime") and acquired is not None:
        ds.AcquisitionDateTime = acquired.strftime("%Y%m%d%H%M%S")
    stamp = str(ds.get("AcquisitionDateTime", "") or "")
    if len(stamp) < 14:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")  # when it reached the archive
    when, at = stamp[:8], stamp[8:14]
    defaults: dict[str, object] = {
        "Modality": "XC",
        "SeriesNumber": 1,
        "InstanceNumber": 1,
        "StudyDate": when,
        "StudyTime": at,
        "ContentDate": when,
        "ContentTime": at,
        "ImageType": ["ORIGINAL", "PRIMARY"],
    }
    for keyword, value in defaults.items():
        if not ds.get(keyword):
            setattr(ds, keyword, value)
    for keyword in (  # type 2: present, empty when not known
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "Laterality",  # 2C: a paired body part's side, empty when the sender does not say
        "Manufacturer",
        "PatientOrientation",
        "AcquisitionContextSequence",
    ):
        if keyword not in ds:
            setattr(ds, keyword, [] if keyword == "AcquisitionContextSequence" else None)
    for keyword in _IMAGE_PIXEL:  # the sender's description of the pixels is not used
        if keyword in ds:
            delattr(ds, keyword)
    for tag in [t for t in ds.keys() if t > 0x7FE00010]:
        del ds[tag]  # nothing after Pixel Data (video_part10 appends it last)


def _file_meta(ds: Dataset, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta = meta


def photo_dataset(ds: Dataset, photo: Photo) -> Dataset:
    """The sender's dataset completed into a VL Photographic Image holding the checked photo."""
    _common(ds, VL_PHOTOGRAPHIC_IMAGE, frozenset({VL_PHOTOGRAPHIC_IMAGE}), photo.acquired)
    ds.SamplesPerPixel = photo.samples_per_pixel
    ds.PhotometricInterpretation = photo.photometric
    if photo.samples_per_pixel == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = photo.height
    ds.Columns = photo.width
    ds.BitsAllocated = photo.bits_allocated
    ds.BitsStored = photo.bits_allocated
    ds.HighBit = photo.bits_allocated - 1
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01" if photo.lossy else "00"
    if photo.lossy:
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    _file_meta(ds, photo.transfer_syntax)
    if photo.transfer_syntax == JPEG_BASELINE:
        ds.PixelData = encapsulate([photo.pixel_data])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = photo.pixel_data
        ds["PixelData"].VR = "OW" if photo.bits_allocated > 8 else "OB"
    return ds


def video_dataset(ds: Dataset, video: Mp4Video, transfer_syntax: str) -> Dataset:
    """The sender's dataset completed into a Video Photographic Image (no pixel data yet)."""
    if transfer_syntax not in H264_TRANSFER_SYNTAXES:
        raise ValueError("a clip is stored in an H.264 transfer syntax")
    if not ds.get("AnatomicRegionSequence"):
        # PS3.3 §C.8.12.1: type 1C, required for the video classes.
        raise InvalidInstance("a clip needs its body site (AnatomicRegionSequence, SNOMED CT)")
    created = video.created.replace(tzinfo=None) if video.created is not None else None
    _common(ds, VIDEO_PHOTOGRAPHIC_IMAGE, VIDEO_CLASSES, created)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows = video.height
    ds.Columns = video.width
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_14496_10"
    ds.NumberOfFrames = video.frames
    rate = video.frame_rate
    ds.FrameTime = f"{1000.0 / rate:.6g}"
    ds.CineRate = max(1, round(rate))
    ds.RecommendedDisplayFrameRate = max(1, round(rate))
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.ActualFrameDuration = max(1, round(1000.0 / rate))
    _file_meta(ds, transfer_syntax)
    return ds


def video_part10(ds: Dataset, mp4_size: int) -> tuple[bytes, bytes]:
    """The bytes before and after the MP4 file in the clip's Part 10 file (module docstring)."""
    if mp4_size > _MAX_FRAGMENT - 1:
        raise InvalidInstance("a clip is at most 4 GiB − 2 bytes (one fragment)")
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    padded = mp4_size + (mp4_size & 1)
    head = out.getvalue() + _PIXEL_HEADER + _ITEM + b"\0\0\0\0" + _ITEM + struct.pack("<I", padded)
    return head, b"\0" * (mp4_size & 1) + _SEQUENCE_END


@dataclass(frozen=True, slots=True)
class Mp4Span:
    """Where the MP4 file is in a stored Part 10 file: its first byte and the fragment's length
    (the file's length, or one more when it was padded)."""

    offset: int
    length: int


def mp4_span(head: bytes) -> Mp4Span | None:
    """The fragment holding an MP4 file in a stored clip, from the file's first bytes, or None.

    `head` is the start of the file (enough for the header and the Pixel Data item headers).
    The fragment is an MP4 when it is the first after the offset table and begins with an
    `ftyp` box; the sum of its top-level boxes (`box_size`) is then its exact length.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp = io.BytesIO(head)
            pydicom.dcmread(fp, stop_before_pixels=True)
            at = fp.tell()
    except Exception:  # noqa: BLE001 - not the archive's clip layout
        return None
    view = head[at : at + 20]
    if len(view) < 20 or view[:12] != _PIXEL_HEADER or view[12:16] != _ITEM:
        return None
    first = at + 20 + struct.unpack("<I", view[16:20])[0]
    item = head[first : first + 16]
    if len(item) < 16 or item[:4] != _ITEM or item[12:16] != b"ftyp":
        return None
    return Mp4Span(first + 8, struct.unpack("<I", item[4:8])[0])


def box_size(header: bytes) -> int:
    """The size of the box whose first 16 bytes are `header` (0 when it cannot be one)."""
    if len(header) < 8:
        return 0
    size = struct.unpack(">I", header[:4])[0]
    if size == 1:
        size = struct.unpack(">Q", header[8:16])[0] if len(header) >= 16 else 0
    return size if size >= 8 else 0
