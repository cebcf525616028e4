"""Photos and video from outside radiology (IHE WIC) over JSON STOW-RS, with real servers.

A "phone" sends a JPEG with EXIF GPS and orientation 6, a PNG, and MP4 clips (made by Debian's
FFmpeg, a test peer only: never a dependency of src/) to a real STS and archive on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pydicom
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.encaps import generate_frames

from onerecord.audit import AuditAction, AuditOutcome
from onerecord.synth.dicom import wound_clip_mp4
from tests.media.dicomweb_harness import STORE_SCOPE, MediaNet, start_media
from tests.source.trust_harness import Token

VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"
VIDEO_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"


@dataclass
class Net:
    media: MediaNet
    patient: str
    store: Token
    read: Token
    workdir: Path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    workdir = tmp_path_factory.mktemp("wic")
    with start_media(workdir) as media:
        nin = media.net.citizen("adult")
        yield Net(
            media,
            nin,
            media.net.hcp_token(nin, scope=STORE_SCOPE),
            media.net.hcp_token(nin),
            workdir,
        )


def wic_metadata(patient: str, note: str = "Sår venstre legg, dag 3") -> dict[str, object]:
    """What a WIC capture app sends: patient, body site (SNOMED CT), a note, when."""
    return {
        "00100020": {"vr": "LO", "Value": [patient]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Testesen^Adult"}]},
        "00082218": {
            "vr": "SQ",
            "Value": [
                {
                    "00080100": {"vr": "SH", "Value": ["30021000"]},
                    "00080102": {"vr": "SH", "Value": ["SCT"]},
                    "00080104": {"vr": "LO", "Value": ["Lower leg"]},
                }
            ],
        },
        "00204000": {"vr": "LT", "Value": [note]},
        "7FE00010": {"vr": "OB", "BulkDataURI": "pixels"},
    }


def wic_body(metadata: dict[str, object], media_type: str, pixels: bytes) -> tuple[bytes, str]:
    boundary = "w1c"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom+json\r\n\r\n".encode()
        + orjson.dumps([metadata])
        + f"\r\n--{boundary}\r\nContent-Type: {media_type}\r\n".encode()
        + b"Content-Location: pixels\r\n\r\n"
        + pixels
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom+json"; boundary={boundary}'


def phone_jpeg() -> bytes:
    """A 64×32 photo stored sideways (orientation 6), with GPS, a maker and a comment."""
    image = Image.new("RGB", (64, 32), (200, 10, 10))
    image.paste((10, 200, 10), (0, 0, 16, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (59.0, 54.0, 0.0), 3: "E", 4: (10.0, 45.0, 0.0)})
    exif.get_ifd(0x8769)[0x9003] = "2026:11:30 14:05:00"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), quality=90, comment=b"Storgata 1")
    return out.getvalue()


def ffmpeg_clip(path: Path, *args: str, seconds: int = 2, size: str = "320x240") -> bytes:
    """FFmpeg's test pattern, `seconds` long at 25 frames/s, encoded with `args`, at `path`."""
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
        + ["-i", f"testsrc=size={size}:rate=25", "-t", str(seconds), *args, str(path)],
        check=True,
        timeout=120,
    )
    return path.read_bytes()


def _stored(answer: dict[str, object]) -> dict[str, object]:
    items = answer["00081199"]["Value"]  # type: ignore[index]
    assert len(items) == 1
    return items[0]  # type: ignore[no-any-return]


def _retrieve(net: Net, url: str) -> pydicom.Dataset:
    path = url.split("/dicomweb/", 1)[1]
    r = net.media.get(
        net.read, path, Accept='multipart/related; type="application/dicom"; transfer-syntax=*'
    )
    assert r.status_code == 200, r.text
    boundary = r.headers["content-type"].split("boundary=")[1].strip('"')
    part = r.content.split(f"--{boundary}".encode())[1]
    return pydicom.dcmread(io.BytesIO(part.split(b"\r\n\r\n", 1)[1][:-2]))


def test_a_phone_jpeg_is_stored_upright_without_exif_or_gps(net: Net) -> None:
    jpeg = phone_jpeg()
    assert b"Exif" in jpeg and b"Storgata" in jpeg
    body, content_type = wic_body(wic_metadata(net.patient), "image/jpeg", jpeg)
    mark = len(net.media.audit.records)
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 200, r.text
    item = _stored(r.json())
    assert item["00081150"]["Value"] == [VL_PHOTO]  # type: ignore[index]
    ds = _retrieve(net, item["00081190"]["Value"][0])  # type: ignore[index]
    assert ds.SOPClassUID == VL_PHOTO
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert (ds.Rows, ds.Columns) == (64, 32)  # turned upright: 32 wide, 64 high
    assert ds.ImageComments == "Sår venstre legg, dag 3"
    assert ds.AnatomicRegionSequence[0].CodeValue == "30021000"
    assert ds.AcquisitionDateTime == "20261130140500"  # from EXIF, before it was dropped
    stored = next(generate_frames(ds.PixelData, number_of_frames=1))
    for secret in (b"Exif", b"PhoneMaker", b"Storgata", b"GPS"):
        assert secret not in stored
    picture = Image.open(io.BytesIO(stored))
    assert picture.size == (32, 64)
    assert not picture.getexif()
    green, red = picture.getpixel((31, 0)), picture.getpixel((0, 63))
    assert green[1] > 150 and red[0] > 150  # the green corner went top-right: rotated 90° cw
    records = net.media.records_since(mark)
    assert [r.action.value for r in records][-1:] and records[-1].document_ids == (
        ds.SOPInstanceUID,
    )


def test_a_jpeg_without_orientation_is_kept_losslessly(net: Net) -> None:
    image = Image.new("RGB", (48, 32), (90, 120, 200))
    exif = Image.Exif()
    exif.get_ifd(0x8825)[1] = "N"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    jpeg = out.getvalue()
    body, content_type = wic_body(wic_metadata(net.patient), "image/jpeg", jpeg)
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 200, r.text
    ds = _retrieve(net, _stored(r.json())["00081190"]["Value"][0])  # type: ignore[index]
    stored = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert b"Exif" not in stored
    scan = jpeg.index(b"\xff\xda")
    assert stored.endswith(jpeg[scan:])  # the compressed data as sent, not re-encoded


def test_a_png_is_stored_lossless_as_native_pixels(net: Net) -> None:
    image = Image.new("RGBA", (20, 10), (10, 20, 30, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    body, content_type = wic_body(wic_metadata(net.patient), "image/png", out.getvalue())
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 200, r.text
    ds = _retrieve(net, _stored(r.json())["00081190"]["Value"][0])  # type: ignore[index]
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.PhotometricInterpretation == "RGB" and ds.LossyImageCompression == "00"
    assert ds.pixel_array.shape == (10, 20, 3)
    assert tuple(ds.pixel_array[0, 0]) == (10, 20, 30)


def test_an_mp4_is_stored_unchanged_and_served_with_ranges(net: Net) -> None:
    clip = ffmpeg_clip(
        net.workdir / "h264.mp4",
        "-c:v",
        "libx264",
        "-profile:v",
        "high",
        "-level",
        "4.1",
        "-pix_fmt",
        "yuv420p",
    )
    body, content_type = wic_body(wic_metadata(net.patient), "video/mp4", clip)
    mark = len(net.media.audit.records)
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 200, r.text
    url = _stored(r.json())["00081190"]["Value"][0]  # type: ignore[index]
    ds = _retrieve(net, url)
    assert ds.SOPClassUID == VIDEO_PHOTO
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.102"
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (240, 320, 50)
    fragments = list(generate_frames(ds.PixelData, number_of_frames=1))
    assert fragments[0][: len(clip)] == clip  # the MP4 file itself is the fragment
    rendered = url.split("/dicomweb/", 1)[1] + "/rendered"
    whole = net.media.get(net.read, rendered, Accept="video/mp4")
    assert whole.status_code == 200, whole.text
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.content == clip
    part = net.media.get(net.read, rendered, Accept="video/mp4", Range="bytes=100-1099")
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(clip)}"
    assert part.content == clip[100:1100]
    tail = net.media.get(net.read, rendered, Accept="video/mp4", Range="bytes=-10")
    assert tail.status_code == 206 and tail.content == clip[-10:]
    past = net.media.get(net.read, rendered, Accept="video/mp4", Range=f"bytes={len(clip)}-")
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(clip)}"
    assert net.media.get(net.read, rendered, Accept="image/jpeg").status_code == 406
    assert net.media.get(net.read, rendered).content == clip  # no Accept: the video
    etag = whole.headers["etag"]
    again = net.media.get(net.read, rendered, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    several = net.media.get(net.read, rendered, Range="bytes=0-1,5-6")
    assert several.status_code == 200 and several.content == clip  # one range is served
    instance = url.split("/dicomweb/", 1)[1]
    for path in ("/frames/1", "/thumbnail", "/metadata", "/bulkdata/7FE00010"):
        assert net.media.get(net.read, instance + path).status_code < 500, path
    got = net.workdir / "got.mp4"
    got.write_bytes(whole.content)
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-of", "json", str(got)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["codec_name"], stream["profile"], stream["level"]) == ("h264", "High", 41)
    retrieves = [r for r in net.media.records_since(mark) if r.query == "WADO-RS rendered"]
    assert len(retrieves) >= 5  # every rendered request audited, with the instance
    assert all(r.document_ids == (ds.SOPInstanceUID,) for r in retrieves)


def test_a_non_h264_mp4_is_refused_and_nothing_is_stored(net: Net) -> None:
    clip = ffmpeg_clip(net.workdir / "mpeg4.mp4", "-c:v", "mpeg4", seconds=1)
    body, content_type = wic_body(wic_metadata(net.patient), "video/mp4", clip)
    mark = len(net.media.audit.records)
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 409, r.text
    failed = r.json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0x0122]
    assert "not H.264" in r.headers["warning"]
    (record,) = net.media.records_since(mark)  # the refusal is audited, with the caller
    assert (record.action, record.outcome) == (AuditAction.STORE, AuditOutcome.ERROR)
    assert record.reason == "unsupported-media" and record.patient_id == net.patient
    assert record.practitioner is not None
    staging = net.workdir / "content" / ".staging"
    assert not list(staging.glob("*")) if staging.exists() else True


def test_a_level_above_42_is_refused(net: Net) -> None:
    clip = ffmpeg_clip(
        net.workdir / "l51.mp4",
        "-c:v",
        "libx264",
        "-level",
        "5.1",
        "-pix_fmt",
        "yuv420p",
        seconds=1,
    )
    body, content_type = wic_body(wic_metadata(net.patient), "video/mp4", clip)
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 409
    assert "above 4.2" in r.headers["warning"]


def test_a_body_site_not_in_snomed_ct_is_refused(net: Net) -> None:
    metadata = wic_metadata(net.patient)
    metadata["00082218"]["Value"][0]["00080102"]["Value"] = ["99LOCAL"]  # type: ignore[index]
    body, content_type = wic_body(metadata, "image/jpeg", phone_jpeg())
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]


def padded_clip(clip: bytes, total: int) -> tuple[bytes, int]:
    """The clip with a `free` box appended so the file is `total` bytes (offsets unchanged)."""
    extra = total - len(clip)
    return struct.pack(">I4s", extra, b"free"), extra - 8


def rss() -> int:
    """This process's resident set, in bytes (/proc: Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples the resident set every 20 ms while in the `with` block."""

    def __enter__(self) -> PeakRss:
        self.base = rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


def test_a_200_mb_clip_flows_through_in_constant_memory(net: Net) -> None:
    clip = ffmpeg_clip(
        net.workdir / "small.mp4", "-c:v", "libx264", "-pix_fmt", "yuv420p", seconds=1
    )
    total = 200 * 1024 * 1024
    free_header, zeros = padded_clip(clip, total)
    head, content_type = wic_body(wic_metadata(net.patient), "video/mp4", b"")
    cut = head.index(b"\r\n--w1c--")
    zero = bytes(1024 * 1024)

    def body() -> Iterator[bytes]:
        yield head[:cut]
        yield clip
        yield free_header
        left = zeros
        while left:
            yield zero[: min(left, len(zero))]
            left -= min(left, len(zero))
        yield head[cut:]

    url = f"{net.media.dicomweb}/studies"
    headers = net.store.headers("POST", url)
    headers["Content-Type"] = content_type
    with PeakRss() as upload:
        r = requests.post(url, data=body(), headers=headers, timeout=300)
    assert r.status_code == 200, r.text
    rendered = _stored(r.json())["00081190"]["Value"][0] + "/rendered"  # type: ignore[index]
    sent = net.media.get(net.read, rendered.split("/dicomweb/", 1)[1], Range="bytes=0-15")
    assert sent.content == clip[:16]
    url = f"{rendered}"
    read_headers = net.read.headers("GET", url)
    read_headers["Accept"] = "video/mp4"
    digest = hashlib.sha256()
    with (
        PeakRss() as download,
        requests.get(url, headers=read_headers, stream=True, timeout=300) as got,
    ):
        assert got.status_code == 200
        assert int(got.headers["content-length"]) == total
        for chunk in got.iter_content(1024 * 1024):
            digest.update(chunk)
    expected = hashlib.sha256(clip + free_header)
    left = zeros
    while left:
        expected.update(zero[: min(left, len(zero))])
        left -= min(left, len(zero))
    assert digest.hexdigest() == expected.hexdigest()
    # Measured 2026-12-03: 7 MiB for the upload, 0 MiB for the download.
    assert upload.growth < 50 * 1024 * 1024, f"upload grew {upload.growth >> 20} MiB"
    assert download.growth < 50 * 1024 * 1024, f"download grew {download.growth >> 20} MiB"
    assert not list((net.workdir / "content" / ".staging").glob("*"))


def _mutated(data: st.DataObject, original: bytes) -> bytes:
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    return bytes(mutated[: data.draw(st.integers(0, len(mutated)))])


@pytest.fixture(scope="module")
def samples(net: Net) -> dict[str, bytes]:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (5, 6, 7)).save(out, "PNG")
    return {
        "image/jpeg": phone_jpeg(),
        "image/png": out.getvalue(),
        "video/mp4": ffmpeg_clip(
            net.workdir / "tiny.mp4", "-c:v", "libx264", "-pix_fmt", "yuv420p", seconds=1
        ),
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), kind=st.sampled_from(["image/jpeg", "image/png", "video/mp4"]))
def test_hostile_photos_and_clips_are_4xx_and_write_nothing(
    net: Net, samples: dict[str, bytes], data: st.DataObject, kind: str
) -> None:
    pixels = _mutated(data, samples[kind])
    body, content_type = wic_body(wic_metadata(net.patient), kind, pixels)
    mark = len(net.media.audit.records)
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code < 500, r.text
    stored = [
        x
        for x in net.media.records_since(mark)
        if x.action.value == "store" and x.outcome.value == "success"  # type: ignore[attr-defined]
    ]
    if r.status_code >= 400:
        assert not stored
    staging = net.workdir / "content" / ".staging"
    assert not list(staging.glob("*")) if staging.exists() else True


def test_limits_on_a_video_part_and_a_whole_body(tmp_path: Path) -> None:
    with start_media(tmp_path, max_video_bytes=4096, max_stow_body_bytes=64 * 1024) as media:
        nin = media.net.citizen("adult")
        token = media.net.hcp_token(nin, scope=STORE_SCOPE)
        body, content_type = wic_body(wic_metadata(nin), "video/mp4", bytes(8192))
        r = media.post(token, "studies", body, content_type)
        assert r.status_code == 413, r.text
        body, content_type = wic_body(wic_metadata(nin), "image/png", bytes(100_000))
        r = media.post(token, "studies", body, content_type)
        assert r.status_code == 413, r.text
        assert not list((tmp_path / "content" / ".staging").glob("*"))
        assert not any(x.outcome.value == "success" for x in media.audit.records)


def test_the_synthetic_clip_goes_in_and_out_unchanged(net: Net) -> None:
    """No FFmpeg: the wound clip as `onerecord synth dicom --mp4` writes it (synth/mp4.py)."""
    clip = wound_clip_mp4(5)
    body, content_type = wic_body(wic_metadata(net.patient), "video/mp4", clip)
    r = net.media.post(net.store, "studies", body, content_type)
    assert r.status_code == 200, r.text
    url = _stored(r.json())["00081190"]["Value"][0]  # type: ignore[index]
    rendered = url.split("/dicomweb/", 1)[1] + "/rendered"
    assert net.media.get(net.read, rendered, Accept="video/mp4").content == clip
    ds = _retrieve(net, url)
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames, ds.CineRate) == (144, 176, 25, 25)
