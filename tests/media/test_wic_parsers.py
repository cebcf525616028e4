"""The WIC parsers on hostile input: a refusal of their own kind, never another exception.

`read_mp4` (MalformedMp4 / UnsupportedVideo), `h264_transfer_syntax` (UnsupportedVideo),
`read_photo` (PhotoError), `parse_range` (None, a range inside the body, or 416), and the
multipart parser's streaming mode (the same bytes as whole parts, however the body is cut).
"""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import Dataset

from onerecord.dicom import (
    InvalidRequest,
    MultipartParser,
    Part,
    PartChunk,
    PartEnd,
    PayloadTooLarge,
    RangeNotSatisfiable,
    dataset_from_json,
    parse_range,
)
from onerecord.media.dicomweb import part10
from onerecord.media.errors import InvalidInstance, SopClassMismatch
from onerecord.media.mp4 import (
    H264_HIGH_41,
    H264_HIGH_42_2D,
    MalformedMp4,
    Mp4Video,
    UnsupportedVideo,
    h264_transfer_syntax,
    read_mp4,
)
from onerecord.media.photo import (
    PhotoError,
    PhotoLimits,
    PhotoTooLarge,
    UnsupportedPhoto,
    read_photo,
)
from onerecord.media.wic import mp4_span, photo_dataset, video_dataset, video_part10
from tests.media.dicom_tools import require_tool
from tests.media.test_wic import ffmpeg_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path: Path = tmp_path_factory.mktemp("mp4") / "c.mp4"
    return ffmpeg_clip(path, "-c:v", "libx264", "-pix_fmt", "yuv420p", seconds=1, size="160x120")


def _read(data: bytes) -> Mp4Video:
    return read_mp4(lambda offset, length: data[offset : offset + length], len(data))


def test_an_ffmpeg_clip_is_read(clip: bytes) -> None:
    video = _read(clip)
    assert (video.width, video.height, video.frames) == (160, 120, 25)
    assert video.duration_s == pytest.approx(1.0)
    assert h264_transfer_syntax(video) == H264_HIGH_41


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_mp4_is_refused_in_kind(clip: bytes, data: st.DataObject) -> None:
    mutated = bytearray(clip)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    for candidate in (bytes(mutated), bytes(mutated[:cut])):
        try:
            video = _read(candidate)
            h264_transfer_syntax(video)
        except (MalformedMp4, UnsupportedVideo):
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_not_an_mp4(data: bytes) -> None:
    with pytest.raises((MalformedMp4, UnsupportedVideo)):
        _read(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00" + data)


@given(
    profile=st.integers(0, 255),
    flags=st.integers(0, 255),
    level=st.integers(0, 255),
    width=st.integers(1, 8192),
    height=st.integers(1, 8192),
    frames=st.integers(1, 10**6),
    duration=st.floats(0.001, 10**5),
)
def test_every_profile_and_level_maps_or_is_refused(
    profile: int, flags: int, level: int, width: int, height: int, frames: int, duration: float
) -> None:
    video = Mp4Video(0, "isom", profile, flags, level, width, height, frames, duration, None, False)
    try:
        syntax = h264_transfer_syntax(video)
    except UnsupportedVideo:
        return
    assert syntax.startswith("1.2.840.10008.1.2.4.10")
    assert width <= 1920 and height <= 1080 and level <= 42
    assert syntax != H264_HIGH_42_2D or level == 42


def _jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8825)[1] = "N"
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (1, 2, 3)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["image/jpeg", "image/png"]))
def test_a_mutated_photo_is_refused_in_kind(data: st.DataObject, kind: str) -> None:
    mutated = bytearray(_jpeg() if kind == "image/jpeg" else _png())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    for candidate in (bytes(mutated), bytes(mutated[:cut])):
        try:
            photo = read_photo(candidate, kind)
        except PhotoError:
            continue
        assert b"Exif" not in photo.pixel_data


@given(st.binary(max_size=200), st.sampled_from(["image/jpeg", "image/png", "image/gif"]))
def test_arbitrary_bytes_are_not_a_photo(data: bytes, kind: str) -> None:
    with pytest.raises(PhotoError):
        read_photo(data, kind)


def test_a_decompression_bomb_is_refused_by_its_header() -> None:
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4
    with pytest.raises(PhotoTooLarge):
        read_photo(bomb, "image/png")
    with pytest.raises(PhotoTooLarge):
        read_photo(_png(), "image/png", PhotoLimits(max_pixels=100))


@given(
    header=st.text(max_size=40) | st.from_regex(r"bytes=\d{0,4}-\d{0,4}", fullmatch=True),
    size=st.integers(0, 5000),
)
def test_a_range_is_inside_the_body_or_refused(header: str, size: int) -> None:
    try:
        got = parse_range(header, size)
    except RangeNotSatisfiable as exc:
        assert exc.status == 416 and exc.size == size
        return
    if got is not None:
        assert 0 <= got.first <= got.last < size
        assert got.content_range == f"bytes {got.first}-{got.last}/{size}"


def test_ranges_as_rfc_9110_reads_them() -> None:
    assert parse_range("bytes=0-99", 1000).length == 100  # type: ignore[union-attr]
    assert parse_range("bytes=900-", 1000).last == 999  # type: ignore[union-attr]
    assert parse_range("bytes=-100", 1000).first == 900  # type: ignore[union-attr]
    assert parse_range("bytes=0-5000", 1000).last == 999  # type: ignore[union-attr]
    assert parse_range("bytes=0-1,5-6", 1000) is None  # several ranges: the whole body
    assert parse_range("items=0-1", 1000) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=1000-", 1000)


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    cuts=st.lists(st.integers(1, 64), min_size=1, max_size=50),
)
def test_streaming_parts_are_the_whole_parts(bodies: list[bytes], cuts: list[int]) -> None:
    boundary = "b0undary"
    wire = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: video/mp4\r\n\r\n" + b + b"\r\n"
            for b in bodies
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    if any(b"\r\n--" + boundary.encode() in b + b"\r\n--" for b in bodies):
        return  # a body holding the delimiter is not a body of this multipart
    parser = MultipartParser(boundary, stream=True)
    seen: list[bytes] = []
    current = bytearray()
    pos = 0
    index = 0
    while pos < len(wire):
        step = cuts[index % len(cuts)]
        index += 1
        for event in parser.feed_events(wire[pos : pos + step]):
            if isinstance(event, Part):
                current = bytearray()
            elif isinstance(event, PartChunk):
                current += event.data
            else:
                assert isinstance(event, PartEnd)
                seen.append(bytes(current))
        pos += step
    parser.close()
    assert seen == bodies


def test_the_streaming_parser_still_bounds_headers_and_parts() -> None:
    parser = MultipartParser("b", stream=True)
    with pytest.raises(PayloadTooLarge):
        parser.feed_events(b"--b\r\n" + b"X-A: " + b"a" * 20_000)
    with pytest.raises(InvalidRequest):
        MultipartParser("b", stream=True).feed_events(b"--b\r\nbroken header\r\n\r\n")
    with pytest.raises(TypeError):
        MultipartParser("b").feed_events(b"")


def _wic_dataset(**extra: object) -> Dataset:
    return dataset_from_json(
        {
            "00100020": {"vr": "LO", "Value": ["15528012345"]},
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
            **extra,
        }
    )


def test_the_instances_made_pass_dciodvfy(clip: bytes, tmp_path: Path) -> None:
    dciodvfy = require_tool("dciodvfy")
    files = {
        "jpeg.dcm": part10(photo_dataset(_wic_dataset(), read_photo(_jpeg(), "image/jpeg"))),
        "png.dcm": part10(photo_dataset(_wic_dataset(), read_photo(_png(), "image/png"))),
    }
    video = _read(clip)
    head, tail = video_part10(
        video_dataset(_wic_dataset(), video, h264_transfer_syntax(video)), len(clip)
    )
    files["video.dcm"] = head + clip + tail
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        run = subprocess.run(
            [dciodvfy, str(tmp_path / name)], capture_output=True, text=True, check=False
        )
        report = run.stdout + run.stderr
        assert "Error" not in report, f"{name}:\n{report}"
    assert mp4_span(files["video.dcm"][:65536]) is not None
    assert mp4_span(files["png.dcm"]) is None


def test_metadata_the_archive_does_not_take() -> None:
    photo = read_photo(_png(), "image/png")
    with pytest.raises(SopClassMismatch):
        photo_dataset(
            _wic_dataset(**{"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}}),
            photo,
        )
    local = _wic_dataset()
    local.AnatomicRegionSequence[0].CodingSchemeDesignator = "99LOCAL"
    with pytest.raises(InvalidInstance):
        photo_dataset(local, photo)
    with pytest.raises(InvalidInstance):
        photo_dataset(_wic_dataset(**{"00204000": {"vr": "LT", "Value": ["x" * 10241]}}), photo)
    bare = dataset_from_json({"00100020": {"vr": "LO", "Value": ["15528012345"]}})
    video = Mp4Video(9, "isom", 100, 0, 41, 320, 240, 25, 1.0, None, False)
    with pytest.raises(InvalidInstance):
        video_dataset(bare, video, H264_HIGH_41)
    done = photo_dataset(bare, photo)
    assert done.SOPInstanceUID.startswith("2.25.") and done.Modality == "XC"


def _saved(image: Image.Image, kind: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


_RGB = Image.new("RGB", (40, 30), (10, 200, 30))


@pytest.mark.parametrize(
    ("data", "kind", "photometric", "bits", "reencoded"),
    [
        (_saved(_RGB, "JPEG", progressive=True), "image/jpeg", "YBR_FULL_422", 8, True),
        (_saved(_RGB.convert("CMYK"), "JPEG"), "image/jpeg", "YBR_FULL_422", 8, True),
        (_saved(_RGB.convert("L"), "JPEG"), "image/jpeg", "MONOCHROME2", 8, False),
        (_saved(_RGB, "JPEG", subsampling=0), "image/jpeg", "YBR_FULL", 8, False),
        (_saved(_RGB, "JPEG", icc_profile=b"\0" * 200), "image/jpeg", "YBR_FULL_422", 8, False),
        (_saved(_RGB.convert("P"), "PNG", transparency=0), "image/png", "RGB", 8, False),
        (_saved(Image.new("I;16", (40, 30), 1000), "PNG"), "image/png", "MONOCHROME2", 16, False),
        (_saved(_RGB.convert("LA"), "PNG"), "image/png", "MONOCHROME2", 8, False),
        (_saved(_RGB.convert("1"), "PNG"), "image/png", "MONOCHROME2", 8, False),
        (_saved(_RGB.convert("RGBA"), "PNG"), "image/png", "RGB", 8, False),
    ],
    ids=["progressive", "cmyk", "grey", "444", "icc", "palette", "grey16", "la", "1", "rgba"],
)
def test_the_kinds_of_photo_taken(
    data: bytes, kind: str, photometric: str, bits: int, reencoded: bool
) -> None:
    photo = read_photo(data, kind)
    assert (photo.width, photo.height) == (40, 30)
    assert (photo.photometric, photo.bits_allocated, photo.reencoded) == (
        photometric,
        bits,
        reencoded,
    )
    if kind == "image/png":
        samples = 1 if photometric == "MONOCHROME2" else 3
        assert len(photo.pixel_data) == 40 * 30 * samples * bits // 8
    if bits == 16:
        assert photo.pixel_data[:2] == (1000).to_bytes(2, "little")


def test_a_16_bit_colour_png_is_not_taken() -> None:
    ihdr = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4
    with pytest.raises(UnsupportedPhoto):
        read_photo(png, "image/png")
