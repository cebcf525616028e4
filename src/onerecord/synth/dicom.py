"""Synthetic DICOM studies for one synthetic patient: CT, CR, ultrasound cine, skin photographs.

Every instance is built from the modules its IOD requires (PS3.3 Annex A): Patient, General
Study, General Series, General Equipment, General Image, Image Pixel, SOP Common, and the
modality's own (CT Image A.3, CR Image A.2, US Multi-frame Image A.7 with Cine and Multi-frame,
VL Photographic Image A.32.4 with Acquisition Context). UIDs are 2.25 UUID-derived
(PS3.5 B.2), drawn from the caller's seeded generator, so the same seed gives the same files.
Pixels are drawn in pure Python (no numpy): a CT phantom (a body ellipse with an organ that
moves from slice to slice), a chest radiograph, a beating "heart" for the cine, and a skin lesion
photographed at two dates, compressed by Pillow to JPEG baseline and encapsulated in the JPEG
Baseline (Process 1) transfer syntax (PS3.5 8.2.1, A.4.1). No GPL codec is involved.

A short wound clip is a Video Photographic Image (A.32.7) in the MPEG-4 AVC/H.264 High Profile
/ Level 4.1 transfer syntax (PS3.5 8.2.8), encoded by `synth/h264.py` in pure Python (every
picture I_PCM: lossless, large, and no GPL encoder such as x264); `wound_clip_mp4` gives the
same clip as an MP4 file (`synth/mp4.py`), what a phone sends over STOW-RS (IHE WIC).

Only synthetic identity numbers (month + 80) are accepted (`ensure_synthetic`).
"""

from __future__ import annotations

import io
import math
import random
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from onerecord.domain import NationalIdentityNumber
from onerecord.synth.h264 import YuvFrame, encode_pcm_stream
from onerecord.synth.mp4 import mux_h264
from onerecord.synth.numbers import ensure_synthetic

__all__ = [
    "CR_IMAGE_STORAGE",
    "CT_IMAGE_STORAGE",
    "US_MULTIFRAME_IMAGE_STORAGE",
    "VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE",
    "VL_PHOTOGRAPHIC_IMAGE_STORAGE",
    "DicomPatient",
    "SynthStudy",
    "cr_study",
    "ct_study",
    "patient_studies",
    "skin_lesion_studies",
    "us_cine_study",
    "wound_clip_mp4",
    "wound_video_study",
    "write_instances",
]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
US_MULTIFRAME_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")
VL_PHOTOGRAPHIC_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.77.1.4")
VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.77.1.4.1")
MPEG4_HP41 = UID("1.2.840.10008.1.2.4.102")  # MPEG-4 AVC/H.264 High Profile / Level 4.1

_MANUFACTURER = "onerecord synthetic"
_INSTITUTION = "Universitetssykehuset Nord-Norge (synthetic)"


@dataclass(frozen=True, slots=True)
class DicomPatient:
    """The patient as DICOM names them: PatientID is the synthetic fødselsnummer."""

    nin: NationalIdentityNumber
    family_name: str
    given_name: str
    birth_date: date
    sex: str  # "F" or "M" (PS3.3 C.7.1.1 Patient's Sex)

    def __post_init__(self) -> None:
        ensure_synthetic(self.nin)
        if self.sex not in {"F", "M", "O"}:
            raise ValueError("sex must be F, M or O")

    @property
    def patient_name(self) -> str:
        return f"{self.family_name}^{self.given_name}"


@dataclass(frozen=True, slots=True)
class SynthStudy:
    """One generated study: its UID, a short description and its instances."""

    study_instance_uid: str
    description: str
    instances: tuple[Dataset, ...]


def _uid(rng: random.Random) -> str:
    """A 2.25 UID from a version-4 UUID drawn from `rng` (PS3.5 B.2)."""
    return "2.25." + str(uuid.UUID(int=rng.getrandbits(128), version=4).int)


def _da(day: date) -> str:
    return day.strftime("%Y%m%d")


def _base(
    patient: DicomPatient,
    *,
    sop_class: str,
    sop_instance_uid: str,
    study_uid: str,
    series_uid: str,
    study_date: date,
    accession: str,
    modality: str,
    study_description: str,
    series_number: int,
    instance_number: int,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    """The modules every image IOD here shares, and the file meta information (PS3.10 7.1)."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta = meta
    # SOP Common (C.12.1)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = _da(study_date)
    # Patient (C.7.1.1)
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.nin.value
    ds.IssuerOfPatientID = "2.16.578.1.12.4.1.4.1"  # Norwegian fødselsnummer
    ds.PatientBirthDate = _da(patient.birth_date)
    ds.PatientSex = patient.sex
    # General Study (C.7.2.1)
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = _da(study_date)
    ds.StudyTime = "101500"
    ds.ReferringPhysicianName = ""
    ds.StudyID = accession[-8:]
    ds.AccessionNumber = accession
    ds.StudyDescription = study_description
    # General Series (C.7.3.1)
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDate = _da(study_date)
    ds.SeriesTime = "101500"
    # General Equipment (C.7.5.1)
    ds.Manufacturer = _MANUFACTURER
    ds.InstitutionName = _INSTITUTION
    ds.ManufacturerModelName = "synth"
    ds.SoftwareVersions = "1"
    # General Image (C.7.6.1)
    ds.InstanceNumber = instance_number
    ds.ContentDate = _da(study_date)
    ds.ContentTime = "101500"
    return ds


def _accession(rng: random.Random) -> str:
    return f"UNN{rng.randrange(10**9):09d}"


def _gray_pixels(ds: Dataset, rows: int, columns: int, *, bits_stored: int, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0


def _ct_slice(size: int, index: int, count: int) -> bytes:
    """One slice of a phantom, in stored values (HU + 1024): air, a body, an organ, a spine."""
    air, fat, soft, organ, bone = 0, 924, 1064, 1104, 1924
    centre = size / 2
    body_a, body_b = size * 0.42, size * 0.32
    phase = index / max(count - 1, 1)
    organ_r = size * (0.06 + 0.08 * math.sin(math.pi * phase))
    organ_x, organ_y = centre + size * 0.12, centre - size * 0.04
    spine_r = size * 0.045
    spine_x, spine_y = centre, centre + body_b * 0.7
    out = array("H")
    for y in range(size):
        dy = (y - centre) / body_b
        if abs(dy) >= 1:
            out.extend(array("H", [air]) * size)
            continue
        half = body_a * math.sqrt(1 - dy * dy)
        x0, x1 = int(centre - half), int(centre + half)
        inner = max(half - size * 0.02, 0)
        i0, i1 = int(centre - inner), int(centre + inner)
        row = array("H", [air]) * x0
        row.extend(array("H", [fat]) * (i0 - x0))
        row.extend(array("H", [soft]) * (i1 - i0))
        row.extend(array("H", [fat]) * (x1 - i1))
        row.extend(array("H", [air]) * (size - x1))
        for cx, cy, r, value in (
            (organ_x, organ_y, organ_r, organ),
            (spine_x, spine_y, spine_r, bone),
        ):
            d = y - cy
            if abs(d) < r:
                w = math.sqrt(r * r - d * d)
                a, b = max(int(cx - w), 0), min(int(cx + w), size)
                row[a:b] = array("H", [value]) * (b - a)
        out.extend(row)
    return out.tobytes()


def ct_study(
    patient: DicomPatient,
    rng: random.Random,
    *,
    study_date: date,
    slices: int = 20,
    size: int = 512,
) -> SynthStudy:
    """A CT abdomen: one axial series of `slices` images, `size`² 16-bit (CT Image IOD, A.3)."""
    study_uid, series_uid, frame_uid = _uid(rng), _uid(rng), _uid(rng)
    accession = _accession(rng)
    spacing = 350.0 / size
    instances = []
    for n in range(slices):
        ds = _base(
            patient,
            sop_class=CT_IMAGE_STORAGE,
            sop_instance_uid=_uid(rng),
            study_uid=study_uid,
            series_uid=series_uid,
            study_date=study_date,
            accession=accession,
            modality="CT",
            study_description="CT abdomen",
            series_number=1,
            instance_number=n + 1,
        )
        ds.BodyPartExamined = "ABDOMEN"
        ds.PatientPosition = "FFS"
        ds.SeriesDescription = "Abdomen 5 mm axial"
        # Frame of Reference (C.7.4.1)
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        # Image Plane (C.7.6.2)
        ds.PixelSpacing = [f"{spacing:.6f}", f"{spacing:.6f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        z = -5.0 * n
        ds.ImagePositionPatient = [-175, -175, f"{z:.1f}"]
        ds.SliceThickness = 5
        ds.SliceLocation = f"{z:.1f}"
        # CT Image (C.8.2.1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        _gray_pixels(ds, size, size, bits_stored=12, signed=False)
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.PixelData = _ct_slice(size, n, slices)
        instances.append(ds)
    return SynthStudy(study_uid, "CT abdomen", tuple(instances))


def _radiograph(size: int) -> bytes:
    """A chest radiograph: two dark lungs in a bright body, ribs as bands (12-bit values)."""
    out = array("H")
    centre = size / 2
    for y in range(size):
        level = 3000 if (y // max(size // 16, 1)) % 2 else 2700
        row = array("H", [level]) * size
        for cx in (centre - size * 0.2, centre + size * 0.2):
            d = (y - size * 0.45) / (size * 0.3)
            if abs(d) < 1:
                w = size * 0.14 * math.sqrt(1 - d * d)
                a, b = max(int(cx - w), 0), min(int(cx + w), size)
                row[a:b] = array("H", [900 + (y % 7) * 20]) * (b - a)
        out.extend(row)
    return out.tobytes()


def cr_study(
    patient: DicomPatient, rng: random.Random, *, study_date: date, size: int = 1024
) -> SynthStudy:
    """A chest radiograph, one image (CR Image IOD, A.2)."""
    study_uid = _uid(rng)
    ds = _base(
        patient,
        sop_class=CR_IMAGE_STORAGE,
        sop_instance_uid=_uid(rng),
        study_uid=study_uid,
        series_uid=_uid(rng),
        study_date=study_date,
        accession=_accession(rng),
        modality="CR",
        study_description="Rtg thorax",
        series_number=1,
        instance_number=1,
    )
    # CR Series (C.8.1.1)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    # CR Image (C.8.1.2)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    _gray_pixels(ds, size, size, bits_stored=12, signed=False)
    ds.ImagerPixelSpacing = ["0.35", "0.35"]
    ds.PixelData = _radiograph(size)
    return SynthStudy(study_uid, "Rtg thorax", (ds,))


def _cine_frame(size: int, frame: int, frames: int) -> bytes:
    """One 8-bit ultrasound frame: speckle in a sector, a dark chamber that beats."""
    phase = math.sin(2 * math.pi * frame / frames)
    radius = size * (0.18 + 0.05 * phase)
    cx, cy = size / 2, size * 0.55
    out = bytearray(size * size)
    seed = 12345 + frame
    for y in range(size):
        for x in range(0, size, 2):
            dx, dy = x - size / 2, y
            if dy <= 0 or abs(dx) > dy * 0.8:
                continue
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            value = 60 + (seed >> 16) % 120
            if (x - cx) ** 2 + (y - cy) ** 2 < radius * radius:
                value //= 5
            out[y * size + x] = value
            out[y * size + x + 1] = value
    return bytes(out)


def us_cine_study(
    patient: DicomPatient,
    rng: random.Random,
    *,
    study_date: date,
    frames: int = 12,
    size: int = 256,
) -> SynthStudy:
    """An echocardiography clip: one multi-frame image (US Multi-frame Image IOD, A.7)."""
    study_uid = _uid(rng)
    ds = _base(
        patient,
        sop_class=US_MULTIFRAME_IMAGE_STORAGE,
        sop_instance_uid=_uid(rng),
        study_uid=study_uid,
        series_uid=_uid(rng),
        study_date=study_date,
        accession=_accession(rng),
        modality="US",
        study_description="UL hjerte",
        series_number=1,
        instance_number=1,
    )
    ds.BodyPartExamined = "HEART"
    ds.PatientOrientation = ["", ""]  # General Image 2C: not aligned with the patient
    # US Image (C.8.5.6) and Image Pixel (C.7.6.3)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "EPICARDIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    # Cine (C.7.6.5) and Multi-frame (C.7.6.6)
    ds.NumberOfFrames = frames
    ds.FrameTime = 40
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.PixelData = b"".join(_cine_frame(size, f, frames) for f in range(frames))
    return SynthStudy(study_uid, "UL hjerte", (ds,))


def _lesion_jpeg(width: int, height: int, radius: float, seed: int) -> bytes:
    """A photograph of skin with a pigmented lesion of `radius`, as a JPEG baseline 4:2:2."""
    picture = Image.new("RGB", (width, height), (224, 172, 140))
    draw = ImageDraw.Draw(picture)
    r = random.Random(seed)
    for _ in range(200):  # pores and freckles
        x, y = r.randrange(width), r.randrange(height)
        draw.ellipse((x, y, x + 2, y + 2), fill=(205, 150, 120))
    cx, cy = width / 2, height / 2
    draw.ellipse(
        (cx - radius, cy - radius * 0.8, cx + radius, cy + radius * 0.8), fill=(92, 52, 38)
    )
    draw.ellipse(
        (cx - radius / 3, cy - radius / 4, cx + radius / 4, cy + radius / 3), fill=(60, 30, 25)
    )
    picture = picture.filter(ImageFilter.GaussianBlur(1.2))
    buffer = io.BytesIO()
    # subsampling=1 is 4:2:2, which YBR_FULL_422 names (PS3.5 8.2.1).
    picture.save(buffer, format="JPEG", quality=90, subsampling=1, optimize=False)
    return buffer.getvalue()


def skin_lesion_studies(
    patient: DicomPatient,
    rng: random.Random,
    *,
    first_date: date,
    months_apart: int = 6,
    width: int = 640,
    height: int = 480,
) -> list[SynthStudy]:
    """The same lesion photographed at two dates, one study each (VL Photographic Image, A.32.4)."""
    studies = []
    for visit, radius in enumerate((height * 0.08, height * 0.11)):
        day = first_date + timedelta(days=30 * months_apart * visit)
        study_uid = _uid(rng)
        sop_uid = _uid(rng)
        ds = _base(
            patient,
            sop_class=VL_PHOTOGRAPHIC_IMAGE_STORAGE,
            sop_instance_uid=sop_uid,
            study_uid=study_uid,
            series_uid=_uid(rng),
            study_date=day,
            accession=_accession(rng),
            modality="XC",
            study_description="Hudfoto føflekk",
            series_number=1,
            instance_number=1,
            transfer_syntax=JPEGBaseline8Bit,
        )
        ds.SeriesDescription = "Venstre skulder"
        ds.BodyPartExamined = "SHOULDER"
        ds.Laterality = "L"  # General Series 2C: a paired body part
        ds.PatientOrientation = ["", ""]  # General Image 2C: not known for a photograph
        # VL Image (C.8.12.1) and Image Pixel for JPEG baseline colour (PS3.5 8.2.1)
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PlanarConfiguration = 0
        ds.Rows = height
        ds.Columns = width
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = "10"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        # Acquisition Context (C.7.6.14): type 2, known to be empty
        ds.AcquisitionContextSequence = []
        ds.PixelData = encapsulate([_lesion_jpeg(width, height, radius, rng.randrange(2**31))])
        studies.append(SynthStudy(study_uid, "Hudfoto føflekk", (ds,)))
    return studies


def _to_partial_range(plane: bytes, *, chroma: bool) -> bytes:
    """Full-range (JFIF) samples to the video range H.264 assumes by default (16–235/240)."""
    span = 224 if chroma else 219
    table = bytes(16 + (v * span + 127) // 255 for v in range(256))
    return plane.translate(table)


def _wound_frames(width: int, height: int, count: int, seed: int) -> list[YuvFrame]:
    """A wound on skin, the camera drifting slowly across it, as 4:2:0 video-range frames."""
    r = random.Random(seed)
    spots = [(r.randrange(width * 2), r.randrange(height * 2)) for _ in range(150)]
    frames = []
    for n in range(count):
        dx, dy = int(n * width * 0.4 / count), int(n * height * 0.15 / count)
        picture = Image.new("RGB", (width, height), (226, 176, 146))
        draw = ImageDraw.Draw(picture)
        for x, y in spots:
            px, py = x - dx - width // 2, y - dy - height // 2
            draw.ellipse((px, py, px + 2, py + 2), fill=(206, 152, 124))
        cx, cy = width * 0.6 - dx, height * 0.5 - dy
        rw, rh = width * 0.18, height * 0.12
        draw.ellipse((cx - rw, cy - rh, cx + rw, cy + rh), fill=(170, 48, 44))
        draw.ellipse((cx - rw / 2, cy - rh / 3, cx + rw / 3, cy + rh / 2), fill=(226, 206, 120))
        luma, blue, red = picture.convert("YCbCr").split()
        frames.append(
            YuvFrame(
                width,
                height,
                _to_partial_range(luma.tobytes(), chroma=False),
                _to_partial_range(blue.reduce(2).tobytes(), chroma=True),
                _to_partial_range(red.reduce(2).tobytes(), chroma=True),
            )
        )
    return frames


def wound_video_study(
    patient: DicomPatient,
    rng: random.Random,
    *,
    study_date: date,
    width: int = 176,
    height: int = 144,
    frames: int = 25,
) -> SynthStudy:
    """A one-second clip of a wound, 25 frames/s (Video Photographic Image IOD, A.32.7)."""
    if width % 16 or height % 16:
        raise ValueError("the clip's width and height are multiples of 16")
    study_uid = _uid(rng)
    ds = _base(
        patient,
        sop_class=VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE,
        sop_instance_uid=_uid(rng),
        study_uid=study_uid,
        series_uid=_uid(rng),
        study_date=study_date,
        accession=_accession(rng),
        modality="XC",
        study_description="Sårvideo",
        series_number=1,
        instance_number=1,
        transfer_syntax=MPEG4_HP41,
    )
    ds.SeriesDescription = "Venstre legg"
    ds.BodyPartExamined = "LEG"
    ds.Laterality = "L"
    region = Dataset()  # VL Image 1C (C.8.12.1): the anatomic region, coded
    region.CodeValue = "30021000"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Lower leg"
    ds.AnatomicRegionSequence = [region]
    ds.PatientOrientation = ["", ""]
    # VL Image (C.8.12.1), Image Pixel (C.7.6.3) for MPEG-4 AVC (PS3.5 8.2.8)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows = height
    ds.Columns = width
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"  # every macroblock I_PCM: the samples as drawn
    # Cine (C.7.6.5) and Multi-frame (C.7.6.6)
    ds.NumberOfFrames = frames
    ds.FrameTime = 40
    ds.CineRate = 25
    ds.RecommendedDisplayFrameRate = 25
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.StartTrim = 1
    ds.StopTrim = frames
    # Acquisition Context (C.7.6.14): type 2, known to be empty
    ds.AcquisitionContextSequence = []
    stream = encode_pcm_stream(_wound_frames(width, height, frames, rng.randrange(2**31)))
    # One fragment stream with an empty Basic Offset Table (PS3.5 A.4.13 for H.264).
    ds.PixelData = encapsulate([stream], has_bot=False)
    ds["PixelData"].VR = "OB"
    return SynthStudy(study_uid, "Sårvideo", (ds,))


def wound_clip_mp4(seed: int, *, width: int = 176, height: int = 144, frames: int = 25) -> bytes:
    """The wound clip as an MP4 file, as a phone would send it over STOW-RS (IHE WIC).

    The same pictures as `wound_video_study` draws, encoded by `synth/h264.py` and written by
    `synth/mp4.py` (25 frames/s; no encoder or muxer outside this package).
    """
    if width % 16 or height % 16:
        raise ValueError("the clip's width and height are multiples of 16")
    stream = encode_pcm_stream(_wound_frames(width, height, frames, seed))
    return mux_h264(stream, width=width, height=height, fps=25)


def patient_studies(
    patient: DicomPatient,
    *,
    seed: int = 1,
    reference_date: date,
    ct_slices: int = 20,
    size: int = 512,
) -> list[SynthStudy]:
    """Every kind of study for one patient: CT, CR, ultrasound cine, two skin photographs, a
    wound clip.

    `size` is the CT matrix; the radiograph is twice that, the cine and photos half (at least
    64 pixels). The dates lie in the year before `reference_date`.
    """
    rng = random.Random(f"dicom-{seed}-{patient.nin.value}")
    small = max(size // 2, 64)
    return [
        ct_study(
            patient,
            rng,
            study_date=reference_date - timedelta(days=40),
            slices=ct_slices,
            size=size,
        ),
        cr_study(patient, rng, study_date=reference_date - timedelta(days=90), size=size * 2),
        us_cine_study(patient, rng, study_date=reference_date - timedelta(days=20), size=small),
        *skin_lesion_studies(
            patient,
            rng,
            first_date=reference_date - timedelta(days=200),
            width=max(small * 5 // 4, 80),
            height=small,
        ),
        wound_video_study(patient, rng, study_date=reference_date - timedelta(days=10)),
    ]


def write_instances(datasets: Sequence[Dataset], folder: Path) -> list[Path]:
    """Write each instance as a DICOM file (PS3.10) named by its SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
