"""The synthetic DICOM studies: valid IODs (dicom3tools' dciodvfy), synthetic identity only."""

from __future__ import annotations

import random
import subprocess
from datetime import date
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from onerecord.cli import app
from onerecord.domain import NationalIdentityNumber
from onerecord.synth.dicom import (
    CR_IMAGE_STORAGE,
    CT_IMAGE_STORAGE,
    US_MULTIFRAME_IMAGE_STORAGE,
    VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE,
    VL_PHOTOGRAPHIC_IMAGE_STORAGE,
    DicomPatient,
    _wound_frames,
    patient_studies,
    write_instances,
)
from onerecord.synth.h264 import encode_pcm_stream
from onerecord.synth.numbers import RealFormNumber, Sex, synthetic_fnr
from tests.media.dicom_tools import require_tool

BORN = date(1968, 3, 14)


def _patient() -> DicomPatient:
    nin = synthetic_fnr(random.Random(7), BORN, sex=Sex.FEMALE)
    return DicomPatient(nin, "Testesen", "Synne", BORN, "F")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    studies = patient_studies(_patient(), reference_date=date(2026, 12, 1), ct_slices=3, size=64)
    folder = tmp_path_factory.mktemp("dicom")
    return write_instances([ds for s in studies for ds in s.instances], folder)


def test_every_kind_of_study_is_generated(files: list[Path]) -> None:
    datasets = [pydicom.dcmread(p) for p in files]
    classes = sorted(str(ds.SOPClassUID) for ds in datasets)
    assert classes.count(CT_IMAGE_STORAGE) == 3
    assert {CR_IMAGE_STORAGE, US_MULTIFRAME_IMAGE_STORAGE} <= set(classes)
    assert classes.count(VL_PHOTOGRAPHIC_IMAGE_STORAGE) == 2
    assert classes.count(VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE) == 1
    # CT, CR, US, two photo visits, the wound clip
    assert len({ds.StudyInstanceUID for ds in datasets}) == 6
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    for ds in datasets:
        assert NationalIdentityNumber(ds.PatientID).synthetic
        assert str(ds.SOPInstanceUID).startswith("2.25.")
        assert len(str(ds.SOPInstanceUID)) <= 64


def test_photographs_are_jpeg_baseline_and_decode(files: list[Path]) -> None:
    photos = [
        ds
        for ds in (pydicom.dcmread(p) for p in files)
        if ds.SOPClassUID == VL_PHOTOGRAPHIC_IMAGE_STORAGE
    ]
    dates = sorted(ds.StudyDate for ds in photos)
    assert dates[0] < dates[1]  # the same lesion at two dates
    for ds in photos:
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
        frame = next(pydicom.encaps.generate_fragmented_frames(ds.PixelData))
        assert b"".join(frame).startswith(b"\xff\xd8")  # JPEG SOI


def test_every_instance_passes_dciodvfy(files: list[Path]) -> None:
    dciodvfy = require_tool("dciodvfy")
    for path in files:
        run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
        report = run.stdout + run.stderr
        assert "Error" not in report, f"{path.name}:\n{report}"
        assert "Warning" not in report, f"{path.name}:\n{report}"


def test_the_same_seed_gives_the_same_uids() -> None:
    def uids() -> list[str]:
        studies = patient_studies(_patient(), reference_date=date(2026, 1, 1), ct_slices=1, size=32)
        return [str(ds.SOPInstanceUID) for s in studies for ds in s.instances]

    assert uids() == uids()


def test_a_real_form_number_is_refused() -> None:
    real = next(
        v
        for n in range(100, 200)
        if (v := NationalIdentityNumber.with_check_digits(f"140368{n:03d}")) is not None
    )  # month 03: the real form
    with pytest.raises(RealFormNumber):
        DicomPatient(NationalIdentityNumber(real), "A", "B", BORN, "F")
    result = CliRunner().invoke(app, ["synth", "dicom", "--patient", real])
    assert result.exit_code != 0


def test_the_cli_writes_the_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["synth", "dicom", "--out", str(tmp_path), "--size", "32", "--slices", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.dcm"))) == 7


def test_the_clip_is_h264_high_profile_level_41_that_ffmpeg_decodes_losslessly(
    files: list[Path], tmp_path: Path
) -> None:
    """FFmpeg (Debian's, a test peer only) decodes the clip to exactly the frames drawn."""
    ffmpeg = require_tool("ffmpeg")
    (path,) = [
        p for p in files if pydicom.dcmread(p).SOPClassUID == VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE
    ]
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.102"
    stream = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    assert stream.startswith(b"\x00\x00\x00\x01")
    clip = tmp_path / "clip.h264"
    clip.write_bytes(stream)
    probe = subprocess.run(
        [ffmpeg.replace("ffmpeg", "ffprobe"), "-v", "error", "-count_frames", "-show_streams",
         str(clip)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    fields = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
    assert (fields["codec_name"], fields["profile"], fields["level"]) == ("h264", "High", "41")
    assert (int(fields["width"]), int(fields["height"])) == (ds.Columns, ds.Rows)
    assert int(fields["nb_read_frames"]) == ds.NumberOfFrames
    frames = _wound_frames(32, 32, 3, seed=5)
    small = tmp_path / "small.h264"
    small.write_bytes(encode_pcm_stream(frames))
    decoded = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(small), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    assert decoded.stdout == b"".join(f.y + f.cb + f.cr for f in frames)
